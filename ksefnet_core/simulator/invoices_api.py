"""Downloading from the simulator: metadata queries, single invoices, exports; and (simulator only) injecting
invoices issued by other companies, so that purchase-download scenarios can be played."""

from __future__ import annotations

import functools
import json
import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .. import archives, fa3
from ..crypto import USAGE_SYMMETRIC_KEY, aes_encrypt, b64decode, parse_datetime, sha256_b64
from ..ids import nip_with_checksum
from ..testing import ThirdParty, sample_invoice
from .app import Simulator
from .processing import Parsed, Rejected, StoredInvoice, accept, check_and_parse, hwm, new_reference
from .server import CONTROL_PREFIX, ApiError, Request, Response, iso
from .sessions_api import store

DATE_ATTR = {
    "PermanentStorage": "permanent_storage_date",
    "Invoicing": "invoicing_date",
    "Issue": "issue_date",
}
TYPE_TO_KIND = {
    "Vat": "VAT",
    "Zal": "ZAL",
    "Kor": "KOR",
    "Roz": "ROZ",
    "Upr": "UPR",
    "KorZal": "KOR_ZAL",
    "KorRoz": "KOR_ROZ",
}
MAX_RANGE = timedelta(days=93)
MAX_CONCURRENT_EXPORTS = 10


@dataclass
class Export:
    reference: str
    context_value: str
    created: datetime
    status: int
    compression: str = "Zip"
    package: dict | None = None
    parts: list[bytes] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def _validation(detail: str) -> ApiError:
    return ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", [detail])


def _date_key(inv: StoredInvoice, date_type: str) -> datetime:
    if date_type == "Issue":
        return datetime.combine(inv.parsed.issue_date, datetime.min.time(), tzinfo=timezone.utc)
    return getattr(inv, DATE_ATTR[date_type])  # type: ignore[no-any-return]


def _parse_when(value: Any, name: str) -> datetime:
    try:
        dt = parse_datetime(str(value))
    except (TypeError, ValueError):
        raise _validation(f"Nieprawidłowa data {name}.") from None
    if "+" not in str(value)[10:] and not str(value).endswith("Z") and "-" not in str(value)[10:]:
        # no offset: Europe/Warsaw local time (approximated as UTC+1; the simulator has no tz database)
        dt = dt.replace(tzinfo=timezone(timedelta(hours=1)))
    return dt


def _subject_match(inv: StoredInvoice, subject_type: str, nip: str) -> bool:
    p = inv.parsed
    if subject_type == "Subject1":
        return p.seller_nip == nip
    if subject_type == "Subject2":
        return p.buyer_type == "Nip" and p.buyer_value == nip
    if subject_type == "Subject3":
        return any((t["value"] or "").split("-")[0] == nip for t in p.third)
    if subject_type == "SubjectAuthorized":
        return bool(p.authorized and p.authorized.get("nip") == nip)
    raise _validation("Nieprawidłowy subjectType.")


