"""The KSeF API specification the simulator and its conformance checks follow: 2.7.0 plus 2.7.1 ... 2.9.0.

``data/open-api-2.7.0.json`` is the newest verbatim official OpenAPI document at hand. The live API is 2.9.0;
its changes since 2.7.0 are known from the official changelog, ``limity-api.md`` and clients generated from
the 2.9.0 spec (``/work/shared/ksef/API_CHANGES_AFTER_2.6.md`` in the project's reference material), not as a
file. :func:`load` therefore reads the verbatim 2.7.0 document and applies :data:`PATCHES` to it, one function
per documented change, in version order. The verbatim file is never edited, so a newer official document can
replace it and the patches that it already contains can be dropped one by one.

Where a change's exact schema was not published in the material at hand, the patch is tolerant: it adds the
field or group as optional (or with a permissive schema) rather than guess a constraint that KSeF may not have.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SPEC_FILE = Path(__file__).with_name("data") / "open-api-2.7.0.json"
#: the API version the patched specification describes
API_VERSION = "2.9.0"

Spec = dict[str, Any]
HTTP_METHODS = ("get", "put", "post", "delete", "patch")

_lock = threading.Lock()
_patched: Spec | None = None


def _schemas(spec: Spec) -> dict[str, Any]:
    return spec["components"]["schemas"]  # type: ignore[no-any-return]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _limits(per_second: int, per_minute: int, per_hour: int) -> dict[str, int]:
    return {"perSecond": per_second, "perMinute": per_minute, "perHour": per_hour}


def _set_rate_group(operation: dict, group: str, limits: tuple[int, int, int]) -> None:
    """``x-rate-limits`` and the 429 answer's group table of one operation."""
    operation["x-rate-limits"] = _limits(*limits)
    answer = operation.get("responses", {}).get("429")
    if answer is not None:
        s, m, h = limits
        answer["description"] = (
            "| | req / s | req / min | req / h | grupa\n| --- | --- | --- | --- | --- |\n"
            f"| **Limity liczby żądań** | {s} | {m} | {h} | {group}\n"
        )


def _append_errors(operation: dict, rows: list[tuple[int, str]]) -> None:
    answer = operation["responses"]["400"]
    text = answer.get("description") or ""
    for code, description in rows:
        if f"| {code} " not in text:
            text += f"\n| {code} | {description} | |"
    answer["description"] = text


# -- 2.7.1 ----------------------------------------------------------------------------------------------------


def collective_identifier_invoices_by_post(spec: Spec) -> None:
    """2.7.1: ``GET /collective-identifiers/{n}/invoices`` is replaced by ``POST /collective-identifiers/invoices``
    (up to 10 identifiers in the body, ``pageSize`` up to 500, continuation token); each invoice says which
    identifier it belongs to."""
    paths = spec["paths"]
    old = paths.pop("/collective-identifiers/{collectiveIdentifierNumber}/invoices")["get"]
    schemas = _schemas(spec)
    schemas["CollectiveIdentifierInvoicesQueryRequest"] = {
        "required": ["collectiveIdentifierNumbers"],
        "type": "object",
        "properties": {
            "collectiveIdentifierNumbers": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {"maxLength": 35, "minLength": 35, "type": "string"},
                "description": "Numery identyfikatorów zbiorczych (od 1 do 10).",
            }
        },
    }
    item = schemas["CollectiveIdentifierInvoicesQueryResponseItem"]
    item["properties"]["collectiveIdentifierNumber"] = {
        "maxLength": 35,
        "minLength": 35,
        "type": "string",
        "description": "Numer identyfikatora zbiorczego, do którego należy faktura.",
    }
    new = copy.deepcopy(old)
    new["summary"] = "Pobranie listy faktur wchodzących w skład identyfikatorów zbiorczych"
    new["parameters"] = [
        p for p in old["parameters"] if p["name"] != "collectiveIdentifierNumber" and p["name"] != "pageSize"
    ] + [
        {
            "name": "pageSize",
            "in": "query",
            "schema": {"maximum": 500, "minimum": 10, "type": "integer", "format": "int32", "default": 10},
        }
    ]
    new["requestBody"] = {
        "content": {"application/json": {"schema": _ref("CollectiveIdentifierInvoicesQueryRequest")}}
    }
    new.setdefault("responses", {})["429"] = copy.deepcopy(
        paths["/collective-identifiers"]["post"]["responses"]["429"]
    )
    paths["/collective-identifiers/invoices"] = {"post": new}


def collective_identifier_limits(spec: Spec) -> None:
    """2.7.1: every collective-identifier operation is limited in the ``collectiveIdentifier`` group, 20/120/240."""
    template = spec["paths"]["/collective-identifiers"]["post"]["responses"]["429"]
    for path, item in spec["paths"].items():
        if path.startswith("/collective-identifiers"):
            for operation in item.values():
                operation["responses"].setdefault("429", copy.deepcopy(template))
                _set_rate_group(operation, "collectiveIdentifier", (20, 120, 240))


