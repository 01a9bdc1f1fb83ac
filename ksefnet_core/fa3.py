"""FA(3) toolkit: KSeF's pre-checks, offline XSD validation and extraction of what the buffer needs.

``validate(data)`` does what KSeF does to an invoice file before it gives a KSeF number (section 8 of the KSeF
notes): encoding (UTF-8 without BOM, no other declared encoding), no processing instructions, no discouraged
code points, size limits, well-formed XML parsed safely (no DTD, no entities, no network), valid against the
official FA(3) schema shipped in ``schemas/FA`` and an issue date (P_1) that is not in the future. It returns the
extracted :class:`Invoice` or raises :class:`InvoiceValidationError` listing every problem found, each with a
stable code, a message, and the line and element path when known.

``parse(data)`` only parses safely and extracts (for invoices downloaded from KSeF, already validated there);
it reads FA(3) and the older FA(2), whose structure is the same for everything extracted here.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from lxml import etree

from .ids import is_valid_nip
from .xmlsafe import UnsafeXmlError, parse_bytes

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas" / "FA"

FA3_NAMESPACE = "http://crd.gov.pl/wzor/2025/06/25/13775/"
FA2_NAMESPACE = "http://crd.gov.pl/wzor/2023/06/29/12648/"
FA_RR1_NAMESPACE = "http://crd.gov.pl/wzor/2026/03/06/14189/"

# KSeF's default limits for one invoice file (GET /limits/context may report others for a context).
MAX_SIZE = 1_000_000
MAX_SIZE_WITH_ATTACHMENT = 3_000_000

INVOICE_KINDS = ("VAT", "KOR", "ZAL", "ROZ", "UPR", "KOR_ZAL", "KOR_ROZ")
CORRECTION_KINDS = ("KOR", "KOR_ZAL", "KOR_ROZ")

# Discouraged code points that KSeF refuses (#x7F-#x84, #x86-#x9F, #xFDD0-#xFDEF, #xnFFFE-#xnFFFF).
_FORBIDDEN_RANGES = [(0x7F, 0x84), (0x86, 0x9F), (0xFDD0, 0xFDEF)] + [
    (plane * 0x10000 + 0xFFFE, plane * 0x10000 + 0xFFFF) for plane in range(17)
]
_FORBIDDEN_RE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _FORBIDDEN_RANGES) + "]")
#: bytes that begin the UTF-8 form of a forbidden code point: 0x7F itself, C2 (U+0080-U+00BF), EF (U+F000-U+FFFF)
#: and F0-F4 (the planes above): text without them (plain ASCII, Polish letters) needs no closer look
_MAY_BE_FORBIDDEN = re.compile(rb"[\x7f\xc2\xef\xf0-\xf4]")
_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']+)[\"']")


class FormCode(NamedTuple):
    """A KSeF form code, as in ``formCode`` of the API (systemCode / schemaVersion / value)."""

    system_code: str
    schema_version: str
    value: str
    namespace: str
    schema_file: str

    def as_api(self) -> dict[str, str]:
        return {"systemCode": self.system_code, "schemaVersion": self.schema_version, "value": self.value}


FA3 = FormCode("FA (3)", "1-0E", "FA", FA3_NAMESPACE, "schemat_FA(3)_v1-0E.xsd")
FA2 = FormCode("FA (2)", "1-0E", "FA", FA2_NAMESPACE, "schemat_FA(2)_v1-0E.xsd")
FA_RR1 = FormCode("FA_RR (1)", "1-1E", "FA_RR", FA_RR1_NAMESPACE, "schemat_FA_RR(1)_v1-1E.xsd")
FORM_CODES = {fc.namespace: fc for fc in (FA3, FA2, FA_RR1)}


@dataclass(frozen=True)
class ValidationIssue:
    """One problem with an invoice file. ``code`` is stable (for programs and translations)."""

    code: str  # encoding | bom | declaration | control-char | size | xml | unsafe | form | schema | issue-date | nip
    message: str
    line: int | None = None
    path: str | None = None
    #: which message of its code this is (stable, for translations: ``size`` has two, ``form`` three...) and
    #: the values in it; ``message`` is the English text
    key: str = ""
    params: dict = field(default_factory=dict, compare=False, hash=False)

    def __str__(self) -> str:
        where = []
        if self.line:
            where.append(f"line {self.line}")
        if self.path:
            where.append(self.path)
        return f"{self.message} ({', '.join(where)})" if where else self.message


class InvoiceValidationError(ValueError):
    """The invoice file would be rejected by KSeF. ``issues`` lists every problem found.

    ``ksef_status`` is the invoice status KSeF would give it: 430 (file verification) or 450 (semantics).
    """

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = list(issues)
        shown = "; ".join(str(i) for i in self.issues[:5])
        more = f" (and {len(self.issues) - 5} more)" if len(self.issues) > 5 else ""
        super().__init__(f"Invalid invoice: {shown}{more}")

    @property
    def ksef_status(self) -> int:
        return 450 if all(i.code in ("issue-date", "nip") for i in self.issues) else 430


@dataclass(frozen=True)
class Address:
    country: str | None = None
    line1: str | None = None
    line2: str | None = None
    gln: str | None = None

    @property
    def text(self) -> str:
        return ", ".join(p for p in (self.line1, self.line2, self.country) if p)


@dataclass(frozen=True)
class Party:
    """Seller (Podmiot1), buyer (Podmiot2), third party (Podmiot3) or authorised subject."""

    nip: str | None = None
    eu_vat: tuple[str, str] | None = None  # (KodUE, NrVatUE)
    other_id: tuple[str | None, str] | None = None  # (KodKraju or None, NrID)
    internal_id: str | None = None  # IDWew (Podmiot3 only)
    no_id: bool = False  # BrakID
    name: str | None = None
    address: Address | None = None
    correspondence_address: Address | None = None
    customer_number: str | None = None  # NrKlienta
    buyer_id: str | None = None  # IDNabywcy

    @property
    def identifier(self) -> tuple[str, str | None]:
        """The identifier as KSeF's metadata types it: Nip, VatUe, Other, InternalId or None."""
        if self.nip:
            return "Nip", self.nip
        if self.internal_id:
            return "InternalId", self.internal_id
        if self.eu_vat:
            return "VatUe", self.eu_vat[0] + self.eu_vat[1]
        if self.other_id:
            return "Other", (self.other_id[0] or "") + self.other_id[1]
        return "None", None

    @property
    def gln(self) -> str | None:
        return self.address.gln if self.address else None