def _filter(
    sim: Simulator, filters: Any, nip: str, *, for_export: bool = False
) -> tuple[list[StoredInvoice], str, datetime | None]:
    """Invoices matching ``filters`` for context ``nip`` (ascending by the date type), and the HWM."""
    if (
        not isinstance(filters, dict)
        or not isinstance(filters.get("dateRange"), dict)
        or not filters.get("subjectType")
    ):
        raise _validation("Wymagane pola subjectType i dateRange.")
    dr = filters["dateRange"]
    date_type = dr.get("dateType")
    if date_type not in DATE_ATTR:
        raise _validation("Nieprawidłowy dateRange.dateType.")
    now = sim.clock.now()
    start = _parse_when(dr.get("from"), "from")
    end = _parse_when(dr["to"], "to") if dr.get("to") else now
    if end - start > MAX_RANGE:
        raise _validation("Zakres dat nie może przekraczać 3 miesięcy.")
    mark = None
    if date_type == "PermanentStorage":
        mark = min(hwm(now, sim.config.hwm_lag), end) if end < now else hwm(now, sim.config.hwm_lag)
        with sim.lock:
            store(sim).repository.seal(mark)  # once told to a client, data up to the mark never changes
        if dr.get("restrictToPermanentStorageHwmDate"):
            if start > mark and not for_export:
                raise ApiError.bad_request(
                    21183,
                    "Zakres filtrowania wykracza poza dostępny zakres danych.",
                    ["Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate."],
                )
            end = min(end, mark)
    amount = filters.get("amount") or None
    kinds = {TYPE_TO_KIND.get(t, t) for t in filters.get("invoiceTypes") or []}
    currencies = set(filters.get("currencyCodes") or [])
    buyer = filters.get("buyerIdentifier") or None
    subject = filters["subjectType"]
    out = []
    repo = store(sim).repository
    if date_type == "PermanentStorage":
        import bisect

        lo = bisect.bisect_left(repo.by_storage, (start, ""))
        candidates = (repo.invoices[k] for d, k in repo.by_storage[lo:] if d <= end)
    else:
        candidates = (inv for inv in repo.invoices.values())
    for inv in candidates:
        key = _date_key(inv, date_type)
        if not start <= key <= end or not _subject_match(inv, subject, nip):
            continue
        p = inv.parsed
        if filters.get("ksefNumber") and inv.ksef_number != filters["ksefNumber"]:
            continue
        if filters.get("invoiceNumber") and p.number != filters["invoiceNumber"]:
            continue
        if filters.get("sellerNip") and p.seller_nip != filters["sellerNip"]:
            continue
        if buyer and (
            p.buyer_type != buyer.get("type") or (buyer.get("value") and p.buyer_value != buyer["value"])
        ):
            continue
        if kinds and p.kind not in kinds:
            continue
        if currencies and p.currency not in currencies:
            continue
        if filters.get("invoicingMode") and inv.invoicing_mode != filters["invoicingMode"]:
            continue
        if filters.get("hasAttachment") is not None and p.has_attachment != filters["hasAttachment"]:
            continue
        if amount:
            value = {"Brutto": p.gross, "Netto": p.net, "Vat": p.vat}.get(amount.get("type"), p.gross)
            if amount.get("from") is not None and value < float(amount["from"]):
                continue
            if amount.get("to") is not None and value > float(amount["to"]):
                continue
        out.append(inv)
    if date_type != "PermanentStorage":
        out.sort(key=lambda i: (_date_key(i, date_type), i.ksef_number))
    return out, date_type, mark


def query_metadata(sim: Simulator, req: Request) -> Response:
    req.auth.require("InvoiceRead")
    try:
        size = int(req.q("pageSize") or 10)
        offset = int(req.q("pageOffset") or 0)
    except ValueError:
        raise _validation("Nieprawidłowe parametry stronicowania.") from None
    if not 10 <= size <= 250 or offset < 0:
        raise _validation("pageSize musi mieścić się w zakresie 10-250.")
    order = req.q("sortOrder") or "Asc"
    if order not in ("Asc", "Desc"):
        raise _validation("sortOrder: Asc lub Desc.")
    invoices, date_type, mark = _filter(sim, req.json(), req.auth.context_nip)
    if order == "Desc":
        invoices.reverse()
    cap = sim.config.query_cap
    window = invoices[:cap]
    page = window[offset * size : offset * size + size]
    end_of_page = offset * size + size
    more_in_window = end_of_page < len(window)
    truncated = len(invoices) > cap and end_of_page >= len(window)
    body: dict[str, Any] = {
        "hasMore": more_in_window or truncated,
        "isTruncated": truncated,
        "invoices": [i.metadata() for i in page],
    }
    if mark is not None:
        body["permanentStorageHwmDate"] = iso(mark)
    return Response.json(body)


def _entitled(inv: StoredInvoice, nip: str) -> bool:
    return any(_subject_match(inv, s, nip) for s in ("Subject1", "Subject2", "Subject3", "SubjectAuthorized"))


def get_invoice(sim: Simulator, req: Request) -> Response:
    req.auth.require("InvoiceRead")
    number = req.path_params["ksefNumber"]
    inv = store(sim).repository.invoices.get(number)
    if inv is None or not _entitled(inv, req.auth.context_nip):
        raise ApiError.bad_request(21164, "Faktura o podanym identyfikatorze nie istnieje.", [number])
    if sim.faults.consume("not_yet_available", number):
        raise ApiError.bad_request(
            21165, "Faktura o podanym numerze KSeF nie jest jeszcze dostępna.", [number]
        )
    return Response.xml(inv.xml, {"x-ms-meta-hash": inv.invoice_hash})


