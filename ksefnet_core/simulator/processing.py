"""Invoice processing as KSeF does it, and the simulator's invoice repository.

An invoice received in a session is decrypted and checked (sizes, hashes, encoding rules, FA(3) schema,
duplicates, issue date, permission to issue it). Its status is *lazy*: it reads 100 until
``accepted + processing_delay``, then 150 until ``+ 2 * processing_delay``, then the final code, so no
background thread is needed and tests with a zero delay see the final status at once. Accepted invoices get
a KSeF number (seller NIP, acceptance date, CRC-8) and go into the repository queried by the download
endpoints.

High-water mark (HWM): ``permanentStorageHwmDate`` is ``now - hwm_lag``. Every invoice's
``permanentStorageDate`` is the moment it entered the repository (injected invoices may be back-dated, but
never later than the moment of injection), so every invoice stored up to the HWM is already there: data
below the HWM never changes.
"""

from __future__ import annotations

import bisect
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from ..crypto import sha256_b64
from ..ids import make_ksef_number, make_reference_number

FA3_NS = "http://crd.gov.pl/wzor/2025/06/25/13775/"
SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "FA" / "schemat_FA(3)_v1-0E.xsd"
FORBIDDEN = [(0x7F, 0x84), (0x86, 0x9F), (0xFDD0, 0xFDEF)] + [
    (p * 0x10000 + 0xFFFE, p * 0x10000 + 0xFFFF) for p in range(17)
]
_FORBIDDEN_RE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in FORBIDDEN) + "]")
_schema_lock = threading.Lock()

INVOICE_STATUS = {
    100: "Faktura przyjęta do dalszego przetwarzania",
    150: "Trwa przetwarzanie",
    200: "Sukces",
    405: "Przetwarzanie anulowane z powodu błędu sesji",
    410: "Nieprawidłowy zakres uprawnień",
    415: "Brak możliwości wysyłania faktury z załącznikiem",
    430: "Błąd weryfikacji pliku faktury",
    435: "Błąd odszyfrowania pliku",
    440: "Duplikat faktury",
    450: "Błąd weryfikacji semantyki dokumentu faktury",
    500: "Nieznany błąd",
    550: "Operacja została anulowana przez system",
}
KIND_TO_TYPE = {
    "VAT": "Vat",
    "ZAL": "Zal",
    "KOR": "Kor",
    "ROZ": "Roz",
    "UPR": "Upr",
    "KOR_ZAL": "KorZal",
    "KOR_ROZ": "KorRoz",
}


@lru_cache(maxsize=1)
def fa3_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


class Rejected(Exception):
    """The invoice fails KSeF's checks: ``code`` is the invoice status code."""

    def __init__(self, code: int, details: list[str], extensions: dict | None = None) -> None:
        super().__init__(f"{code}: {'; '.join(details)}")
        self.code = code
        self.details = details
        self.extensions = extensions


@dataclass
class Parsed:
    seller_nip: str
    seller_name: str | None
    buyer_type: str
    buyer_value: str | None
    buyer_name: str | None
    third: list[dict]
    authorized: dict | None
    number: str
    issue_date: date
    kind: str
    currency: str
    net: float
    vat: float
    gross: float
    has_attachment: bool
    corrected_hash: str | None = None


def _text(el: Any, path: str) -> str | None:
    found = el.find(path, {"f": FA3_NS})
    return found.text.strip() if found is not None and found.text else None