@dataclass(frozen=True)
class ThirdParty(Party):
    role: int | None = None  # Rola (1..11)
    role_description: str | None = None  # OpisRoli when RolaInna
    share: Decimal | None = None  # Udzial


@dataclass(frozen=True)
class AuthorizedSubject(Party):
    role: int | None = None  # RolaPU


@dataclass(frozen=True)
class CorrectedInvoice:
    number: str
    issue_date: date | None
    ksef_number: str | None  # None when the corrected invoice was issued outside KSeF (NrKSeFN)


@dataclass(frozen=True)
class Invoice:
    """What the buffer and the classification rules read from an invoice."""

    form_code: FormCode
    kind: str  # RodzajFaktury
    number: str  # P_2
    issue_date: date  # P_1
    seller: Party
    buyer: Party
    currency: str
    net_total: Decimal
    vat_total: Decimal
    gross_total: Decimal
    sha256_b64: str
    size: int
    place_of_issue: str | None = None  # P_1M
    sale_date: date | None = None  # P_6
    period: tuple[date, date] | None = None  # OkresFa (P_6_Od, P_6_Do)
    third_parties: tuple[ThirdParty, ...] = ()
    authorized_subject: AuthorizedSubject | None = None
    delivery_note_numbers: tuple[str, ...] = ()  # WZ
    order_numbers: tuple[str, ...] = ()  # WarunkiTransakcji/Zamowienia/NrZamowienia
    corrected_invoices: tuple[CorrectedInvoice, ...] = ()
    correction_reason: str | None = None  # PrzyczynaKorekty
    has_attachment: bool = False
    created_at: datetime | None = None  # Naglowek/DataWytworzeniaFa
    system_info: str | None = None  # Naglowek/SystemInfo
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def customer_numbers(self) -> tuple[str, ...]:
        """Every NrKlienta (buyer first, then third parties), without repeats."""
        seen: list[str] = []
        for party in (self.buyer, *self.third_parties):
            if party.customer_number and party.customer_number not in seen:
                seen.append(party.customer_number)
        return tuple(seen)

    @property
    def is_correction(self) -> bool:
        return self.kind in CORRECTION_KINDS


