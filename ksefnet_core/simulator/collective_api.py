"""Collective identifiers (identyfikatory zbiorcze, IZ) of KSeF API 2.7.0, with the 2.7.1 changes.

A collective identifier groups 2 to 500 invoices of one seller (the context limit ``collectiveIdentifier.
maxInvoices``) under one number, ``{seller NIP}-IZ{YYYYMM}-{12 hex}-{CRC-8}`` (the checksum as in KSeF numbers:
CRC-8, polynomial 0x07, over the first 32 characters). One invoice belongs to at most 132 identifiers
created in one context. Operations (all in the ``collectiveIdentifier`` rate-limit group, permission
``InvoiceRead``, ``InvoiceWrite`` or ``CollectiveIdentifierManage``):

* ``POST /collective-identifiers`` (201): invoices the context may see (it is the seller, buyer, third party
  or authorised subject); otherwise, or for invoices of several sellers, 71001; the 133rd identifier of an
  invoice in one context, 71002; a count outside 2..limit or a repeated invoice, 21405;
* ``POST /collective-identifiers/query``: the identifiers created in the context, and for a NIP context those
  of its own invoices as seller; ``dateCreatedFrom``/``To`` (at most 100 days), sorted newest first;
* ``POST /collective-identifiers/invoices`` (2.7.1, replacing ``GET .../{n}/invoices``): the invoices of up to
  10 identifiers, ``pageSize`` 10..500, KSeF number descending; payment and description only for the
  identifier's creator or a party of that invoice (else ``detailsHidden``);
* ``GET /collective-identifiers/ksef/{ksefNumber}``: the identifiers holding an invoice.

The meaning of errors 71004 and 71005 (added in 2.8.x) is not described in the material at hand; the
simulator does not produce them.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..crypto import parse_datetime
from ..ids import KSEF_NUMBER_PATTERN, crc8
from .app import Simulator
from .auth_api import context_limits
from .server import ApiError, Request, Response, iso
from .sessions_api import store as invoice_store

PERMISSIONS = ("InvoiceRead", "InvoiceWrite", "CollectiveIdentifierManage")
MIN_INVOICES = 2
MAX_IDENTIFIERS_PER_INVOICE = 132
MAX_QUERY_RANGE = timedelta(days=100)
MAX_NUMBERS_PER_QUERY = 10
GROUP = "collectiveIdentifier"


@dataclass
class CollectiveIdentifier:
    number: str
    context_type: str
    context_value: str
    seller_nip: str
    created: datetime
    invoices: list[dict]  # {"ksefNumber", "payment"?, "description"?}


@dataclass
class CollectiveStore:
    identifiers: dict[str, CollectiveIdentifier] = field(default_factory=dict)
    #: KSeF number -> numbers of the identifiers holding it
    by_invoice: dict[str, list[str]] = field(default_factory=dict)


def store(sim: Simulator) -> CollectiveStore:
    return sim.store("collective", CollectiveStore)  # type: ignore[no-any-return]


def make_number(seller_nip: str, when: datetime) -> str:
    """A new collective identifier: ``9999999999-IZRRRRMM-FFFFFFFFFFFF-FF``."""
    head = f"{seller_nip}-IZ{when:%Y%m}-{secrets.token_hex(6).upper()}"
    return f"{head}-{crc8(head.encode('ascii')):02X}"


def is_valid_number(value: str) -> bool:
    if len(value) != 35 or value[10:13] != "-IZ" or value[19] != "-" or value[32] != "-":
        return False
    return f"{crc8(value[:32].encode('ascii')):02X}" == value[33:]


@functools.lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    from . import spec

    return frozenset(spec.load()["components"]["schemas"]["CurrencyCode"]["enum"])


def _validation(detail: str) -> ApiError:
    return ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", [detail])


def _entitled_nip(sim: Simulator, ksef_number: str, nip: str) -> bool:
    from .invoices_api import _entitled

    inv = invoice_store(sim).repository.invoices.get(ksef_number)
    return inv is not None and _entitled(inv, nip)


def _not_assignable(number: str) -> ApiError:
    return ApiError.bad_request(
        71001,
        "Faktura nie może zostać przypisana do Identyfikatora Zbiorczego.",
        [f"Faktura o numerze KSeF {number} nie może zostać przypisana do Identyfikatora Zbiorczego."],
    )


def _check_invoice_item(item: Any, seen: set[str]) -> dict:
    if not isinstance(item, dict) or not isinstance(item.get("ksefNumber"), str):
        raise _validation("Każda pozycja invoices wymaga pola ksefNumber.")
    number = item["ksefNumber"]
    if not KSEF_NUMBER_PATTERN.match(number):
        raise _validation(f"Nieprawidłowy numer KSeF {number}.")
    if number in seen:
        raise _validation(f"Faktura {number} występuje na liście więcej niż raz.")
    seen.add(number)
    out: dict[str, Any] = {"ksefNumber": number}
    payment = item.get("payment")
    if payment is not None:
        amount, currency = (payment or {}).get("amount"), (payment or {}).get("currency")
        if (
            not isinstance(amount, int | float)
            or isinstance(amount, bool)
            or amount < 0
            or currency not in _currencies()
        ):
            raise _validation(f"Nieprawidłowe dane płatności faktury {number} (kwota, kod waluty).")
        out["payment"] = {"amount": amount, "currency": currency}
    description = item.get("description")
    if description is not None:
        if not isinstance(description, str) or len(description) > 512:
            raise _validation("Opis może mieć najwyżej 512 znaków.")
        out["description"] = description
    return out


def create(sim: Simulator, req: Request) -> Response:
    req.auth.require(*PERMISSIONS)
    body = req.json()
    items = body.get("invoices") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise _validation("Wymagane pole invoices (lista faktur).")
    limit = int(context_limits(sim, req.auth.context_value)["collectiveIdentifier"]["maxInvoices"])
    if not MIN_INVOICES <= len(items) <= limit:
        raise _validation(f"Identyfikator zbiorczy obejmuje od {MIN_INVOICES} do {limit} faktur.")
    seen: set[str] = set()
    invoices = [_check_invoice_item(item, seen) for item in items]
    nip = req.auth.context_nip
    repo = invoice_store(sim).repository
    sellers = set()
    for item in invoices:
        number = item["ksefNumber"]
        if not _entitled_nip(sim, number, nip):
            raise _not_assignable(number)
        sellers.add(repo.invoices[number].parsed.seller_nip)
    if len(sellers) != 1:  # "faktury wystawione przez tego samego sprzedawcę"
        raise _not_assignable(invoices[-1]["ksefNumber"])
    cis = store(sim)
    ctx = (req.auth.context_type, req.auth.context_value)
    now = sim.clock.now()
    with sim.lock:
        for item in invoices:
            held = [
                n
                for n in cis.by_invoice.get(item["ksefNumber"], ())
                if (cis.identifiers[n].context_type, cis.identifiers[n].context_value) == ctx
            ]
            if len(held) >= MAX_IDENTIFIERS_PER_INVOICE:
                raise ApiError.bad_request(
                    71002,
                    "Faktura jest już przypisana do maksymalnej liczby Identyfikatorów Zbiorczych.",
                    [
                        f"Faktura o numerze KSeF {item['ksefNumber']} jest już przypisana do maksymalnej "
                        "liczby Identyfikatorów Zbiorczych."
                    ],
                )
        ci = CollectiveIdentifier(make_number(sellers.pop(), now), ctx[0], ctx[1], "", now, invoices)
        ci.seller_nip = ci.number[:10]
        cis.identifiers[ci.number] = ci
        for item in invoices:
            cis.by_invoice.setdefault(item["ksefNumber"], []).append(ci.number)
    return Response.json({"collectiveIdentifierNumber": ci.number}, 201)


def _created_here(ci: CollectiveIdentifier, req: Request) -> bool:
    return (ci.context_type, ci.context_value) == (req.auth.context_type, req.auth.context_value)


def _page(req: Request, items: list[Any], high: int) -> tuple[list[Any], str | None]:
    try:
        size = int(req.q("pageSize") or 10)
        start = int(req.headers.get("x-continuation-token") or 0)
        if start < 0:
            raise ValueError
    except ValueError:
        raise ApiError.bad_request(21418, "Przekazany token kontynuacji ma nieprawidłowy format.") from None
    if not 10 <= size <= high:
        raise _validation(f"pageSize musi mieścić się w zakresie 10-{high}.")
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


def _paged(key: str, page: list[dict], nxt: str | None) -> Response:
    body: dict[str, Any] = {key: page}
    if nxt:
        body["continuationToken"] = nxt
    return Response.json(body)


def _newest_first(items: list[CollectiveIdentifier]) -> list[CollectiveIdentifier]:
    return sorted(items, key=lambda c: (c.created, c.number), reverse=True)


def query(sim: Simulator, req: Request) -> Response:
    req.auth.require(*PERMISSIONS)
    body = req.json()
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    try:
        start = parse_datetime(str(body["dateCreatedFrom"]))
        end = parse_datetime(str(body["dateCreatedTo"]))
    except (KeyError, ValueError):
        raise _validation("Wymagane pola dateCreatedFrom i dateCreatedTo (data i czas).") from None
    if end < start or end - start > MAX_QUERY_RANGE:
        raise _validation(
            "Zakres dat utworzenia: najwyżej 100 dni, dateCreatedFrom nie później niż dateCreatedTo."
        )
    wanted = body.get("collectiveIdentifierNumber")
    low, high = body.get("invoiceCountFrom"), body.get("invoiceCountTo")
    here = body.get("createdInCurrentContext")
    nip = req.auth.context_nip if req.auth.context_type == "Nip" else None
    found = []
    for ci in store(sim).identifiers.values():
        created_here = _created_here(ci, req)
        if not (created_here or (nip and ci.seller_nip == nip)):
            continue
        if not start <= ci.created <= end or (wanted and ci.number != wanted):
            continue
        if (low is not None and len(ci.invoices) < low) or (high is not None and len(ci.invoices) > high):
            continue
        if here is not None and created_here != here:
            continue
        found.append(ci)
    page, nxt = _page(req, _newest_first(found), 200)
    items = [
        {
            "collectiveIdentifierNumber": ci.number,
            "dateCreated": iso(ci.created),
            "invoiceCount": len(ci.invoices),
            "createdInCurrentContext": _created_here(ci, req),
        }
        for ci in page
    ]
    return _paged("collectiveIdentifiers", items, nxt)


def invoices(sim: Simulator, req: Request) -> Response:
    req.auth.require(*PERMISSIONS)
    body = req.json()
    numbers = body.get("collectiveIdentifierNumbers") if isinstance(body, dict) else None
    if (
        not isinstance(numbers, list)
        or not 1 <= len(numbers) <= MAX_NUMBERS_PER_QUERY
        or not all(isinstance(n, str) for n in numbers)
    ):
        raise _validation(
            f"Wymagane pole collectiveIdentifierNumbers: od 1 do {MAX_NUMBERS_PER_QUERY} numerów."
        )
    cis = store(sim)
    nip = req.auth.context_nip
    rows = []
    for number in dict.fromkeys(numbers):
        ci = cis.identifiers.get(number)
        if ci is None:
            raise _validation(f"Identyfikator zbiorczy {number} nie istnieje.")
        for item in ci.invoices:
            rows.append((ci, item))
    rows.sort(key=lambda r: (r[1]["ksefNumber"], r[0].number), reverse=True)
    page, nxt = _page(req, rows, 500)
    out = []
    for ci, item in page:
        visible = _created_here(ci, req) or _entitled_nip(sim, item["ksefNumber"], nip)
        has_details = "payment" in item or "description" in item
        row: dict[str, Any] = {
            "ksefNumber": item["ksefNumber"],
            "collectiveIdentifierNumber": ci.number,
            "detailsHidden": has_details and not visible,
        }
        if visible:
            row.update({k: item[k] for k in ("payment", "description") if k in item})
        out.append(row)
    return _paged("invoices", out, nxt)


def by_ksef_number(sim: Simulator, req: Request) -> Response:
    req.auth.require(*PERMISSIONS)
    number = req.path_params["ksefNumber"]
    cis = store(sim)
    entitled = _entitled_nip(sim, number, req.auth.context_nip)
    found = [
        cis.identifiers[n]
        for n in cis.by_invoice.get(number, ())
        if entitled or _created_here(cis.identifiers[n], req)
    ]
    page, nxt = _page(req, _newest_first(found), 200)
    items = [
        {
            "collectiveIdentifierNumber": ci.number,
            "createdInCurrentContext": _created_here(ci, req),
            "dateCreated": iso(ci.created),
        }
        for ci in page
    ]
    return _paged("collectiveIdentifiers", items, nxt)


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any) -> None:
        sim.router.add(method, path, functools.partial(handler, sim), rate_group=GROUP)

    add("POST", "/collective-identifiers", create)
    add("POST", "/collective-identifiers/query", query)
    add("POST", "/collective-identifiers/invoices", invoices)
    add("GET", "/collective-identifiers/ksef/{ksefNumber}", by_ksef_number)