def _money(value: str | None) -> Decimal:
    try:
        return Decimal(value) if value else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def check_and_parse(xml: bytes, today: date) -> Parsed:
    """KSeF's checks on one invoice file (verification status 430/450 on failure) and its key data."""
    if xml.startswith(b"\xef\xbb\xbf"):
        raise Rejected(430, ["Plik faktury zawiera znacznik BOM; wymagane UTF-8 bez BOM."])
    try:
        text = xml.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(430, ["Plik faktury nie jest poprawnie zakodowany w UTF-8."]) from None
    bad = _FORBIDDEN_RE.search(text)
    if bad:
        raise Rejected(430, [f"Niedozwolony znak U+{ord(bad.group()):04X} w pliku faktury."])
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise Rejected(430, ["Deklaracje DOCTYPE są niedozwolone."])
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise Rejected(430, [f"Plik nie jest poprawnym dokumentem XML: {exc}"]) from None
    if any(
        isinstance(n, etree._ProcessingInstruction) for n in root.itersiblings(preceding=True)
    ) or root.xpath("//processing-instruction()"):
        raise Rejected(430, ["Instrukcje przetwarzania są niedozwolone."])
    schema = fa3_schema()
    with _schema_lock:  # libxml2 schema objects are not safe for concurrent validation
        valid = schema.validate(root)
        errors = [f"{e.line}: {e.message}" for e in list(schema.error_log)[:5]]
    if not valid:
        raise Rejected(430, ["Błąd weryfikacji zgodności ze schematem FA(3)."] + errors)
    fa = root.find("f:Fa", {"f": FA3_NS})
    p1 = root.find("f:Podmiot1/f:DaneIdentyfikacyjne", {"f": FA3_NS})
    p2 = root.find("f:Podmiot2/f:DaneIdentyfikacyjne", {"f": FA3_NS})
    issue = date.fromisoformat(_text(fa, "f:P_1") or "1970-01-01")
    if issue > today:
        raise Rejected(450, [f"Data wystawienia faktury (P_1 {issue}) jest późniejsza niż data przyjęcia."])
    buyer_type, buyer_value = "None", None
    if _text(p2, "f:NIP"):
        buyer_type, buyer_value = "Nip", _text(p2, "f:NIP")
    elif _text(p2, "f:NrVatUE"):
        buyer_type, buyer_value = "VatUe", (_text(p2, "f:KodUE") or "") + (_text(p2, "f:NrVatUE") or "")
    elif _text(p2, "f:NrID"):
        buyer_type, buyer_value = "Other", _text(p2, "f:NrID")
    third = []
    for p3 in root.findall("f:Podmiot3", {"f": FA3_NS}):
        ident = p3.find("f:DaneIdentyfikacyjne", {"f": FA3_NS})
        nip = _text(ident, "f:NIP")
        internal = _text(ident, "f:IDWew")
        kind, value = ("Nip", nip) if nip else (("InternalId", internal) if internal else ("None", None))
        role = _text(p3, "f:Rola")
        third.append(
            {"type": kind, "value": value, "name": _text(ident, "f:Nazwa"), "role": int(role) if role else 0}
        )
    auth = root.find("f:PodmiotUpowazniony", {"f": FA3_NS})
    authorized = None
    if auth is not None:
        role = _text(auth, "f:RolaPU")
        authorized = {
            "nip": _text(auth, "f:DaneIdentyfikacyjne/f:NIP"),
            "name": _text(auth, "f:DaneIdentyfikacyjne/f:Nazwa"),
            "role": int(role) if role else 1,
        }
    net = sum((_money(e.text) for e in fa if etree.QName(e).localname.startswith("P_13_")), Decimal(0))
    vat = sum(
        (
            _money(e.text)
            for e in fa
            if etree.QName(e).localname.startswith("P_14_") and not etree.QName(e).localname.endswith("W")
        ),
        Decimal(0),
    )
    return Parsed(
        seller_nip=_text(p1, "f:NIP") or "",
        seller_name=_text(p1, "f:Nazwa"),
        buyer_type=buyer_type,
        buyer_value=buyer_value,
        buyer_name=_text(p2, "f:Nazwa"),
        third=third,
        authorized=authorized,
        number=_text(fa, "f:P_2") or "",
        issue_date=issue,
        kind=_text(fa, "f:RodzajFaktury") or "VAT",
        currency=_text(fa, "f:KodWaluty") or "PLN",
        net=float(net),
        vat=float(vat),
        gross=float(_money(_text(fa, "f:P_15"))),
        has_attachment=root.find("f:Zalacznik", {"f": FA3_NS}) is not None,
    )


