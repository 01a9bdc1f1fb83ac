"""UPO (Urzędowe Poświadczenie Odbioru) in the v4-3 namespace, per invoice and per session page."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timezone
from xml.sax.saxutils import escape

from .processing import StoredInvoice

UPO_NS = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
PAGE_SIZE = 10_000


def _ts(dt) -> str:  # type: ignore[no-untyped-def]
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _document(inv: StoredInvoice) -> str:
    p = inv.parsed
    return (
        "<Dokument>"
        f"<NipSprzedawcy>{p.seller_nip}</NipSprzedawcy>"
        f"<NumerKSeFDokumentu>{inv.ksef_number}</NumerKSeFDokumentu>"
        f"<NumerFaktury>{escape(p.number)}</NumerFaktury>"
        f"<DataWystawieniaFaktury>{p.issue_date.isoformat()}</DataWystawieniaFaktury>"
        f"<DataPrzeslaniaDokumentu>{_ts(inv.invoicing_date)}</DataPrzeslaniaDokumentu>"
        f"<DataNadaniaNumeruKSeF>{_ts(inv.acquisition_date)}</DataNadaniaNumeruKSeF>"
        f"<SkrotDokumentu>{inv.invoice_hash}</SkrotDokumentu>"
        f"<TrybWysylki>{inv.invoicing_mode}</TrybWysylki>"
        "</Dokument>"
    )


def _head(receiver: str, session_ref: str, context_type: str, context_value: str, auth_hash: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<Potwierdzenie xmlns="{UPO_NS}">'
        f"<NazwaPodmiotuPrzyjmujacego>{escape(receiver)}</NazwaPodmiotuPrzyjmujacego>"
        f"<NumerReferencyjnySesji>{session_ref}</NumerReferencyjnySesji>"
        f"<Uwierzytelnienie><IdKontekstu><{context_type}>{escape(context_value)}</{context_type}></IdKontekstu>"
        f"<SkrotDokumentuUwierzytelniajacego>{auth_hash}</SkrotDokumentuUwierzytelniajacego></Uwierzytelnienie>"
    )


_TAIL = "<NazwaStrukturyLogicznej>Schemat_FA(3)_v1-0E.xsd</NazwaStrukturyLogicznej><KodFormularza>FA (3)</KodFormularza>"


def invoice_upo(
    inv: StoredInvoice, receiver: str, session_ref: str, context_type: str, context_value: str, auth_hash: str
) -> bytes:
    xml = _head(receiver, session_ref, context_type, context_value, auth_hash) + _TAIL + _document(inv)
    return (xml + "</Potwierdzenie>").encode("utf-8")


def session_upo_pages(
    invoices: Iterable[StoredInvoice],
    receiver: str,
    session_ref: str,
    context_type: str,
    context_value: str,
    auth_hash: str,
) -> list[bytes]:
    docs = list(invoices)
    pages = max(1, -(-len(docs) // PAGE_SIZE))
    out = []
    for page in range(pages):
        chunk = docs[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
        first = page * PAGE_SIZE + 1
        desc = (
            f"<OpisPotwierdzenia><Strona>{page + 1}</Strona><LiczbaStron>{pages}</LiczbaStron>"
            f"<ZakresDokumentowOd>{first if chunk else 0}</ZakresDokumentowOd>"
            f"<ZakresDokumentowDo>{first + len(chunk) - 1 if chunk else 0}</ZakresDokumentowDo>"
            f"<CalkowitaLiczbaDokumentow>{len(docs)}</CalkowitaLiczbaDokumentow></OpisPotwierdzenia>"
        )
        xml = _head(receiver, session_ref, context_type, context_value, auth_hash) + desc + _TAIL
        out.append((xml + "".join(_document(d) for d in chunk) + "</Potwierdzenie>").encode("utf-8"))
    return out
