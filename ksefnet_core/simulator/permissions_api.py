"""Permissions (uprawnienia.md) in the simulator: grants, revocations, operation statuses and queries; the
roles of test subjects; the Peppol providers list.

Every grant and revocation is asynchronous on KSeF: the request answers 202 with a ``referenceNumber``
(``...-EG-...``) whose status ``GET /permissions/operations/{ref}`` reports (200 done; 400 failed, e.g. an
unknown permission id; 410 identifiers that do not fit; kept 30 days, then 410 Gone). A grant is stored as one
record per permission scope with a 36-character id (what queries list and revocations name).

What a grant does in the simulator: person, subunit and EU-entity administrator grants give the person or
entity those permissions when it authenticates in the context (as ``/testdata/permissions`` does); an entity
grant (``InvoiceWrite``/``InvoiceRead`` to another NIP) lets that entity's context send or read the granting
seller's invoices. Indirect and authorisation grants (SelfInvoicing etc.) are recorded and listed.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..ids import INTERNAL_ID_PATTERN, is_valid_nip, make_reference_number
from .app import Simulator
from .auth_api import is_bailiff
from .auth_api import store as auth_store
from .server import ApiError, Request, Response, iso

OPERATION_RETENTION = timedelta(days=30)
PERSON_SCOPES = (
    "CredentialsManage",
    "CredentialsRead",
    "InvoiceWrite",
    "InvoiceRead",
    "Introspection",
    "SubunitManage",
    "EnforcementOperations",
    "CollectiveIdentifierManage",
)
ENTITY_SCOPES = ("InvoiceWrite", "InvoiceRead", "CollectiveIdentifierManage")
AUTHORIZATION_SCOPES = ("SelfInvoicing", "RRInvoicing", "TaxRepresentative", "PefInvoicing")
EU_SCOPES = ("InvoiceWrite", "InvoiceRead")
EU_ADMIN_SCOPES = ("VatUeManage", "InvoiceWrite", "InvoiceRead", "Introspection")
#: kinds whose scopes the subject holds when it authenticates in the grant's context
AUTH_KINDS = ("person", "subunit", "eu_admin", "eu", "entity")
OPERATION_STATUS = {
    100: "Operacja przyjęta do realizacji",
    200: "Operacja zakończona sukcesem",
    400: "Operacja zakończona niepowodzeniem",
    410: "Podane identyfikatory są niezgodne lub pozostają w niewłaściwej relacji",
    450: "Operacja niedozwolona dla wskazanego identyfikatora lub jego typu",
}
ROLE_OF_SUBJECT = {
    "EnforcementAuthority": "EnforcementAuthority",
    "VatGroup": "VatGroupUnit",
    "JST": "LocalGovernmentUnit",
}
SUBUNIT_ROLE = {"VatGroup": "VatGroupSubUnit", "JST": "LocalGovernmentSubUnit"}


@dataclass
class Grant:
    id: str
    kind: str  # person | entity | authorization | indirect | subunit | eu_admin | eu
    context: tuple[str, str]  # where the permission applies
    subject: tuple[str, str]  # who holds it
    scope: str
    description: str
    author: tuple[str, str]
    granted_in: tuple[str, str]  # the context the grant was made in
    start: datetime
    can_delegate: bool = False
    target: dict | None = None  # indirect grants: the client (Nip | InternalId | AllPartners)
    person: dict | None = None  # the grant's subjectDetails
    entity: dict | None = None
    extra: dict = field(default_factory=dict)  # subunitName, euEntityName, euEntityDetails


@dataclass
class Operation:
    reference: str
    created: datetime
    code: int
    details: list[str] = field(default_factory=list)


@dataclass
class PermissionStore:
    grants: dict[str, Grant] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    peppol: list[dict] = field(default_factory=list)


def store(sim: Simulator) -> PermissionStore:
    st: PermissionStore = sim.store("permissions", PermissionStore)
    if not st.peppol:
        now = sim.clock.now()
        st.peppol = [
            {
                "id": "PPL000001",
                "name": "Dostawca Peppol Testowy 1",
                "dateCreated": iso(now - timedelta(days=30)),
            },
            {
                "id": "PPL000002",
                "name": "Dostawca Peppol Testowy 2",
                "dateCreated": iso(now - timedelta(days=3)),
            },
        ]
    return st


def granted(sim: Simulator, context: tuple[str, str], subject: tuple[str, str]) -> set[str]:
    """Scopes granted through the API to ``subject`` in ``context`` (used when it authenticates)."""
    return {
        g.scope
        for g in store(sim).grants.values()
        if g.kind in AUTH_KINDS and g.context == context and g.subject == subject
    }


# -- validation helpers ------------------------------------------------------------------------------------------


def _validation(detail: str) -> ApiError:
    return ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", [detail])


def _body(req: Request) -> dict:
    body = req.json()
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    return body


def _identifier(value: Any, types: tuple[str, ...], what: str) -> tuple[str, str]:
    if (
        not isinstance(value, dict)
        or value.get("type") not in types
        or not isinstance(value.get("value"), str)
    ):
        raise _validation(f"Nieprawidłowy identyfikator {what} (dozwolone typy: {', '.join(types)}).")
    kind, text = value["type"], value["value"]
    valid = {
        "Nip": lambda v: is_valid_nip(v),
        "Pesel": lambda v: len(v) == 11 and v.isdigit(),
        "Fingerprint": lambda v: len(v) == 64 and all(c in "0123456789ABCDEFabcdef" for c in v),
        "InternalId": lambda v: bool(INTERNAL_ID_PATTERN.match(v)),
        "PeppolId": lambda v: (
            len(v) == 9 and v[0] == "P" and v[1:3].isalpha() and v[1:3].isupper() and v[3:].isdigit()
        ),
        "NipVatUe": lambda v: "-" in v and is_valid_nip(v.split("-", 1)[0]),
    }[kind]
    if not valid(text):
        raise _validation(f"Nieprawidłowa wartość identyfikatora {what} typu {kind}.")
    return kind, text.upper() if kind == "Fingerprint" else text


def _description(body: dict) -> str:
    text = body.get("description")
    if not isinstance(text, str) or not 5 <= len(text) <= 256:
        raise _validation("Pole description musi mieć od 5 do 256 znaków.")
    return text


def _scopes(values: Any, allowed: tuple[str, ...]) -> list[str]:
    if not isinstance(values, list) or not values or any(v not in allowed for v in values):
        raise _validation(f"Wymagana lista uprawnień ze zbioru: {', '.join(allowed)}.")
    return list(dict.fromkeys(values))


def _person_details(details: Any, kinds: tuple[str, ...]) -> dict:
    if not isinstance(details, dict) or details.get("subjectDetailsType") not in kinds:
        raise _validation(f"Wymagane subjectDetails.subjectDetailsType ze zbioru: {', '.join(kinds)}.")
    key = {
        "PersonByIdentifier": "personById",
        "PersonByFingerprintWithIdentifier": "personByFpWithId",
        "PersonByFingerprintWithoutIdentifier": "personByFpNoId",
        "EntityByFingerprint": "entityByFp",
    }[details["subjectDetailsType"]]
    data = details.get(key)
    if not isinstance(data, dict):
        raise _validation(f"Wymagane subjectDetails.{key}.")
    return {"subjectDetailsType": details["subjectDetailsType"], **data}


def _context(req: Request) -> tuple[str, str]:
    return req.auth.context_type, req.auth.context_value


def _author(req: Request) -> tuple[str, str]:
    kind = req.auth.subject_type
    return (
        kind if kind in ("Nip", "Pesel", "Fingerprint") else "Nip",
        req.auth.subject_value if kind != "Token" else req.auth.context_nip,
    )


def _operation(sim: Simulator, code: int = 200, details: list[str] | None = None) -> Response:
    now = sim.clock.now()
    op = Operation(make_reference_number("EG", now), now, code, list(details or []))
    with sim.lock:
        store(sim).operations[op.reference] = op
    return Response.json({"referenceNumber": op.reference}, 202)


def _add(sim: Simulator, grants: list[Grant]) -> Response:
    with sim.lock:
        st = store(sim)
        for g in grants:
            existing = [
                o
                for o in st.grants.values()
                if (o.kind, o.context, o.subject, o.scope, o.target == g.target)
                == (g.kind, g.context, g.subject, g.scope, True)
            ]
            if existing:  # granting again renews the description, keeps one record
                existing[0].description = g.description
            else:
                st.grants[g.id] = g
    return _operation(sim)


def _new(
    req: Request,
    sim: Simulator,
    kind: str,
    context: tuple[str, str],
    subject: tuple[str, str],
    scope: str,
    body: dict,
    **kw: Any,
) -> Grant:
    return Grant(
        str(uuid.uuid4()),
        kind,
        context,
        subject,
        scope,
        _description(body),
        _author(req),
        _context(req),
        sim.clock.now(),
        **kw,
    )


def _roles(sim: Simulator, nip: str) -> set[str]:
    subject = auth_store(sim).subjects.get(nip) or {}
    roles = (
        {ROLE_OF_SUBJECT[subject["subjectType"]]} if subject.get("subjectType") in ROLE_OF_SUBJECT else set()
    )
    if is_bailiff(sim, nip):
        roles.add("CourtBailiff")
    return roles


# -- grants --------------------------------------------------------------------------------------------------------


def grant_persons(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Nip", "Pesel", "Fingerprint"), "osoby")
    scopes = _scopes(body.get("permissions"), PERSON_SCOPES)
    person = _person_details(
        body.get("subjectDetails"),
        ("PersonByIdentifier", "PersonByFingerprintWithIdentifier", "PersonByFingerprintWithoutIdentifier"),
    )
    if "EnforcementOperations" in scopes and not _roles(sim, req.auth.context_nip) & {
        "EnforcementAuthority",
        "CourtBailiff",
    }:
        return _operation(
            sim, 450, ["EnforcementOperations wymaga roli EnforcementAuthority lub CourtBailiff."]
        )
    return _add(
        sim, [_new(req, sim, "person", _context(req), subject, s, body, person=person) for s in scopes]
    )


def grant_entities(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Nip",), "podmiotu")
    items = body.get("permissions")
    if not isinstance(items, list) or not items or any(not isinstance(i, dict) for i in items):
        raise _validation("Wymagana lista permissions.")
    scopes = _scopes([i.get("type") for i in items], ENTITY_SCOPES)
    delegate = {i.get("type"): bool(i.get("canDelegate")) for i in items}
    entity = _entity_details(body)
    grants = [
        _new(
            req,
            sim,
            "entity",
            ("Nip", req.auth.context_nip),
            subject,
            s,
            body,
            can_delegate=delegate[s],
            entity=entity,
        )
        for s in scopes
    ]
    return _add(sim, grants)


def _entity_details(body: dict) -> dict:
    details = body.get("subjectDetails")
    name = details.get("fullName") if isinstance(details, dict) else None
    if not isinstance(name, str) or not 5 <= len(name) <= 90:
        raise _validation("Wymagane subjectDetails.fullName (5-90 znaków).")
    return {"subjectDetailsType": "EntityByIdentifier", "fullName": name}


def grant_authorizations(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Nip", "PeppolId"), "podmiotu")
    scope = body.get("permission")
    if scope not in AUTHORIZATION_SCOPES:
        raise _validation(f"Pole permission: jedno z {', '.join(AUTHORIZATION_SCOPES)}.")
    if (scope == "PefInvoicing") != (subject[0] == "PeppolId"):
        return _operation(
            sim, 410, ["PefInvoicing nadaje się dostawcy usług Peppol (PeppolId), pozostałe NIP."]
        )
    grant = _new(
        req,
        sim,
        "authorization",
        ("Nip", req.auth.context_nip),
        subject,
        scope,
        body,
        entity=_entity_details(body),
    )
    return _add(sim, [grant])


def grant_indirect(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Nip", "Pesel", "Fingerprint"), "osoby")
    scopes = _scopes(body.get("permissions"), ENTITY_SCOPES)
    target = body.get("targetIdentifier") or {"type": "AllPartners"}
    if not isinstance(target, dict) or target.get("type") not in ("Nip", "AllPartners", "InternalId"):
        raise _validation("Nieprawidłowy targetIdentifier.")
    if target["type"] != "AllPartners":
        client = _identifier(target, ("Nip", "InternalId"), "klienta")
        client_nip = client[1].split("-", 1)[0]
        delegable = {
            g.scope
            for g in store(sim).grants.values()
            if g.kind == "entity"
            and g.context == ("Nip", client_nip)
            and g.subject == ("Nip", req.auth.context_nip)
            and g.can_delegate
        }
        if not set(scopes) <= delegable:  # a client must have granted them with canDelegate
            return _operation(
                sim,
                410,
                ["Klient nie nadał podmiotowi kontekstu uprawnień z prawem do dalszego przekazywania."],
            )
        target = {"type": client[0], "value": client[1]}
    person = _person_details(
        body.get("subjectDetails"),
        ("PersonByIdentifier", "PersonByFingerprintWithIdentifier", "PersonByFingerprintWithoutIdentifier"),
    )
    grants = [
        _new(req, sim, "indirect", _context(req), subject, s, body, target=dict(target), person=person)
        for s in scopes
    ]
    return _add(sim, grants)


def grant_subunits(sim: Simulator, req: Request) -> Response:
    req.auth.require("SubunitManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Nip", "Pesel", "Fingerprint"), "osoby")
    unit = _identifier(body.get("contextIdentifier"), ("InternalId", "Nip"), "jednostki")
    own = req.auth.context_nip
    if unit[0] == "InternalId" and unit[1].split("-", 1)[0] != own:
        return _operation(sim, 410, ["Identyfikator wewnętrzny musi zaczynać się od NIP kontekstu."])
    if unit[0] == "Nip":
        subunits = {
            u.get("subjectNip") for u in (auth_store(sim).subjects.get(own) or {}).get("subunits") or []
        }
        if unit[1] not in subunits or not _roles(sim, own) & {"LocalGovernmentUnit", "VatGroupUnit"}:
            return _operation(sim, 430, ["Kontekst nie jest podmiotem nadrzędnym wskazanej jednostki."])
    person = _person_details(
        body.get("subjectDetails"),
        ("PersonByIdentifier", "PersonByFingerprintWithIdentifier", "PersonByFingerprintWithoutIdentifier"),
    )
    name = body.get("subunitName")
    grant = _new(
        req,
        sim,
        "subunit",
        unit,
        subject,
        "CredentialsManage",
        body,
        person=person,
        extra={"subunitName": name, "parent": own},
    )
    return _add(sim, [grant])


def _eu_details(body: dict) -> tuple[dict | None, dict | None]:
    details = _person_details(
        body.get("subjectDetails"),
        ("PersonByFingerprintWithIdentifier", "PersonByFingerprintWithoutIdentifier", "EntityByFingerprint"),
    )
    if details["subjectDetailsType"] == "EntityByFingerprint":
        return None, details
    return details, None


def grant_eu_administration(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Fingerprint",), "administratora")
    context = _identifier(body.get("contextIdentifier"), ("NipVatUe",), "kontekstu")
    if context[1].split("-", 1)[0] != req.auth.context_nip:
        return _operation(sim, 410, ["Kontekst złożony musi zawierać NIP bieżącego kontekstu."])
    name = body.get("euEntityName")
    eu = body.get("euEntityDetails")
    if not isinstance(name, str) or not 5 <= len(name) <= 256 or not isinstance(eu, dict):
        raise _validation("Wymagane euEntityName (5-256 znaków) i euEntityDetails.")
    person, entity = _eu_details(body)
    extra = {
        "euEntityName": name,
        "euEntityDetails": {"fullName": eu.get("fullName"), "address": eu.get("address")},
    }
    grants = [
        _new(req, sim, "eu_admin", context, subject, s, body, person=person, entity=entity, extra=extra)
        for s in EU_ADMIN_SCOPES
    ]
    return _add(sim, grants)


def grant_eu_entities(sim: Simulator, req: Request) -> Response:
    req.auth.require("VatUeManage")
    body = _body(req)
    subject = _identifier(body.get("subjectIdentifier"), ("Fingerprint",), "uprawnianego")
    scopes = _scopes(body.get("permissions"), EU_SCOPES)
    person, entity = _eu_details(body)
    admin = next(
        (g for g in store(sim).grants.values() if g.kind == "eu_admin" and g.context == _context(req)), None
    )
    extra = dict(admin.extra) if admin else {"euEntityName": "Podmiot unijny"}
    grants = [
        _new(req, sim, "eu", _context(req), subject, s, body, person=person, entity=entity, extra=extra)
        for s in scopes
    ]
    return _add(sim, grants)


# -- revocation and statuses -----------------------------------------------------------------------------------


def _revoke(sim: Simulator, req: Request, kinds: tuple[str, ...]) -> Response:
    permission_id = req.path_params["permissionId"]
    with sim.lock:
        grant = store(sim).grants.get(permission_id)
        ours = (
            grant is not None and grant.kind in kinds and _context(req) in (grant.granted_in, grant.context)
        )
        if not ours:
            return _operation(sim, 400, [f"Uprawnienie {permission_id} nie istnieje w bieżącym kontekście."])
        del store(sim).grants[permission_id]
    return _operation(sim)


def revoke_common(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "VatUeManage", "SubunitManage")
    return _revoke(sim, req, ("person", "entity", "indirect", "subunit", "eu_admin", "eu"))


def revoke_authorization(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    return _revoke(sim, req, ("authorization",))


def operation_status(sim: Simulator, req: Request) -> Response:
    ref = req.path_params["referenceNumber"]
    op = store(sim).operations.get(ref)
    if op is None:
        raise _validation(f"Operacja {ref} nie istnieje.")
    if sim.clock.now() - op.created > OPERATION_RETENTION:
        raise ApiError.gone(f"Status operacji {ref} nie jest już dostępny.")
    code = 100 if (sim.clock.now() - op.created).total_seconds() < sim.config.auth_delay else op.code
    status: dict[str, Any] = {"code": code, "description": OPERATION_STATUS.get(code, "Nieznany błąd")}
    if code >= 400 and op.details:
        status["details"] = op.details
    return Response.json({"status": status})


# -- queries -----------------------------------------------------------------------------------------------------


def _page(req: Request, items: list[Any], key: str) -> Response:
    try:
        size = int(req.q("pageSize") or 10)
        offset = int(req.q("pageOffset") or 0)
    except ValueError:
        raise _validation("Nieprawidłowe parametry stronicowania.") from None
    if not 10 <= size <= 100 or offset < 0:
        raise _validation("pageSize musi mieścić się w zakresie 10-100.")
    return Response.json(
        {key: items[offset * size : offset * size + size], "hasMore": offset * size + size < len(items)}
    )


def _ident(pair: tuple[str, str]) -> dict:
    return {"type": pair[0], "value": pair[1]}


def _details(g: Grant) -> dict:
    out: dict[str, Any] = {}
    if g.person:
        p = g.person
        person = {
            "subjectDetailsType": p["subjectDetailsType"],
            "firstName": p.get("firstName"),
            "lastName": p.get("lastName"),
        }
        for key in ("birthDate", "idDocument"):
            if p.get(key):
                person[key] = p[key]
        if p.get("identifier"):
            person["personIdentifier"] = p["identifier"]
        out["subjectPersonDetails"] = person
    if g.entity:
        out["subjectEntityDetails"] = {
            k: v
            for k, v in g.entity.items()
            if k in ("subjectDetailsType", "fullName", "address") and v is not None
        }
    return out


def _sorted(grants: list[Grant]) -> list[Grant]:
    return sorted(grants, key=lambda g: (-g.start.timestamp(), g.id))


def _body_or_empty(req: Request) -> dict:
    return _body(req) if req.body else {}


def query_personal(sim: Simulator, req: Request) -> Response:
    body = _body_or_empty(req)
    me = (req.auth.subject_type, req.auth.subject_value)
    context = (body.get("contextIdentifier") or {}).get("value")
    types = set(body.get("permissionTypes") or [])
    found = [
        g
        for g in store(sim).grants.values()
        if g.subject == me
        and g.kind in ("person", "subunit", "indirect", "eu_admin", "eu")
        and (not context or g.context[1] == context)
        and (context or g.context == _context(req) or g.kind == "indirect")
        and (not types or g.scope in types)
        and body.get("permissionState") in (None, "Active")
    ]
    items = []
    for g in _sorted(found):
        item: dict[str, Any] = {
            "id": g.id,
            "contextIdentifier": _ident(g.context) if g.context[0] in ("Nip", "InternalId") else None,
            "authorizedIdentifier": _ident(g.subject),
            "permissionScope": g.scope,
            "description": g.description,
            "permissionState": "Active",
            "startDate": iso(g.start),
            "canDelegate": g.can_delegate,
            **_details(g),
        }
        if g.target:
            item["targetIdentifier"] = g.target
        items.append({k: v for k, v in item.items() if v is not None})
    return _page(req, items, "permissions")


def query_persons(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead", "SubunitManage")
    body = _body(req)
    query_type = body.get("queryType")
    if query_type not in ("PermissionsInCurrentContext", "PermissionsGrantedInCurrentContext"):
        raise _validation(
            "Pole queryType: PermissionsInCurrentContext lub PermissionsGrantedInCurrentContext."
        )
    ctx = _context(req)
    types = set(body.get("permissionTypes") or [])
    author = body.get("authorIdentifier") or {}
    authorized = body.get("authorizedIdentifier") or {}
    found = []
    for g in store(sim).grants.values():
        if g.kind not in ("person", "indirect", "subunit"):
            continue
        if query_type == "PermissionsInCurrentContext" and g.context != ctx:
            continue
        if query_type == "PermissionsGrantedInCurrentContext" and (
            g.granted_in != ctx or g.author != _author(req)
        ):
            continue
        if types and g.scope not in types:
            continue
        if author.get("type") and (
            g.author[0] != author["type"] or (author.get("value") and g.author[1] != author["value"])
        ):
            continue
        if authorized.get("type") and g.subject != (authorized["type"], authorized.get("value")):
            continue
        if body.get("permissionState") not in (None, "Active"):
            continue
        found.append(g)
    items = [
        {
            "id": g.id,
            "authorizedIdentifier": _ident(g.subject),
            "contextIdentifier": _ident(g.context),
            **({"targetIdentifier": g.target} if g.target else {}),
            "authorIdentifier": _ident(g.author),
            "permissionScope": g.scope,
            "description": g.description,
            **_details(g),
            "permissionState": "Active",
            "startDate": iso(g.start),
            "canDelegate": g.can_delegate,
        }
        for g in _sorted(found)
    ]
    return _page(req, items, "permissions")


def query_subunits(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead", "SubunitManage")
    body = _body_or_empty(req)
    unit = (body.get("subunitIdentifier") or {}).get("value")
    found = [
        g
        for g in store(sim).grants.values()
        if g.kind == "subunit"
        and g.extra.get("parent") == req.auth.context_nip
        and (not unit or g.context[1] == unit)
    ]
    items = []
    for g in _sorted(found):
        item = {
            "id": g.id,
            "authorizedIdentifier": _ident(g.subject),
            "subunitIdentifier": _ident(g.context),
            "authorIdentifier": _ident(g.author),
            "permissionScope": g.scope,
            "description": g.description,
            **_details(g),
            "startDate": iso(g.start),
        }
        if g.extra.get("subunitName"):
            item["subunitName"] = g.extra["subunitName"]
        items.append(item)
    return _page(req, items, "permissions")


def query_entities(sim: Simulator, req: Request) -> Response:
    """Invoice-handling permissions other entities granted the current context's entity."""
    req.auth.require("CredentialsManage", "CredentialsRead")
    body = _body_or_empty(req)
    wanted = (body.get("contextIdentifier") or {}).get("value")
    found = [
        g
        for g in store(sim).grants.values()
        if g.kind == "entity"
        and g.subject == ("Nip", req.auth.context_nip)
        and (not wanted or g.context[1] == wanted)
    ]
    items = [
        {
            "id": g.id,
            "contextIdentifier": _ident(g.context),
            "permissionScope": g.scope,
            "description": g.description,
            "startDate": iso(g.start),
            "canDelegate": g.can_delegate,
        }
        for g in _sorted(found)
    ]
    return _page(req, items, "permissions")