# -- checks ---------------------------------------------------------------------------------------------------
def precheck(data: bytes, *, max_size: int = MAX_SIZE_WITH_ATTACHMENT) -> list[ValidationIssue]:
    """KSeF's checks that come before parsing: size, BOM, UTF-8, declared encoding, discouraged code points."""
    issues: list[ValidationIssue] = []
    if not data:
        return [ValidationIssue("xml", "The invoice file is empty", key="empty")]
    if len(data) > max_size:
        issues.append(
            ValidationIssue(
                "size",
                f"The invoice file has {len(data)} bytes; the limit is {max_size} bytes",
                key="size",
                params={"size": len(data), "limit": max_size},
            )
        )
    if data.startswith(b"\xef\xbb\xbf"):
        issues.append(
            ValidationIssue(
                "bom",
                "The file starts with a byte order mark (BOM); UTF-8 without BOM is required",
                key="bom",
            )
        )
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        issues.append(ValidationIssue("encoding", "The file is not valid UTF-8", line=line, key="encoding"))
        return issues
    declared = _DECLARED_ENCODING.match(data)
    if declared and declared.group(1).decode("ascii", "replace").lower().replace("_", "-") not in (
        "utf-8",
        "utf8",
    ):
        issues.append(
            ValidationIssue(
                "declaration",
                f"The XML declaration names encoding {declared.group(1).decode('ascii', 'replace')!r}; "
                "only UTF-8 is allowed",
                line=1,
                key="declared-encoding",
                params={"encoding": declared.group(1).decode("ascii", "replace")},
            )
        )
    if not _MAY_BE_FORBIDDEN.search(data):  # the UTF-8 lead bytes of every forbidden code point are absent
        return issues
    for bad in list(_FORBIDDEN_RE.finditer(text))[:5]:
        line = text.count("\n", 0, bad.start()) + 1
        issues.append(
            ValidationIssue(
                "control-char",
                f"Character U+{ord(bad.group()):04X} is not allowed",
                line=line,
                key="control-char",
                params={"char": f"U+{ord(bad.group()):04X}"},
            )
        )
    return issues


def _safe_root(data: bytes) -> etree._Element:
    try:
        return parse_bytes(data[3:] if data.startswith(b"\xef\xbb\xbf") else data)
    except UnsafeXmlError as exc:
        code, key = ("unsafe", "doctype") if "DOCTYPE" in exc.reason else ("xml", "not-well-formed")
        raise InvoiceValidationError([ValidationIssue(code, exc.reason, line=exc.line, key=key)]) from None


def _processing_instructions(root: etree._Element) -> list[ValidationIssue]:
    """Every processing instruction of the document (the prolog's and the epilogue's too), in order."""
    found = [
        *reversed(list(root.itersiblings(etree.ProcessingInstruction, preceding=True))),
        *root.iter(etree.ProcessingInstruction),
        *root.itersiblings(etree.ProcessingInstruction),
    ]
    return [
        ValidationIssue(
            "declaration",
            f"Processing instruction <?{pi.target} ...?> is not allowed",
            line=pi.sourceline,
            key="processing-instruction",
            params={"target": pi.target},
        )
        for pi in found
    ]