# -- 2.8.0 ----------------------------------------------------------------------------------------------------


NEW_RATE_GROUPS = {
    "onlineSessionClose": "Limity dla zamykania sesji interaktywnych.",
    "batchSessionClose": "Limity dla zamykania sesji wsadowych.",
    "anonymous": "Limity dla wywołań nieuwierzytelnionych (na adres IP).",
    "global": "Limity globalne na adres IP (zarezerwowane, obecnie wyłączone).",
}


def session_close_rate_groups(spec: Spec) -> None:
    """2.8.0: closing sessions is counted in groups of its own (``onlineSessionClose`` 20/60/240,
    ``batchSessionClose`` 20/40/120); ``GET /rate-limits`` also lists ``anonymous`` and ``global``, all required.
    Setting limits on TEST may name the two close groups (optional: the older required set stays)."""
    schemas = _schemas(spec)
    effective = schemas["EffectiveApiRateLimits"]
    override = schemas["ApiRateLimitsOverride"]
    for group, description in NEW_RATE_GROUPS.items():
        effective["properties"][group] = {
            "required": ["perSecond", "perMinute", "perHour"],
            "allOf": [_ref("EffectiveApiRateLimitValues")],
            "description": description,
        }
        effective["required"].append(group)
        if group.endswith("Close"):
            override["properties"][group] = {
                "required": ["perSecond", "perMinute", "perHour"],
                "allOf": [_ref("ApiRateLimitValuesOverride")],
                "description": description,
            }
    paths = spec["paths"]
    _set_rate_group(
        paths["/sessions/online/{referenceNumber}/close"]["post"], "onlineSessionClose", (20, 60, 240)
    )
    _set_rate_group(
        paths["/sessions/batch/{referenceNumber}/close"]["post"], "batchSessionClose", (20, 40, 120)
    )


def session_temporarily_unavailable(spec: Spec) -> None:
    """2.8.0: error 21184 "Sesja tymczasowo niedostępna" when sending in an online session: open a new session
    and continue with the invoices not yet accepted."""
    _append_errors(
        spec["paths"]["/sessions/online/{referenceNumber}/invoices"]["post"],
        [(21184, "Sesja tymczasowo niedostępna.")],
    )


def collective_identifier_errors(spec: Spec) -> None:
    """2.8.0 / 2.8.1: errors 71004 and 71005 of collective identifiers (their texts are not in the material at
    hand); 21418 (continuation token) on their lists."""
    paths = spec["paths"]
    _append_errors(
        paths["/collective-identifiers"]["post"],
        [(71004, "Błąd identyfikatora zbiorczego."), (71005, "Błąd identyfikatora zbiorczego.")],
    )
    for path in (
        "/collective-identifiers/query",
        "/collective-identifiers/invoices",
        "/collective-identifiers/ksef/{ksefNumber}",
    ):
        for operation in paths[path].values():
            _append_errors(operation, [(21418, "Przekazany token kontynuacji ma nieprawidłowy format.")])


# -- 2.8.1 ----------------------------------------------------------------------------------------------------


NEW_CURRENCIES = ("CNH", "VED", "XTS", "ZWG", "SLE")


def new_currencies(spec: Spec) -> None:
    """2.8.1: currencies CNH, VED, XTS, ZWG and SLE in the currency code list."""
    enum = _schemas(spec)["CurrencyCode"]["enum"]
    enum.extend(c for c in NEW_CURRENCIES if c not in enum)
    enum.sort()


def forbidden_without_timestamp(spec: Spec) -> None:
    """2.8.1: a 403 answer may come without ``timestamp``."""
    required = _schemas(spec)["ForbiddenProblemDetails"]["required"]
    if "timestamp" in required:
        required.remove("timestamp")


def collective_identifier_manage_grantable(spec: Spec) -> None:
    """2.8.1: ``CollectiveIdentifierManage`` can be granted through the entity and indirect grant endpoints."""
    schemas = _schemas(spec)
    for name in ("EntityPermissionType", "EntityPermissionItemScope", "IndirectPermissionType"):
        enum = schemas[name]["enum"]
        if "CollectiveIdentifierManage" not in enum:
            enum.append("CollectiveIdentifierManage")


# -- by 2.9.0 -------------------------------------------------------------------------------------------------


def export_package_compression_type(spec: Spec) -> None:
    """2.9.0: ``InvoicePackage.compressionType`` (Zip or TarGz) is required in export statuses."""
    package = _schemas(spec)["InvoicePackage"]
    package["properties"]["compressionType"] = {
        "allOf": [_ref("CompressionType")],
        "description": "Typ kompresji paczki eksportu.",
    }
    package["required"].append("compressionType")