def query_entity_roles(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead")
    nip = req.auth.context_nip
    roles = []
    subject = auth_store(sim).subjects.get(nip)
    if subject and subject.get("subjectType") in ROLE_OF_SUBJECT:
        roles.append(
            {
                "role": ROLE_OF_SUBJECT[subject["subjectType"]],
                "description": subject.get("description") or "Rola podmiotu",
                "startDate": iso(subject.get("_created", sim.clock.now())),
            }
        )
    if is_bailiff(sim, nip):
        roles.append(
            {"role": "CourtBailiff", "description": "Komornik sądowy", "startDate": iso(sim.clock.now())}
        )
    for parent_nip, parent in auth_store(sim).subjects.items():  # a subunit of another test subject
        if (
            any(u.get("subjectNip") == nip for u in parent.get("subunits") or [])
            and parent.get("subjectType") in SUBUNIT_ROLE
        ):
            roles.append(
                {
                    "parentEntityIdentifier": {"type": "Nip", "value": parent_nip},
                    "role": SUBUNIT_ROLE[parent["subjectType"]],
                    "description": parent.get("description") or "Jednostka podrzędna",
                    "startDate": iso(parent.get("_created", sim.clock.now())),
                }
            )
    return _page(req, roles, "roles")


def query_subordinate_roles(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead", "SubunitManage")
    body = _body_or_empty(req)
    wanted = (body.get("subordinateEntityIdentifier") or {}).get("value")
    parent = auth_store(sim).subjects.get(req.auth.context_nip) or {}
    role = SUBUNIT_ROLE.get(parent.get("subjectType", ""))
    roles = [
        {
            "subordinateEntityIdentifier": {"type": "Nip", "value": u["subjectNip"]},
            "role": role,
            "description": u.get("description") or "Jednostka podrzędna",
            "startDate": iso(parent.get("_created", sim.clock.now())),
        }
        for u in parent.get("subunits") or []
        if role and (not wanted or u.get("subjectNip") == wanted)
    ]
    return _page(req, roles, "roles")


def query_authorizations(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead", "PefInvoiceWrite")
    body = _body(req)
    if body.get("queryType") not in ("Granted", "Received"):
        raise _validation("Pole queryType: Granted lub Received.")
    nip = req.auth.context_nip
    types = set(body.get("permissionTypes") or [])
    authorizing = (body.get("authorizingIdentifier") or {}).get("value")
    authorized = (body.get("authorizedIdentifier") or {}).get("value")
    found = [
        g
        for g in store(sim).grants.values()
        if g.kind == "authorization"
        and (g.context[1] == nip if body["queryType"] == "Granted" else g.subject[1] == nip)
        and (not types or g.scope in types)
        and (not authorizing or g.context[1] == authorizing)
        and (not authorized or g.subject[1] == authorized)
    ]
    items = [
        {
            "id": g.id,
            "authorIdentifier": _ident(g.author),
            "authorizedEntityIdentifier": _ident(g.subject),
            "authorizingEntityIdentifier": _ident(g.context),
            "authorizationScope": g.scope,
            "description": g.description,
            **({"subjectEntityDetails": g.entity} if g.entity else {}),
            "startDate": iso(g.start),
        }
        for g in _sorted(found)
    ]
    return _page(req, items, "authorizationGrants")


def query_eu_entities(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead", "VatUeManage")
    body = _body_or_empty(req)
    nip = req.auth.context_nip
    vat_ue = body.get("vatUeIdentifier")
    fingerprint = (body.get("authorizedFingerprintIdentifier") or "").upper()
    types = set(body.get("permissionTypes") or [])
    found = [
        g
        for g in store(sim).grants.values()
        if g.kind in ("eu_admin", "eu")
        and g.context[1].split("-", 1)[0] == nip
        and (not vat_ue or g.context[1].split("-", 1)[1] == vat_ue)
        and (not fingerprint or g.subject[1] == fingerprint)
        and (not types or g.scope in types)
    ]
    items = []
    for g in _sorted(found):
        item: dict[str, Any] = {
            "id": g.id,
            "authorIdentifier": _ident(g.author),
            "vatUeIdentifier": g.context[1].split("-", 1)[1],
            "euEntityName": g.extra.get("euEntityName") or "Podmiot unijny",
            "authorizedFingerprintIdentifier": g.subject[1],
            "permissionScope": g.scope,
            "description": g.description,
            **_details(g),
            "startDate": iso(g.start),
        }
        if g.extra.get("euEntityDetails"):
            item["euEntityDetails"] = g.extra["euEntityDetails"]
        items.append(item)
    return _page(req, items, "permissions")


def peppol_query(sim: Simulator, req: Request) -> Response:
    providers = sorted(store(sim).peppol, key=lambda p: p["id"])
    providers.sort(key=lambda p: p["dateCreated"], reverse=True)  # dateCreated desc, then id asc
    return _page(req, providers, "peppolProviders")


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any, **kw: Any) -> None:
        sim.router.add(method, path, functools.partial(handler, sim), **kw)

    add("POST", "/permissions/persons/grants", grant_persons)
    add("POST", "/permissions/entities/grants", grant_entities)
    add("POST", "/permissions/authorizations/grants", grant_authorizations)
    add("POST", "/permissions/indirect/grants", grant_indirect)
    add("POST", "/permissions/subunits/grants", grant_subunits)
    add("POST", "/permissions/eu-entities/administration/grants", grant_eu_administration)
    add("POST", "/permissions/eu-entities/grants", grant_eu_entities)
    add("DELETE", "/permissions/common/grants/{permissionId}", revoke_common)
    add("DELETE", "/permissions/authorizations/grants/{permissionId}", revoke_authorization)
    add("GET", "/permissions/operations/{referenceNumber}", operation_status)
    add("POST", "/permissions/query/personal/grants", query_personal)
    add("POST", "/permissions/query/persons/grants", query_persons)
    add("POST", "/permissions/query/subunits/grants", query_subunits)
    add("POST", "/permissions/query/entities/grants", query_entities)
    add("GET", "/permissions/query/entities/roles", query_entity_roles)
    add("POST", "/permissions/query/subordinate-entities/roles", query_subordinate_roles)
    add("POST", "/permissions/query/authorizations/grants", query_authorizations)
    add("POST", "/permissions/query/eu-entities/grants", query_eu_entities)
    add("GET", "/peppol/query", peppol_query, auth=None, rate_group="anonymous")
