"""FA(3) toolkit: the official MF samples, KSeF's pre-checks, hostile inputs and extraction."""

from __future__ import annotations

import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ksefnet_core import fa3
from ksefnet_core.testing import ThirdParty, sample_invoice

SAMPLES = Path(__file__).resolve().parent / "data"  # verbatim copies of the public MF samples
MF_SAMPLES = sorted((SAMPLES / "fa3-mf-examples").glob("*.xml"))
CIRFMF_SAMPLES = sorted((SAMPLES / "fa3-cirfmf").glob("*.xml"))
LATER = date(2030, 1, 1)  # the MF samples are dated 2026; validate them as if accepted later
NIP = "5265877635"


def test_the_samples_are_there():
    assert len(MF_SAMPLES) == 26 and len(CIRFMF_SAMPLES) == 4


def multiline(data: bytes) -> bytes:
    """The generated invoices are one line; put each element on its own line to test line numbers."""
    return data.replace(b"><", b">\n<")


def issues_of(data: bytes, **kwargs) -> list[fa3.ValidationIssue]:
    with pytest.raises(fa3.InvoiceValidationError) as info:
        fa3.validate(data, **kwargs)
    assert info.value.issues, "an InvoiceValidationError always lists its issues"
    return info.value.issues


def codes_of(data: bytes, **kwargs) -> set[str]:
    return {i.code for i in issues_of(data, **kwargs)}


# -- the official samples -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", MF_SAMPLES, ids=lambda p: p.name)
def test_every_mf_sample_validates_and_extracts(path):
    data = path.read_bytes()
    invoice = fa3.validate(data, today=LATER)
    assert invoice.form_code is fa3.FA3
    assert invoice.kind in fa3.INVOICE_KINDS
    assert invoice.number and invoice.issue_date.year >= 2026
    assert invoice.seller.nip == "9999999999"
    assert invoice.buyer.identifier[0] in ("Nip", "VatUe", "Other")
    assert invoice.size == len(data)
    if invoice.is_correction:
        assert invoice.corrected_invoices and all(c.number for c in invoice.corrected_invoices)
    # parse() (no schema) reads the same as validate()
    assert fa3.parse(data) == invoice


def test_mf_samples_extract_the_fields_the_classification_rules_use():
    def read(n: int) -> fa3.Invoice:
        return fa3.validate(
            (SAMPLES / "fa3-mf-examples" / f"FA_3_Przyklad_{n}.xml").read_bytes(), today=LATER
        )

    first = read(1)
    assert (first.kind, first.number, first.issue_date) == ("VAT", "FV2026/02/150", date(2026, 2, 15))
    assert first.buyer.nip == "1111111111" and first.buyer.customer_number == "fdfd778343"
    assert first.order_numbers == ("4354343",)
    assert first.gross_total == Decimal("2051") and first.currency == "PLN"
    assert abs(first.net_total + first.vat_total - first.gross_total) < Decimal("0.05")  # MF rounds P_15

    with_wz = read(4)
    assert with_wz.delivery_note_numbers == ("44343434/2026",)
    assert len(with_wz.third_parties) == 1 and with_wz.third_parties[0].role is not None

    correction = read(2)
    assert correction.kind == "KOR" and correction.gross_total == Decimal("-200")
    (corrected,) = correction.corrected_invoices
    assert corrected == fa3.CorrectedInvoice(
        "FV2026/02/150", date(2026, 2, 15), "9999999999-20230908-8BEF280C8D35-4D"
    )

    assert read(22).buyer.identifier == ("VatUe", "DE999999999")
    assert read(23).buyer.identifier == ("Other", "US999999999")
    assert read(10).kind == "ZAL" and read(14).kind == "ROZ" and read(15).kind == "UPR"


@pytest.mark.parametrize("path", CIRFMF_SAMPLES, ids=lambda p: p.name)
def test_cirfmf_templates_validate_once_their_placeholders_are_filled(path):
    data = path.read_bytes()
    filled = (
        data.replace(b"#nip#", NIP.encode())
        .replace(b"#invoice_number#", b"FV/1/2026")
        .replace(b"#invoicing_date#", b"2026-03-02")
    )
    if b"#" in data and filled == data:
        pytest.fail("template without known placeholders")
    invoice = fa3.validate(filled, today=LATER)
    assert invoice.seller.nip == NIP or b"#nip#" not in data
    assert invoice.has_attachment == ("attachment" in path.name)