def collective_identifier_context_limits(spec: Spec) -> None:
    """2.9.0: ``collectiveIdentifier`` (``maxInvoices`` in one identifier) is required in ``EffectiveContextLimits``
    (``GET /limits/context``) and in ``SetSessionLimitsRequest`` (``POST /testdata/limits/context/session``)."""
    schemas = _schemas(spec)
    for name, schema_name in (
        ("EffectiveContextLimits", "CollectiveIdentifierEffectiveContextLimits"),
        ("SetSessionLimitsRequest", "CollectiveIdentifierContextLimitsOverride"),
    ):
        schemas[schema_name] = {
            "required": ["maxInvoices"],
            "type": "object",
            "properties": {
                "maxInvoices": {
                    "minimum": 0,
                    "type": "integer",
                    "format": "int32",
                    "description": "Maksymalna liczba faktur w jednym identyfikatorze zbiorczym.",
                }
            },
        }
        schemas[name]["properties"]["collectiveIdentifier"] = {
            "required": ["maxInvoices"],
            "allOf": [_ref(schema_name)],
            "description": "Limity dla identyfikatorów zbiorczych.",
        }
        schemas[name]["required"].append("collectiveIdentifier")


def personal_grants_owner_permissions(spec: Spec) -> None:
    """2.9.0: ``ownerPermissions`` in the personal grants query. Its schema is not in the material at hand, so it
    is accepted with any value (the simulator ignores it)."""
    _schemas(spec)["PersonalPermissionsQueryRequest"]["properties"]["ownerPermissions"] = {
        "nullable": True,
        "description": "Uprawnienia właścicielskie (2.9.0; schemat nieznany, akceptowana dowolna wartość).",
    }


def error_21001_documented(spec: Spec) -> None:
    """2.9.0: error 21001 ("Nieczytelna treść") is documented on the authentication init endpoints."""
    for path in ("/auth/xades-signature", "/auth/ksef-token"):
        _append_errors(spec["paths"][path]["post"], [(21001, "Nieczytelna treść.")])


def authentication_method_removed(spec: Spec) -> None:
    """2.1.0, in force since 2026-11-16: ``authenticationMethod`` is gone from authentication answers; read
    ``authenticationMethodInfo``. The property stays described (older answers still carry it) but is optional."""
    schemas = _schemas(spec)
    for name in ("AuthenticationOperationStatusResponse", "AuthenticationListItem"):
        required = schemas[name]["required"]
        if "authenticationMethod" in required:
            required.remove("authenticationMethod")


def version_info(spec: Spec) -> None:
    """Say what the document now describes."""
    spec["info"]["description"] = (
        f"**Wersja API:** {API_VERSION} (2.7.0 verbatim + documented changes 2.7.1-{API_VERSION}, "
        "ksefnet_core/simulator/spec.py)<br>\n" + spec["info"]["description"].split("<br>", 1)[-1]
    )


#: (version, patch) in the order they are applied
PATCHES: tuple[tuple[str, Callable[[Spec], None]], ...] = (
    ("2.7.1", collective_identifier_invoices_by_post),
    ("2.7.1", collective_identifier_limits),
    ("2.8.0", session_close_rate_groups),
    ("2.8.0", session_temporarily_unavailable),
    ("2.8.1", collective_identifier_errors),
    ("2.8.1", new_currencies),
    ("2.8.1", forbidden_without_timestamp),
    ("2.8.1", collective_identifier_manage_grantable),
    ("2.9.0", export_package_compression_type),
    ("2.9.0", collective_identifier_context_limits),
    ("2.9.0", personal_grants_owner_permissions),
    ("2.9.0", error_21001_documented),
    ("2.1.0/2026-11-16", authentication_method_removed),
    (API_VERSION, version_info),
)


def verbatim() -> Spec:
    """The official 2.7.0 document as shipped (a fresh copy)."""
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def patched(base: Spec | None = None) -> Spec:
    """``base`` (default: the verbatim 2.7.0 document) with every patch applied; a new object."""
    spec = copy.deepcopy(base) if base is not None else verbatim()
    for _version, patch in PATCHES:
        patch(spec)
    return spec


def load() -> Spec:
    """The patched specification, built once per process (a deep copy each call: callers may change it)."""
    global _patched
    with _lock:
        if _patched is None:
            _patched = patched()
        return copy.deepcopy(_patched)


def operations(spec: Spec) -> Iterator[tuple[str, str, dict]]:
    """(METHOD, path template, operation object) for every operation of ``spec``, in document order."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def rate_group(operation: dict) -> str | None:
    """The ``GET /rate-limits`` group named in an operation's 429 answer (None for public endpoints)."""
    text = (operation.get("responses", {}).get("429", {}).get("description") or "").strip()
    last = text.rsplit("|", 1)[-1].strip() if text else ""
    return last if last.isidentifier() else None