def detect_form_code(data: bytes | etree._Element) -> FormCode:
    """The form (FA(3), FA(2), FA_RR(1)) of an invoice, from its namespace."""
    root = data if isinstance(data, etree._Element) else _safe_root(data)
    namespace = etree.QName(root).namespace or ""
    form = FORM_CODES.get(namespace)
    if form is None or etree.QName(root).localname != "Faktura":
        raise InvoiceValidationError(
            [
                ValidationIssue(
                    "form",
                    f"Not a KSeF invoice: root element {etree.QName(root).localname!r} in namespace "
                    f"{namespace or '(none)'!r}",
                    line=root.sourceline,
                    key="not-an-invoice",
                    params={"root": etree.QName(root).localname, "namespace": namespace or "-"},
                )
            ]
        )
    return form


_schema_locks: dict[str, threading.Lock] = {}


@lru_cache(maxsize=4)
def _schema(schema_file: str) -> etree.XMLSchema:
    # Local files only: the shipped XSDs import each other by relative path, and the parser has no network.
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / schema_file), parser))


def validate_xsd(data: bytes | etree._Element, form: FormCode = FA3) -> list[ValidationIssue]:
    """Offline validation against the shipped official schema of ``form`` (FA(3) by default)."""
    root = data if isinstance(data, etree._Element) else _safe_root(data)
    schema = _schema(form.schema_file)
    lock = _schema_locks.setdefault(form.schema_file, threading.Lock())
    with lock:  # a libxml2 schema context is not safe for concurrent validation
        if schema.validate(root):
            return []
        errors = list(schema.error_log)
    return [
        ValidationIssue(
            "schema", _clean_schema_message(e.message), line=e.line, path=_named_path(root, e.path), key="xsd"
        )
        for e in errors
    ]


def _clean_schema_message(message: str) -> str:
    return re.sub(r"\{[^}]*\}", "", message)  # drop namespaces: "Element '{ns}P_2'" -> "Element 'P_2'"


_STEP = re.compile(r"^\*(?:\[(\d+)\])?$")


def _named_path(root: etree._Element, path: str | None) -> str | None:
    """libxml2 reports ``/*/*[2]/*[1]`` for namespaced documents; turn it into ``/Faktura/Podmiot1/...``."""
    if not path:
        return None
    steps = path.strip("/").split("/")
    names: list[str] = []
    node: etree._Element | None = None
    for step in steps:
        match = _STEP.match(step)
        if not match:
            return path
        if node is None:
            node = root
        else:
            children = [c for c in node if isinstance(c.tag, str)]
            index = int(match.group(1) or 1) - 1
            if index >= len(children):
                return path
            node = children[index]
        names.append(_local(node))
    return "/" + "/".join(names)


