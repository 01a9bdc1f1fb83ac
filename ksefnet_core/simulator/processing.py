"""Invoice processing as KSeF does it, and the simulator's invoice repository.

An invoice received in a session is decrypted and checked (sizes, hashes, encoding rules, FA(3) schema,
duplicates, issue date, permission to issue it). Its status is *lazy*: it reads 100 until
``accepted + processing_delay``, then 150 until ``+ 2 * processing_delay``, then the final code, so no
background thread is needed and tests with a zero delay see the final status at once. Accepted invoices get
a KSeF number (seller NIP, acceptance date, CRC-8) and go into the repository queried by the download
endpoints.

High-water mark (HWM): ``permanentStorageHwmDate`` is ``now - hwm_lag``. Every invoice's
``permanentStorageDate`` is the moment it entered the repository (injected invoices may be back-dated, but
never into the future and never below the highest HWM already reported to a client), so every invoice stored
up to the HWM is already there: data below the HWM never changes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from .. import fa3
from ..crypto import sha256_b64
from ..ids import make_ksef_number, make_reference_number

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


def check_and_parse(xml: bytes, today: date) -> Parsed:
    """KSeF's checks on one invoice file (status 430/450 on failure) and its key data.

    The checks are those of :func:`ksefnet_core.fa3.validate` (encoding, code points, safe XML, FA(3) schema,
    issue date); the size limits of the context are applied by the caller before this.
    """
    try:
        inv = fa3.validate(xml, today=today, max_size=10**9, max_size_with_attachment=10**9)
    except fa3.InvoiceValidationError as exc:
        heading = (
            "Błąd weryfikacji semantyki dokumentu faktury."
            if exc.ksef_status == 450
            else "Błąd weryfikacji pliku faktury."
        )
        raise Rejected(exc.ksef_status, [heading] + [str(i) for i in exc.issues[:5]]) from None
    buyer_type, buyer_value = inv.buyer.identifier
    if buyer_type == "InternalId":  # a buyer has no IDWew; keep KSeF's metadata vocabulary
        buyer_type, buyer_value = "Other", buyer_value
    third = [
        {
            "type": tp.identifier[0] if tp.identifier[0] in ("Nip", "InternalId") else "None",
            "value": tp.identifier[1] if tp.identifier[0] in ("Nip", "InternalId") else None,
            "name": tp.name,
            "role": tp.role or 0,
        }
        for tp in inv.third_parties
    ]
    authorized = None
    if inv.authorized_subject is not None:
        authorized = {
            "nip": inv.authorized_subject.nip,
            "name": inv.authorized_subject.name,
            "role": inv.authorized_subject.role or 1,
        }
    return Parsed(
        seller_nip=inv.seller.nip or "",
        seller_name=inv.seller.name,
        buyer_type=buyer_type,
        buyer_value=buyer_value,
        buyer_name=inv.buyer.name,
        third=third,
        authorized=authorized,
        number=inv.number,
        issue_date=inv.issue_date,
        kind=inv.kind,
        currency=inv.currency,
        net=float(inv.net_total),
        vat=float(inv.vat_total),
        gross=float(inv.gross_total),
        has_attachment=inv.has_attachment,
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
    #: the highest permanentStorageHwmDate reported to any client: nothing may be stored at or below it
    sealed_until: datetime | None = None

    def seal(self, mark: datetime) -> None:
        if self.sealed_until is None or mark > self.sealed_until:
            self.sealed_until = mark

    def storage_date_from(self, wanted: datetime) -> datetime:
        """The permanent-storage date an injected invoice gets: ``wanted``, unless that is already sealed."""
        if self.sealed_until is not None and wanted <= self.sealed_until:
            return self.sealed_until + timedelta(microseconds=1)
        return wanted

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
    mode = "Offline" if offline or parsed.issue_date < fa3.poland_date(invoicing) else "Online"
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