def create_export(sim: Simulator, req: Request) -> Response:
    req.auth.require("InvoiceRead")
    body = req.json()
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    enc = body.get("encryption") or {}
    key = sim.keys.by_public_key_id(enc.get("publicKeyId"), USAGE_SYMMETRIC_KEY)
    if key is None:
        raise ApiError.bad_request(
            21470,
            "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
            [f"Klucz o identyfikatorze {enc.get('publicKeyId')} nie jest wspierany."],
        )
    nip = req.auth.context_nip
    exports: dict[str, Export] = sim.store("exports", dict)
    running = [e for e in exports.values() if e.context_value == nip and _export_code(sim, e) == 100]
    if len(running) >= MAX_CONCURRENT_EXPORTS:
        raise ApiError.bad_request(
            21182, "Osiągnięto limit trwających eksportów.", [f"Maksymalnie {MAX_CONCURRENT_EXPORTS}."]
        )
    compression = body.get("compressionType") or archives.ZIP
    if compression not in archives.COMPRESSION_TYPES:
        raise _validation("Nieobsługiwany typ kompresji (dozwolone: Zip, TarGz).")
    invoices, date_type, mark = _filter(sim, body.get("filters"), nip, for_export=True)
    now = sim.clock.now()
    export = Export(new_reference("EH", now), nip, now, 200, compression=compression)
    try:
        aes = key.decrypt(b64decode(enc.get("encryptedSymmetricKey") or ""))
        iv = b64decode(enc.get("initializationVector") or "")
        if len(aes) != 32 or len(iv) != 16:
            raise ValueError
    except ValueError:
        export.status = 415
    else:
        dr = body["filters"]["dateRange"]
        if (
            dr.get("restrictToPermanentStorageHwmDate")
            and mark is not None
            and _parse_when(dr["from"], "from") > mark
        ):
            export.status = 420
            export.details = ["Parametr dateRange.from jest późniejszy niż PermanentStorageHwmDate."]
        else:
            _build_package(sim, export, invoices, date_type, mark, aes, iv, bool(body.get("onlyMetadata")))
    with sim.lock:
        exports[export.reference] = export
    return Response.json({"referenceNumber": export.reference}, 201)


def _build_package(
    sim: Simulator,
    export: Export,
    invoices: list[StoredInvoice],
    date_type: str,
    mark: datetime | None,
    key: bytes,
    iv: bytes,
    only_metadata: bool,
) -> None:
    limit = sim.config.export_max_invoices
    chosen = invoices[:limit]
    truncated = len(invoices) > limit
    files = [] if only_metadata else [(f"{inv.ksef_number}.xml", inv.xml) for inv in chosen]
    metadata = json.dumps({"invoices": [i.metadata() for i in chosen]}, ensure_ascii=False).encode("utf-8")
    data = archives.build([*files, ("_metadata.json", metadata)], export.compression, level=1)
    part_size = sim.config.export_part_size
    plain_parts = [data[i : i + part_size] for i in range(0, len(data), part_size)] or [b""]
    export.parts = [aes_encrypt(p, key, iv) for p in plain_parts]
    package: dict[str, Any] = {
        "invoiceCount": len(chosen),
        "size": len(data),
        "isTruncated": truncated,
        "compressionType": export.compression,
        "_plain": [(len(p), sha256_b64(p)) for p in plain_parts],
    }
    if truncated and chosen:
        last = chosen[-1]
        if date_type == "PermanentStorage":
            package["lastPermanentStorageDate"] = iso(last.permanent_storage_date)
        elif date_type == "Invoicing":
            package["lastInvoicingDate"] = iso(last.invoicing_date)
        else:
            package["lastIssueDate"] = last.parsed.issue_date.isoformat()
    if mark is not None:
        package["permanentStorageHwmDate"] = iso(mark)
    export.package = package


def _export_code(sim: Simulator, export: Export) -> int:
    if export.status != 200:
        return export.status
    if sim.faults.active("export_stuck"):
        return 100
    if (sim.clock.now() - export.created).total_seconds() < sim.config.export_delay:
        return 100
    if sim.clock.now() - export.created > timedelta(days=7):
        return 210
    return 200