def validate(
    data: bytes,
    *,
    today: date | None = None,
    max_size: int = MAX_SIZE,
    max_size_with_attachment: int = MAX_SIZE_WITH_ATTACHMENT,
    check_nip: bool = False,
) -> Invoice:
    """Everything KSeF checks offline; returns the extracted invoice or raises :class:`InvoiceValidationError`.

    ``today`` is the acceptance date to compare P_1 with (default: today in Poland). ``check_nip`` adds the
    NIP checksum checks that KSeF applies in production only.
    """
    issues = precheck(data, max_size=max(max_size, max_size_with_attachment))
    if any(i.code in ("encoding", "size") for i in issues):
        raise InvoiceValidationError(issues)
    try:
        root = _safe_root(data)
    except InvoiceValidationError as exc:
        raise InvoiceValidationError(issues + exc.issues) from None
    issues += _processing_instructions(root)
    form = detect_form_code(root)
    if form is not FA3:
        issues.append(
            ValidationIssue(
                "form",
                f"Form {form.system_code} is not accepted here; FA (3) is required",
                key="form-not-accepted",
                params={"form": form.system_code},
            )
        )
        raise InvoiceValidationError(issues)
    issues += validate_xsd(root, form)
    has_attachment = _find(root, "Zalacznik") is not None
    if not has_attachment and len(data) > max_size:
        issues.append(
            ValidationIssue(
                "size",
                f"The invoice file has {len(data)} bytes; the limit without attachments is {max_size} bytes",
                key="size-without-attachment",
                params={"size": len(data), "limit": max_size},
            )
        )
    if issues:
        raise InvoiceValidationError(issues)
    invoice = _extract(root, form, data)
    acceptance = today or poland_today()
    if invoice.issue_date > acceptance:
        issues.append(
            ValidationIssue(
                "issue-date",
                f"The issue date (P_1) {invoice.issue_date.isoformat()} is later than today "
                f"({acceptance.isoformat()})",
                path="/Faktura/Fa/P_1",
                key="issue-date",
                params={"date": invoice.issue_date.isoformat(), "today": acceptance.isoformat()},
            )
        )
    if check_nip:
        issues += _nip_issues(invoice)
    if issues:
        raise InvoiceValidationError(issues)
    return invoice


def parse(data: bytes) -> Invoice:
    """Safe parse and extraction without schema validation (for invoices KSeF has already accepted)."""
    return parse_tree(data)[0]


def parse_tree(data: bytes) -> tuple[Invoice, etree._Element]:
    """:func:`parse`, and the parsed document's root element too (for readers of more than is extracted)."""
    root = _safe_root(data)
    form = detect_form_code(root)
    if form is FA_RR1:
        raise InvoiceValidationError(
            [
                ValidationIssue(
                    "form",
                    "FA_RR (1) invoices (VAT RR, farmers) are not supported by this reader",
                    key="fa-rr",
                )
            ]
        )
    return _extract(root, form, data), root


def document_fields(invoice: Invoice) -> dict[str, Any]:
    """What a buffer's document keeps of an invoice, by field name (amounts as floats, None when absent)."""
    buyer = invoice.buyer
    other = None
    if not buyer.nip:
        if buyer.eu_vat:
            other = "".join(buyer.eu_vat)
        elif buyer.other_id:
            other = "".join(p for p in buyer.other_id if p)
    return {
        "form_code": invoice.form_code.system_code,
        "invoice_kind": invoice.kind,
        "invoice_number": invoice.number,
        "issue_date": invoice.issue_date,
        "seller_nip": invoice.seller.nip,
        "seller_name": invoice.seller.name,
        "buyer_nip": buyer.nip,
        "buyer_identifier": other,
        "buyer_name": buyer.name,
        "currency_code": invoice.currency,
        "amount_net": float(invoice.net_total),
        "amount_vat": float(invoice.vat_total),
        "amount_gross": float(invoice.gross_total),
        "xml_sha256": invoice.sha256_b64,
        "xml_size": invoice.size,
    }


def poland_today() -> date:
    return poland_date(datetime.now(timezone.utc))


def poland_date(moment: datetime) -> date:
    """The calendar day in Poland at ``moment`` (an aware date-time): KSeF's day of acceptance."""
    try:
        from zoneinfo import ZoneInfo

        return moment.astimezone(ZoneInfo("Europe/Warsaw")).date()
    except Exception:  # no time zone database on this machine: UTC is at most a couple of hours off
        return moment.astimezone(timezone.utc).date()