@dataclass
class StoredInvoice:
    """An invoice in KSeF's repository (it has a KSeF number)."""

    ksef_number: str
    xml: bytes
    parsed: Parsed
    invoice_hash: str
    invoicing_date: datetime
    acquisition_date: datetime
    permanent_storage_date: datetime
    invoicing_mode: str
    form_code: dict
    session_ref: str | None = None
    invoice_ref: str | None = None

    def metadata(self) -> dict:
        p = self.parsed
        buyer: dict[str, Any] = {"identifier": {"type": p.buyer_type}}
        if p.buyer_value:
            buyer["identifier"]["value"] = p.buyer_value
        if p.buyer_name:
            buyer["name"] = p.buyer_name
        seller: dict[str, Any] = {"nip": p.seller_nip}
        if p.seller_name:
            seller["name"] = p.seller_name
        from .server import iso

        meta: dict[str, Any] = {
            "ksefNumber": self.ksef_number,
            "invoiceNumber": p.number,
            "issueDate": p.issue_date.isoformat(),
            "invoicingDate": iso(self.invoicing_date),
            "acquisitionDate": iso(self.acquisition_date),
            "permanentStorageDate": iso(self.permanent_storage_date),
            "seller": seller,
            "buyer": buyer,
            "netAmount": p.net,
            "grossAmount": p.gross,
            "vatAmount": p.vat,
            "currency": p.currency,
            "invoicingMode": self.invoicing_mode,
            "invoiceType": KIND_TO_TYPE.get(p.kind, "Vat"),
            "formCode": self.form_code,
            "isSelfInvoicing": False,
            "hasAttachment": p.has_attachment,
            "invoiceHash": self.invoice_hash,
        }
        if p.third:
            meta["thirdSubjects"] = [
                {
                    "identifier": {"type": t["type"], **({"value": t["value"]} if t["value"] else {})},
                    **({"name": t["name"]} if t["name"] else {}),
                    "role": t["role"],
                }
                for t in p.third
            ]
        if p.authorized and p.authorized.get("nip"):
            meta["authorizedSubject"] = {
                "nip": p.authorized["nip"],
                **({"name": p.authorized["name"]} if p.authorized.get("name") else {}),
                "role": p.authorized["role"],
            }
        return meta


@dataclass
class Repository:
    """Accepted invoices, indexed for the duplicate rule and for queries by permanent-storage date."""

    invoices: dict[str, StoredInvoice] = field(default_factory=dict)
    duplicates: dict[tuple[str, str, str], str] = field(default_factory=dict)
    by_storage: list[tuple[datetime, str]] = field(default_factory=list)

    def duplicate_of(self, p: Parsed) -> StoredInvoice | None:
        number = self.duplicates.get((p.seller_nip, p.kind, p.number))
        return self.invoices.get(number) if number else None

    def add(self, inv: StoredInvoice) -> None:
        p = inv.parsed
        self.invoices[inv.ksef_number] = inv
        self.duplicates[(p.seller_nip, p.kind, p.number)] = inv.ksef_number
        bisect.insort(self.by_storage, (inv.permanent_storage_date, inv.ksef_number))


def accept(
    repo: Repository,
    xml: bytes,
    parsed: Parsed,
    now: datetime,
    *,
    invoicing_date: datetime | None = None,
    offline: bool = False,
    form_code: dict | None = None,
    session_ref: str | None = None,
    invoice_ref: str | None = None,
    storage_date: datetime | None = None,
) -> StoredInvoice:
    """Assign a KSeF number and store the invoice (duplicates must have been checked by the caller)."""
    invoicing = invoicing_date or now
    # automatic offline marking: issued on an earlier calendar day than it was accepted
    mode = "Offline" if offline or parsed.issue_date < invoicing.date() else "Online"
    stored = StoredInvoice(
        ksef_number=make_ksef_number(parsed.seller_nip, invoicing.date()),
        xml=xml,
        parsed=parsed,
        invoice_hash=sha256_b64(xml),
        invoicing_date=invoicing,
        acquisition_date=storage_date or now,
        permanent_storage_date=storage_date or now,
        invoicing_mode=mode,
        form_code=form_code or {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"},
        session_ref=session_ref,
        invoice_ref=invoice_ref,
    )
    repo.add(stored)
    return stored


def new_reference(kind: str, when: datetime) -> str:
    return make_reference_number(kind, when)


def hwm(now: datetime, lag: float) -> datetime:
    return now - timedelta(seconds=lag)