EXPORT_STATUS = {
    100: "Eksport faktur w toku",
    200: "Eksport faktur zakończony sukcesem",
    210: "Eksport faktur wygasł i nie jest już dostępny do pobrania",
    415: "Błąd odszyfrowania dostarczonego klucza",
    420: "Zakres filtrowania wykracza poza dostępny zakres danych",
}


def export_status(sim: Simulator, req: Request) -> Response:
    req.auth.require("InvoiceRead")
    exports: dict[str, Export] = sim.store("exports", dict)
    export = exports.get(req.path_params["referenceNumber"])
    if export is None or export.context_value != req.auth.context_nip:
        raise ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", ["Eksport nie istnieje."])
    if sim.clock.now() - export.created > timedelta(days=7):
        raise ApiError.gone(f"Status eksportu {export.reference} nie jest już dostępny.")
    code = _export_code(sim, export)
    status: dict[str, Any] = {"code": code, "description": EXPORT_STATUS.get(code, "Nieznany błąd")}
    if export.details and code >= 400:
        status["details"] = export.details
    body: dict[str, Any] = {"status": status}
    if code == 200 and export.package is not None:
        expires = sim.clock.now() + timedelta(hours=1)
        parts = []
        from .sessions_api import _storage_link

        for index, blob in enumerate(export.parts, start=1):
            url, until = _storage_link(sim, "export", blob)
            plain_size, plain_hash = export.package["_plain"][index - 1]
            parts.append(
                {
                    "ordinalNumber": index,
                    "partName": f"{export.reference}-{index:03d}{archives.SUFFIX[export.compression]}.aes",
                    "method": "GET",
                    "url": url,
                    "partSize": max(1, plain_size),
                    "partHash": plain_hash,
                    "encryptedPartSize": len(blob),
                    "encryptedPartHash": sha256_b64(blob),
                    "expirationDate": iso(until),
                }
            )
        package = {k: v for k, v in export.package.items() if not k.startswith("_")}
        package["parts"] = parts
        body.update(completedDate=iso(export.created), packageExpirationDate=iso(expires), package=package)
    return Response.json(body)


# -- simulator-only injection ---------------------------------------------------------------------------------


def inject_invoice(
    sim: Simulator,
    xml: bytes,
    *,
    permanent_storage_date: datetime | None = None,
    invoicing_mode: str = "Online",
) -> str:
    """Put an invoice issued by anyone into the repository, as if it had been sent to KSeF; its KSeF number."""
    now = sim.clock.now()
    when = min(permanent_storage_date or now, now)
    parsed = check_and_parse(xml, fa3.poland_date(when))  # P_1 is a calendar day in Poland
    with sim.lock:
        repo = store(sim).repository
        # Back-dating stops at the highest HWM already reported: KSeF never adds data below it.
        when = repo.storage_date_from(when)
        dup = repo.duplicate_of(parsed)
        if dup is not None:
            raise Rejected(440, [f"Duplikat faktury {dup.ksef_number}."])
        return accept(
            repo,
            xml,
            parsed,
            when,
            invoicing_date=when,
            offline=invoicing_mode == "Offline",
            storage_date=when,
        ).ksef_number