def _nip_issues(invoice: Invoice) -> list[ValidationIssue]:
    parties: list[tuple[str, Party | None]] = [
        ("Podmiot1", invoice.seller),
        ("Podmiot2", invoice.buyer),
        ("PodmiotUpowazniony", invoice.authorized_subject),
    ]
    parties += [("Podmiot3", p) for p in invoice.third_parties]
    return [
        ValidationIssue(
            "nip",
            f"{where}: NIP {party.nip} has a wrong check digit",
            path=f"/Faktura/{where}/NIP",
            key="nip-checksum",
            params={"party": where, "nip": party.nip},
        )
        for where, party in parties
        if party is not None and party.nip and not is_valid_nip(party.nip)
    ]


# -- extraction -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=1024)
def _qualified(tag: str, path: str) -> str:
    """``path`` ("Fa/OkresFa/P_6_Od") with every step in the namespace of ``tag`` (an element's Clark tag)."""
    ns = tag[1 : tag.index("}")] if tag.startswith("{") else None
    return "/".join(f"{{{ns}}}{step}" if ns else step for step in path.split("/"))


def _find(el: etree._Element | None, path: str) -> etree._Element | None:
    if el is None:
        return None
    return el.find(_qualified(el.tag, path))


def _findall(el: etree._Element | None, path: str) -> list[etree._Element]:
    if el is None:
        return []
    return el.findall(_qualified(el.tag, path))


def _text(el: etree._Element | None, path: str) -> str | None:
    return _clean(_find(el, path))


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _money(value: str | None) -> Decimal:
    try:
        return Decimal(value) if value else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def _index(el: etree._Element | None) -> dict[str, list[etree._Element]]:
    """{local name: child elements in document order} of ``el``, counting only the children in ``el``'s own
    namespace (as ``el.find`` of an unprefixed step in that namespace would): one pass over the children
    for every lookup the extraction makes of them."""
    kids: dict[str, list[etree._Element]] = {}
    if el is None:
        return kids
    tag = el.tag
    namespace = tag[: tag.find("}") + 1] if tag.startswith("{") else "{}"  # "{}*": elements of no namespace
    cut = len(namespace) if namespace != "{}" else 0
    for child in el.iterchildren(namespace + "*"):  # elements only, filtered by libxml2
        name = child.tag[cut:]
        found = kids.get(name)
        if found is None:
            kids[name] = [child]
        else:
            found.append(child)
    return kids


def _first(kids: dict[str, list[etree._Element]], name: str) -> etree._Element | None:
    found = kids.get(name)
    return found[0] if found else None


def _clean(el: etree._Element | None) -> str | None:
    """The text of ``el`` with its white space runs made single spaces, or None when there is none."""
    if el is None or el.text is None:
        return None
    return " ".join(el.text.split()) or None


def _field(kids: dict[str, list[etree._Element]], name: str) -> str | None:
    """:func:`_text` of a child found in :func:`_index` (its first of that name)."""
    found = kids.get(name)
    return _clean(found[0]) if found else None


def _address(el: etree._Element | None) -> Address | None:
    if el is None:
        return None
    kids = _index(el)
    return Address(
        country=_field(kids, "KodKraju"),
        line1=_field(kids, "AdresL1"),
        line2=_field(kids, "AdresL2"),
        gln=_field(kids, "GLN"),
    )