# -- KSeF's pre-checks ----------------------------------------------------------------------------------------
def test_a_valid_generated_invoice_passes_and_extracts_everything():
    data = sample_invoice(
        seller_nip=NIP,
        number="FV/7/2026",
        buyer_gln="5901234123457",
        customer_number="K-77",
        delivery_notes=("WZ/1/2026", "WZ/2/2026"),
        order_number="ZAM/9",
        third_parties=(
            ThirdParty(role=4, internal_id=f"{NIP}-12345", name="Sklep 12", customer_number="S12"),
        ),
    )
    invoice = fa3.validate(data)
    assert invoice.number == "FV/7/2026" and invoice.seller.nip == NIP
    assert invoice.buyer.gln == "5901234123457"
    assert invoice.delivery_note_numbers == ("WZ/1/2026", "WZ/2/2026")
    assert invoice.order_numbers == ("ZAM/9",)
    assert invoice.customer_numbers == ("K-77", "S12")
    (shop,) = invoice.third_parties
    assert (shop.role, shop.internal_id, shop.identifier) == (
        4,
        f"{NIP}-12345",
        ("InternalId", f"{NIP}-12345"),
    )


def test_bom_is_refused():
    data = b"\xef\xbb\xbf" + sample_invoice(seller_nip=NIP, number="FV/BOM")
    assert "bom" in codes_of(data)


def test_non_utf8_is_refused_with_the_line():
    data = multiline(sample_invoice(seller_nip=NIP, number="FV/1", buyer_name="Zakład Łódź")).replace(
        "Zakład Łódź".encode(), "Zakład Łódź".encode("iso-8859-2")
    )
    (issue,) = issues_of(data)
    assert issue.code == "encoding" and issue.line and issue.line > 1


def test_declared_non_utf8_encoding_is_refused():
    data = sample_invoice(seller_nip=NIP, number="FV/1")
    assert data.startswith(b"<?xml")
    data = data.replace(b'encoding="UTF-8"', b'encoding="windows-1250"', 1)
    assert b"windows-1250" in data
    assert "declaration" in codes_of(data)


def test_processing_instructions_are_refused():
    data = sample_invoice(seller_nip=NIP, number="FV/1")
    head, _, rest = data.partition(b"?>")
    data = head + b'?>\n<?xml-stylesheet href="x.xsl"?>' + rest
    issues = issues_of(data)
    assert [i.code for i in issues] == ["declaration"] and "xml-stylesheet" in issues[0].message


def test_processing_instructions_anywhere_are_refused_in_document_order():
    data = sample_invoice(seller_nip=NIP, number="FV/1")
    head, _, rest = data.partition(b"?>")
    data = (
        head + b"?>\n<?first x?><?second x?>" + rest.replace(b"<Fa>", b"<?third x?><Fa>", 1) + b"<?fourth x?>"
    )
    issues = issues_of(data)
    assert [i.params["target"] for i in issues] == ["first", "second", "third", "fourth"]
    assert {i.code for i in issues} == {"declaration"}


@pytest.mark.parametrize("char", ["\u0080", "\u009f", "\ufdd0", "\uffff"])
def test_discouraged_code_points_are_refused(char):
    data = sample_invoice(seller_nip=NIP, number="FV/1", buyer_name=f"Firma {char} X")
    assert "control-char" in codes_of(data)


@pytest.mark.parametrize(
    "code_point", [0x7F, 0x80, 0x84, 0x86, 0x9F, 0xFDD0, 0xFDEF, 0xFFFE, 0x1FFFF, 0x10FFFE, 0x10FFFF]
)
def test_every_discouraged_range_is_found_past_the_quick_byte_check(code_point):
    # the precheck looks closer only when a byte that starts such a code point in UTF-8 is present
    data = f"<a>Zażółć {chr(code_point)} gęślą</a>".encode()
    assert [i.params["char"] for i in fa3.precheck(data)] == [f"U+{code_point:04X}"]


@pytest.mark.parametrize("code_point", [0x85, 0xA0, 0x105, 0x142, 0xFDCF, 0xFDF0, 0xFFFD, 0x1F600, 0x10FFFD])
def test_allowed_code_points_beside_the_discouraged_ones_pass(code_point):
    assert fa3.precheck(f"<a>{chr(code_point)}</a>".encode()) == []