def generate_invoices(
    sim: Simulator,
    buyer_nip: str,
    count: int,
    date_from: datetime,
    date_to: datetime,
    *,
    seller_nips: list[str] | None = None,
    third_party_nip: str | None = None,
    seed: int | None = None,
) -> list[str]:
    """Generate ``count`` schema-valid FA(3) purchase invoices for ``buyer_nip``, stored evenly over the range.

    Built from a validated template without parsing each one again, so 10 000 take a few seconds.
    """
    rng = random.Random(seed)
    now = sim.clock.now()
    date_to = min(date_to, now)
    if date_to < date_from or count < 1:
        raise ValueError("need count >= 1 and dateFrom <= dateTo")
    sellers = list(seller_nips or [])
    while len(sellers) < 25:
        nip = nip_with_checksum(f"{rng.randint(100000000, 999999999)}")
        if nip and nip != buyer_nip:
            sellers.append(nip)
    step = (date_to - date_from) / max(1, count)
    numbers = []
    tag = secrets.token_hex(3).upper()
    repo = store(sim).repository
    for i in range(count):
        when = date_from + step * i
        seller = sellers[i % len(sellers)]
        kind = "KOR" if i % 17 == 16 else "VAT"
        issue = when.date()
        third = (ThirdParty(third_party_nip, "Odbiorca", role=2),) if third_party_nip and i % 5 == 0 else ()
        net = Decimal(rng.randint(100, 500000)) / 100
        number = f"FV/{tag}/{issue:%Y/%m}/{i + 1}"
        xml = sample_invoice(
            seller_nip=seller,
            number=number,
            issue_date=issue,
            buyer_nip=buyer_nip,
            seller_name=f"Dostawca {seller}",
            buyer_name="Sieć Sklepów Sp. z o.o.",
            buyer_address=(f"ul. Handlowa {1 + i % 40}", f"{10 + i % 80:02d}-{100 + i % 800:03d} Warszawa"),
            buyer_gln=f"59012341{i % 10000:04d}0" if i % 3 == 0 else None,
            kind=kind,
            net_amounts=(str(net),),
            delivery_notes=(f"WZ/{i % 40 + 1}/{i}",) if i % 2 == 0 else (),
            third_parties=third,
            corrected=(f"FV/{tag}/X/{i}", issue, None) if kind == "KOR" else None,
        )
        vat = float((net * 23 / 100).quantize(Decimal("0.01")))
        parsed = Parsed(
            seller,
            f"Dostawca {seller}",
            "Nip",
            buyer_nip,
            "Sieć Sklepów Sp. z o.o.",
            [{"type": "Nip", "value": t.nip, "name": t.name, "role": t.role} for t in third],
            None,
            number,
            issue,
            kind,
            "PLN",
            float(net),
            vat,
            float(net) + vat,
            False,
        )
        with sim.lock:
            # Issue and invoicing dates may lie in the past; storage never goes below a reported HWM.
            stored = repo.storage_date_from(when)
            if stored != when:
                stored += timedelta(microseconds=i)  # keep the batch in order after the sealed mark
            numbers.append(
                accept(repo, xml, parsed, when, invoicing_date=when, storage_date=stored).ksef_number
            )
    return numbers


def _control_body(req: Request) -> dict:
    body = req.json()
    if not isinstance(body, dict):
        raise ApiError.bad_request(21405, "Body must be a JSON object.")
    return body


def post_inject(sim: Simulator, req: Request) -> Response:
    numbers, errors = [], []
    for index, item in enumerate(_control_body(req).get("invoices") or []):
        try:
            when = parse_datetime(item["permanentStorageDate"]) if item.get("permanentStorageDate") else None
            numbers.append(
                inject_invoice(
                    sim,
                    b64decode(item["xml"]),
                    permanent_storage_date=when,
                    invoicing_mode=item.get("invoicingMode") or "Online",
                )
            )
        except Rejected as rej:
            errors.append({"index": index, "code": rej.code, "details": rej.details})
        except (KeyError, ValueError) as exc:
            errors.append({"index": index, "code": 21405, "details": [str(exc)]})
    return Response.json(
        {"ksefNumbers": numbers, "errors": errors}, 201 if not errors else 400 if not numbers else 207
    )


def post_generate(sim: Simulator, req: Request) -> Response:
    body = _control_body(req)
    try:
        numbers = generate_invoices(
            sim,
            str(body["buyerNip"]),
            int(body["count"]),
            parse_datetime(body["dateFrom"]),
            parse_datetime(body["dateTo"]),
            seller_nips=body.get("sellerNips"),
            third_party_nip=body.get("thirdPartyNip"),
            seed=body.get("seed"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ApiError.bad_request(21405, f"Invalid generate request: {exc}") from None
    return Response.json(
        {"count": len(numbers), "firstKsefNumber": numbers[0], "lastKsefNumber": numbers[-1]}, 201
    )


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any, group: str) -> None:
        sim.router.add(method, path, functools.partial(handler, sim), rate_group=group)

    add("POST", "/invoices/query/metadata", query_metadata, "invoiceMetadata")
    add("GET", "/invoices/ksef/{ksefNumber}", get_invoice, "invoiceDownload")
    add("POST", "/invoices/exports", create_export, "invoiceExport")
    add("GET", "/invoices/exports/{referenceNumber}", export_status, "invoiceExportStatus")
    for path, handler in (("/invoices", post_inject), ("/invoices/generate", post_generate)):
        sim.router.add(
            "POST",
            path,
            functools.partial(handler, sim),
            auth=None,
            rate_group=None,
            prefix=CONTROL_PREFIX,
        )