def _party_fields(kids: dict[str, list[etree._Element]]) -> dict[str, Any]:
    """The fields of a party (Podmiot1/2/3, PodmiotUpowazniony) from :func:`_index` of its element."""
    ident = _index(_first(kids, "DaneIdentyfikacyjne"))
    eu_code, eu_number = _field(ident, "KodUE"), _field(ident, "NrVatUE")
    other = _field(ident, "NrID")
    return {
        "nip": _field(ident, "NIP"),
        "eu_vat": (eu_code, eu_number) if eu_code and eu_number else None,
        "other_id": (_field(ident, "KodKraju"), other) if other else None,
        "internal_id": _field(ident, "IDWew"),
        "no_id": "BrakID" in ident,
        "name": _field(ident, "Nazwa"),
        "address": _address(_first(kids, "Adres")),
        "correspondence_address": _address(_first(kids, "AdresKoresp")),
        "customer_number": _field(kids, "NrKlienta"),
        "buyer_id": _field(kids, "IDNabywcy"),
    }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _extract(root: etree._Element, form: FormCode, data: bytes) -> Invoice:
    top = _index(root)  # each element's children are gone through once, then looked up by name
    fa = _first(top, "Fa")
    fak = _index(fa)
    issue_date = _date(_field(fak, "P_1"))
    number = _field(fak, "P_2")
    if fa is None or issue_date is None or not number:
        raise InvoiceValidationError(
            [
                ValidationIssue(
                    "schema",
                    "The invoice has no Fa section with an issue date (P_1) and number (P_2)",
                    key="no-fa",
                )
            ]
        )
    third_parties = []
    for el in top.get("Podmiot3", ()):
        kids = _index(el)
        share = _field(kids, "Udzial")
        third_parties.append(
            ThirdParty(
                **_party_fields(kids),
                role=_int(_field(kids, "Rola")),
                role_description=_field(kids, "OpisRoli"),
                share=_money(share) if share else None,
            )
        )
    authorized_el = _first(top, "PodmiotUpowazniony")
    authorized = None
    if authorized_el is not None:
        kids = _index(authorized_el)
        authorized = AuthorizedSubject(**_party_fields(kids), role=_int(_field(kids, "RolaPU")))
    net = vat = Decimal(0)
    for name, elements in fak.items():  # by name, each in document order: the same sums as child by child
        if name.startswith("P_13_"):
            for child in elements:
                net += _money(child.text)
        elif name.startswith("P_14_") and not name.endswith("W"):
            for child in elements:
                vat += _money(child.text)
    corrected = []
    for el in fak.get("DaneFaKorygowanej", ()):
        kids = _index(el)
        corrected.append(
            CorrectedInvoice(
                number=_field(kids, "NrFaKorygowanej") or "",
                issue_date=_date(_field(kids, "DataWystFaKorygowanej")),
                ksef_number=_field(kids, "NrKSeFFaKorygowanej"),
            )
        )
    period = None
    okres = _index(_first(fak, "OkresFa"))
    start, end = _date(_field(okres, "P_6_Od")), _date(_field(okres, "P_6_Do"))
    if start and end:
        period = (start, end)
    header = _index(_first(top, "Naglowek"))
    created = _field(header, "DataWytworzeniaFa")
    try:
        created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None
    except ValueError:
        created_at = None
    orders = [
        el
        for terms in fak.get("WarunkiTransakcji", ())
        for group in _index(terms).get("Zamowienia", ())
        for el in _index(group).get("NrZamowienia", ())
    ]
    return Invoice(
        form_code=form,
        kind=_field(fak, "RodzajFaktury") or "VAT",
        number=number,
        issue_date=issue_date,
        seller=Party(**_party_fields(_index(_first(top, "Podmiot1")))),
        buyer=Party(**_party_fields(_index(_first(top, "Podmiot2")))),
        currency=_field(fak, "KodWaluty") or "PLN",
        net_total=net,
        vat_total=vat,
        gross_total=_money(_field(fak, "P_15")),
        sha256_b64=base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"),
        size=len(data),
        place_of_issue=_field(fak, "P_1M"),
        sale_date=_date(_field(fak, "P_6")),
        period=period,
        third_parties=tuple(third_parties),
        authorized_subject=authorized,
        delivery_note_numbers=tuple(t for el in fak.get("WZ", ()) if (t := _clean(el))),
        order_numbers=tuple(t for el in orders if (t := _clean(el))),
        corrected_invoices=tuple(corrected),
        correction_reason=_field(fak, "PrzyczynaKorekty"),
        has_attachment="Zalacznik" in top,
        created_at=created_at,
        system_info=_field(header, "SystemInfo"),
    )