def test_size_limits_depend_on_attachments():
    big = sample_invoice(seller_nip=NIP, number="FV/BIG", padding_bytes=1_100_000)
    assert 1_000_000 < len(big) < 3_000_000
    issues = issues_of(big)
    assert [i.code for i in issues] == ["size"] and "1000000" in issues[0].message
    fa3.validate(big, max_size=2_000_000)  # a context with a higher limit accepts it
    huge = b"<x>" + b"a" * 3_000_001 + b"</x>"
    started = time.perf_counter()
    assert codes_of(huge) == {"size"}
    assert time.perf_counter() - started < 5  # refused before parsing (generous bound; no timing target)


def test_issue_date_in_the_future_is_a_semantic_error():
    tomorrow = date.today() + timedelta(days=2)
    data = sample_invoice(seller_nip=NIP, number="FV/FUT", issue_date=tomorrow)
    with pytest.raises(fa3.InvoiceValidationError) as info:
        fa3.validate(data, today=date.today())
    assert [i.code for i in info.value.issues] == ["issue-date"]
    assert info.value.ksef_status == 450
    assert fa3.validate(data, today=tomorrow).issue_date == tomorrow


def test_schema_errors_name_the_element_and_line():
    data = multiline(sample_invoice(seller_nip=NIP, number="FV/1")).replace(b"<P_15>", b"<P_15>abc", 1)
    issues = issues_of(data)
    assert {i.code for i in issues} == {"schema"}
    p15 = [i for i in issues if i.path == "/Faktura/Fa/P_15"]
    assert p15 and p15[0].line and "P_15" in p15[0].message
    with pytest.raises(fa3.InvoiceValidationError) as info:
        fa3.validate(data)
    assert info.value.ksef_status == 430 and "P_15" in str(info.value)


def test_nip_checksums_are_checked_on_request():
    data = sample_invoice(seller_nip=NIP, number="FV/1", buyer_nip="1234567890")
    fa3.validate(data)  # KSeF checks NIP checksums in production only
    issues = issues_of(data, check_nip=True)
    assert [(i.code, i.path) for i in issues] == [("nip", "/Faktura/Podmiot2/NIP")]


# -- hostile and broken input ---------------------------------------------------------------------------------
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/">&lol9;</Faktura>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Faktura [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/"><Fa><P_2>&xxe;</P_2></Fa></Faktura>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Faktura SYSTEM "http://127.0.0.1:9/evil.dtd">
<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/"/>"""


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["billion-laughs", "xxe", "external-dtd"]
)
def test_dtd_entities_and_external_references_are_refused(data):
    for call in (fa3.validate, fa3.parse, fa3.detect_form_code):
        with pytest.raises(fa3.InvoiceValidationError) as info:
            call(data)
        (issue,) = info.value.issues
        assert issue.code == "unsafe" and "DOCTYPE" in issue.message and issue.line == 2
        assert "root:" not in str(info.value)  # nothing of /etc/passwd leaks into the error


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "xml"),
        (b"<Faktura xmlns='http://crd.gov.pl/wzor/2025/06/25/13775/'><Fa>", "xml"),
        (b"not xml at all", "xml"),
        (b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>", "form"),
        (b"<Faktura/>", "form"),
    ],
    ids=["empty", "truncated", "text", "ubl", "no-namespace"],
)
def test_broken_input_gets_a_clear_error(data, code):
    assert codes_of(data) == {code}


def test_deep_nesting_is_refused_not_crashing():
    data = b"<a>" * 100_000 + b"</a>" * 100_000
    assert codes_of(data, max_size=10_000_000, max_size_with_attachment=10_000_000) == {"xml"}


def test_other_forms_are_detected_and_refused_for_sending():
    fa2 = sample_invoice(seller_nip=NIP, number="FV/1").replace(
        fa3.FA3_NAMESPACE.encode(), fa3.FA2_NAMESPACE.encode()
    )
    assert fa3.detect_form_code(fa2) is fa3.FA2
    issues = issues_of(fa2)
    assert [i.code for i in issues] == ["form"] and "FA (2)" in issues[0].message
    assert fa3.parse(fa2).number == "FV/1"  # downloaded FA(2) invoices are still read
    rr = b"<Faktura xmlns='" + fa3.FA_RR1_NAMESPACE.encode() + b"'/>"
    assert fa3.detect_form_code(rr) is fa3.FA_RR1
    with pytest.raises(fa3.InvoiceValidationError, match="FA_RR"):
        fa3.parse(rr)


def test_form_code_as_api():
    assert fa3.FA3.as_api() == {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}
