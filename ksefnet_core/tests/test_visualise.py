"""Invoices and UPOs rendered as HTML for people: the official samples, the values a reader needs, hostile text."""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from lxml import etree, html

from ksefnet_core import environments, fa3, qr, visualise
from ksefnet_core.ids import make_ksef_number
from ksefnet_core.simulator.processing import StoredInvoice, check_and_parse
from ksefnet_core.simulator.upo import invoice_upo, session_upo_pages
from ksefnet_core.testing import sample_invoice

DATA = Path(__file__).resolve().parent / "data"
MF = DATA / "fa3-mf-examples"
MF_SAMPLES = sorted(MF.glob("*.xml"))
CIRFMF_SAMPLES = sorted((DATA / "fa3-cirfmf").glob("*.xml"))
UPO_SAMPLES = sorted((DATA / "upo").glob("*.xml"))
NBSP = "\u00a0"
KSEF_NUMBER = make_ksef_number("9999999999", date(2026, 2, 15), "ABCDEF012345")
PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>" onmouseover="alert(2)'


def render(path: Path | bytes, **kwargs) -> str:
    data = path if isinstance(path, bytes) else path.read_bytes()
    return visualise.invoice_html(data, **kwargs)


def tree(fragment: str) -> html.HtmlElement:
    return html.fragment_fromstring(fragment)


def squash(text: str) -> str:
    """Runs of ASCII white space as one space (no-break spaces, as in "1 234,00", are kept)."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def text_of(fragment: str) -> str:
    """The text a reader sees, one space between blocks."""
    root = tree(fragment)
    for el in root.iter("p", "div", "tr", "td", "th", "table"):
        el.tail = " " + (el.tail or "")
    return squash(root.text_content())


def table_rows(fragment: str, header: str) -> list[list[str]]:
    """The rows (cell texts) of the table whose header row has the cell ``header``."""
    for table in tree(fragment).iter("table"):
        rows = table.findall("tr")
        if rows and header in [squash(c.text_content()) for c in rows[0]]:
            return [[squash(c.text_content()) for c in row] for row in rows]
    raise AssertionError(f"no table with the column {header!r}")


SAFE_ATTRIBUTES = {
    "style",
    "rules",
    "class",
    "width",
    "align",
    "valign",
    "nowrap",
    "border",
    "cellpadding",
    "cellspacing",
}
SAFE_ATTRIBUTES |= {"href", "target", "rel", "src", "alt", "title"}


def assert_safe(fragment: str) -> None:
    """No script, no event handler, no style or link that the XML could have supplied."""
    root = tree(fragment)
    assert not root.xpath("//script | //iframe | //object | //embed | //style | //form | //meta | //link")
    for el in root.iter():
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (el.tag, name)
            assert name in SAFE_ATTRIBUTES, (el.tag, name)
            if name == "href":
                assert value.startswith("https://qr-test.ksef.mf.gov.pl/invoice/"), value
            if name == "src":
                assert value.startswith("data:image/png;base64,"), value[:40]
            if name == "style":
                assert value in visualise._STYLE.values()


def filled(path: Path) -> bytes:
    """A CIRFMF template with its placeholders filled (as test_fa3 does)."""
    return (
        path.read_bytes()
        .replace(b"#nip#", b"5265877635")
        .replace(b"#invoice_number#", b"FV/1/2026")
        .replace(b"#invoicing_date#", b"2026-03-02")
    )


# -- every sample -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", MF_SAMPLES + CIRFMF_SAMPLES, ids=lambda p: p.name)
def test_every_sample_renders_safely_with_its_number_parties_and_total(path):
    data = filled(path) if path.parent.name == "fa3-cirfmf" else path.read_bytes()
    invoice = fa3.parse(data)
    out = render(data, ksef_number=KSEF_NUMBER, environment=environments.TEST)
    assert_safe(out)
    text = text_of(out)
    assert invoice.number in text
    assert visualise.INVOICE_KIND_LABELS[invoice.kind] in text or "zbiorcza (rabat)" in text
    assert f"NIP: {invoice.seller.nip}" in text
    assert invoice.seller.name and invoice.seller.name in text
    assert (
        visualise._money(str(invoice.gross_total), invoice.currency) in text
    )  # P_15 as read: "2 051,00 PLN"
    for line in fa3._findall(fa3.parse_tree(data)[1], "Fa/FaWiersz/P_7"):
        assert " ".join(line.text.split()) in text
    assert "Sprawdź, czy Twoja faktura znajduje się w KSeF!" in text
    page = render(data, page=True)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="pl">' in page
    assert html.document_fromstring(page).findtext(".//title") == f"Faktura {invoice.number}"


def test_the_samples_are_there():
    assert len(MF_SAMPLES) == 26 and len(CIRFMF_SAMPLES) == 4 and len(UPO_SAMPLES) == 7


# -- what a reader needs --------------------------------------------------------------------------------------
def test_a_basic_invoice_reads_as_on_paper():
    out = render(MF / "FA_3_Przyklad_1.xml")
    text = text_of(out)
    assert "Faktura podstawowa" in text and "FV2026/02/150" in text
    # parties with their addresses and contacts
    assert "Sprzedawca" in text and "Nabywca" in text
    assert "Nazwa: ABC AGD sp. z o. o. Adres: ul. Kwiatowa 1 m. 2 00-001 Warszawa Polska (PL)" in text
    assert "E-mail: abc@abc.pl Tel.: 667444555" in text
    assert "NIP: 1111111111 Nazwa: F.H.U. Jan Kowalski Adres: ul. Polna 1" in text
    assert "Numer klienta: fdfd778343" in text
    # dates and place
    assert "Data wystawienia: 2026-02-15" in text and "Miejsce wystawienia: Warszawa" in text
    assert "Data dokonania lub zakończenia dostawy towarów lub wykonania usługi: 2026-01-27" in text
    # lines: every column in its place
    rows = table_rows(out, "Nazwa towaru lub usługi")
    assert rows[0] == [
        "Lp.",
        "Nazwa towaru lub usługi",
        "Cena jedn. netto",
        "Ilość",
        "Miara",
        "Stawka podatku",
        "Wartość sprzedaży netto",
    ]
    assert rows[1] == ["1", "lodówka Zimnotech mk1", f"1{NBSP}626,01", "1", "szt.", "23%", f"1{NBSP}626,01"]
    assert rows[3] == ["3", "promocja lodówka pełna mleka", "0,95", "1", "szt.", "5%", "0,95"]
    # VAT summary by rate, with a total row
    summary = table_rows(out, "Kwota podatku")
    assert summary[1] == ["1", "23% lub 22%", f"1{NBSP}666,66", "383,33", f"2{NBSP}049,99"]
    assert summary[2] == ["2", "5%", "0,95", "0,05", "1,00"]
    assert summary[3] == ["", "Razem", f"1{NBSP}667,61", "383,38", f"2{NBSP}050,99"]
    assert f"Kwota należności ogółem: 2{NBSP}051,00 PLN" in text
    # payment, order, additional description, footer
    assert "Informacja o płatności: Zapłacono Data zapłaty: 2026-01-27 Forma płatności: Przelew" in text
    assert table_rows(out, "Numer zamówienia")[1] == ["2026-01-26", "4354343"]
    assert table_rows(out, "Rodzaj informacji")[1] == [
        "preferowane godziny dowozu",
        "dni robocze 17:00 - 20:00",
    ]
    assert "Faktura, o której mowa w art. 109 ust. 3d ustawy" in text  # FP
    assert "Kapiał zakładowy 5 000 000" in text
    assert table_rows(out, "KRS")[1] == ["0000099999", "999999999", "000099999"]
    assert "Brak adnotacji" in text  # every Adnotacje marker says "no"
    assert "Wytworzona w: SamploFaktur" in text


def test_due_date_bank_account_third_party_and_exemption():
    out = render(MF / "FA_3_Przyklad_9.xml")
    text = text_of(out)
    assert table_rows(out, "Termin płatności")[1] == ["2026-03-15"]
    assert table_rows(out, "Pełny numer rachunku")[1] == [
        "73 1111 1111 1111 1111 1111 1111",
        "Bank Bankowości Bankowej S. A.",
        "PLN",
    ]
    assert "Informacja o płatności: Brak zapłaty" in text
    assert "Podmiot inny 1 NIP: 2222222222 Nazwa: Szkoła Podstawowa w Bzdziszewie" in text
    assert "Rola: Jednostka samorządu terytorialnego - odbiorca" in text
    assert "Faktura dotyczy jednostki podrzędnej JST: TAK" in text
    assert "Okres, którego dotyczy faktura: od 2026-01-01 do 2026-01-01" in text
    assert "zwolnionych od podatku" in text
    assert "Przepis ustawy albo aktu wydanego na podstawie ustawy: art. 43 ust. 1 pkt 37 ustawy VAT" in text
    assert table_rows(out, "Stawka podatku")[2][5] == "zw"
    assert ["2", "zwolnione od podatku", "300,00", "", "300,00"] in table_rows(out, "Kwota brutto")


def test_a_correction_shows_the_corrected_invoice_and_the_reason():
    out = render(MF / "FA_3_Przyklad_2.xml")
    text = text_of(out)
    assert "Faktura korygująca" in text
    assert "Przyczyna korekty: obniżka ceny o 200 zł z uwagi na uszkodzenia estetyczne" in text
    assert "Typ skutku korekty: Korekta skutkująca w dacie innej" in text
    assert table_rows(out, "Numer faktury korygowanej")[1] == [
        "1",
        "FV2026/02/150",
        "2026-02-15",
        "9999999999-20230908-8BEF280C8D35-4D",
    ]
    assert "Korekta kwoty należności ogółem: -200,00 PLN" in text
    lines = table_rows(out, "Nazwa towaru lub usługi")
    assert lines[0][-1] == "Stan" and [row[-1] for row in lines[1:]] == ["przed korektą", "po korekcie"]


def test_a_correction_of_the_buyer_shows_the_buyer_as_on_the_corrected_invoice():
    text = text_of(render(MF / "FA_3_Przyklad_5.xml"))
    assert "Przyczyna korekty: błędna nazwa nabywcy" in text
    assert "Nabywca na fakturze korygowanej NIP: 1111111111 Nazwa: CDE sp. j." in text
    assert "Nabywca NIP: 1111111111 Nazwa: CeDeE s.c." in text


def test_gross_prices_are_said_and_shown():
    out = render(MF / "FA_3_Przyklad_19.xml")
    assert "Faktura wystawiona w cenach brutto, w walucie PLN" in text_of(out)
    rows = table_rows(out, "Cena jedn. brutto")
    assert rows[0][-1] == "Wartość sprzedaży brutto" and "Cena jedn. netto" not in rows[0]
    assert rows[2][1:] == [
        "wycieczka na Mazury usługa własna",
        f"1{NBSP}000,00",
        "1",
        "szt.",
        "23%",
        f"1{NBSP}000,00",
    ]


def test_foreign_currency_transport_and_advance_order():
    out = render(MF / "FA_3_Przyklad_20.xml")
    text = text_of(out)
    assert "Kod waluty: EUR" in text and f"Kwota należności ogółem: 16{NBSP}678,80 EUR" in text
    summary = table_rows(out, "Kwota podatku PLN")
    assert summary[1][-1] == f"14{NBSP}036,16"
    assert "Rodzaj transportu: Transport drogowy" in text and "Nazwa: Jan Nowak Transport" in text
    assert "Numer rachunku bankowego faktora" in text
    advance = render(MF / "FA_3_Przyklad_10.xml")
    assert "Faktura zaliczkowa" in text_of(advance)
    assert f"Otrzymana kwota zapłaty (zaliczki): 20{NBSP}000,00 PLN" in text_of(advance)
    order = table_rows(advance, "Kwota podatku")
    assert order[1][1:3] == ["mieszkanie 50m^2", f"300{NBSP}000,00"]


def test_settlement_and_attachment():
    out = render(MF / "FA_3_Przyklad_24.xml")
    text = text_of(out)
    assert "Do zapłaty: 53,63 PLN" in text
    assert table_rows(out, "Powód obciążenia")[1] == ["Odsetki", "0,00 PLN"]
    assert "Załącznik do faktury" in text
    assert ["Grupa taryfowa", "G11"] in table_rows(out, "Klucz")
    assert ["całodobowa", "kWh", "20", "0.9000", "18.00", "23"] in table_rows(out, "Stawka VAT(%)")


def test_a_long_invoice_renders_every_line_and_stays_light():
    data = (MF / "FA_3_Przyklad_1.xml").read_bytes()
    line = re.search(rb"<FaWiersz>.*?</FaWiersz>", data, re.S).group(0)
    long = data.replace(line, line * 2000, 1)
    out = render(long)
    assert len(table_rows(out, "Nazwa towaru lub usługi")) == 1 + 2000 + 2
    assert len(out) - len(render(data)) < 2000 * 300, "a line costs some 250 bytes of HTML, no style per cell"


def test_numbers_in_polish_notation():
    assert visualise._number("1234567.5") == f"1{NBSP}234{NBSP}567,50"
    assert visualise._number("-246") == "-246,00"
    assert visualise._number("2.125", money=False) == "2,125"
    assert visualise._number("4.50050000") == "4,50050000"  # an amount's decimals are never dropped
    assert visualise._number("n/a") == "n/a"
    assert visualise._rate("0 KR") == "0% KR" and visualise._rate("np II") == "np II"


# -- the KOD I verification QR code ---------------------------------------------------------------------------
def qr_image(fragment: str) -> bytes:
    (img,) = tree(fragment).iter("img")
    prefix = "data:image/png;base64,"
    assert img.get("src").startswith(prefix)
    return base64.b64decode(img.get("src")[len(prefix) :])


def test_the_qr_code_links_to_the_verification_of_this_very_file_with_the_ksef_number():
    data = (MF / "FA_3_Przyklad_1.xml").read_bytes()
    out = render(data, ksef_number=KSEF_NUMBER, environment=environments.TEST)
    url = qr.invoice_verification_url(environments.TEST, "9999999999", date(2026, 2, 15), data)
    assert qr_image(out) == qr.qr_png(url, KSEF_NUMBER, scale=3)
    (link,) = tree(out).iter("a")
    assert link.get("href") == url and link.text == url
    assert f"Oznaczenie kodu: {KSEF_NUMBER}" in text_of(out)
    assert f"Numer KSeF: {KSEF_NUMBER}" in text_of(out)  # in the header too


def test_without_a_ksef_number_the_code_says_offline_and_without_an_environment_there_is_none():
    data = (MF / "FA_3_Przyklad_1.xml").read_bytes()
    out = render(data, environment=environments.PRODUCTION)
    url = qr.invoice_verification_url(environments.PRODUCTION, "9999999999", date(2026, 2, 15), data)
    assert qr_image(out) == qr.qr_png(url, "OFFLINE", scale=3)
    assert "Oznaczenie kodu: OFFLINE" in text_of(out) and "Numer KSeF" not in text_of(out)
    assert not list(tree(render(data)).iter("img"))


def test_a_code_that_cannot_be_made_is_explained_not_fatal():
    data = (
        (MF / "FA_3_Przyklad_1.xml")
        .read_bytes()
        .replace(b"<NIP>9999999999</NIP>", b"<NIP>1234567890</NIP>", 1)
    )
    out = render(data, environment=environments.TEST)
    assert "Nie można utworzyć kodu QR weryfikacji (KOD I)" in text_of(out)
    assert not list(tree(out).iter("img"))


# -- hostile text ---------------------------------------------------------------------------------------------
def xml_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_script_in_a_line_name_comes_out_as_text():
    data = (MF / "FA_3_Przyklad_1.xml").read_bytes()
    hostile = data.replace(
        b"<P_7>lod\xc3\xb3wka Zimnotech mk1</P_7>", f"<P_7>{xml_text(PAYLOAD)}</P_7>".encode()
    )
    assert hostile != data
    out = render(hostile, environment=environments.TEST)
    assert "<script" not in out and "<img src=x" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert_safe(out)
    assert table_rows(out, "Nazwa towaru lub usługi")[1][1] == " ".join(PAYLOAD.split())
    cdata = data.replace(
        b"<P_7>lod\xc3\xb3wka Zimnotech mk1</P_7>", b"<P_7><![CDATA[<script>alert(1)</script>]]></P_7>"
    )
    out = render(cdata)
    assert "<script" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_hostile_text_in_every_element_of_an_invoice_stays_text():
    """Every text of a rich sample replaced by a payload: still safe, and the payload is shown escaped."""
    for sample in (
        "FA_3_Przyklad_1.xml",
        "FA_3_Przyklad_9.xml",
        "FA_3_Przyklad_20.xml",
        "FA_3_Przyklad_24.xml",
    ):
        root = etree.fromstring((MF / sample).read_bytes())
        leaves = [el for el in root.iter() if isinstance(el.tag, str) and len(el) == 0 and el.text]
        for el in leaves:
            if etree.QName(el).localname not in ("P_1",):  # the issue date must stay a date to be an invoice
                el.text = PAYLOAD
        out = render(
            etree.tostring(root, xml_declaration=True, encoding="UTF-8"), environment=environments.TEST
        )
        assert_safe(out)
        assert "<script" not in out
        assert out.count("&lt;script&gt;") >= 20, sample
        assert "Nie można utworzyć kodu QR" in text_of(out)  # the seller's NIP is no NIP any more


def test_a_payment_link_from_the_invoice_is_never_clickable():
    data = (MF / "FA_3_Przyklad_9.xml").read_bytes()
    with_link = data.replace(
        b"<FormaPlatnosci>6</FormaPlatnosci>",
        b"<FormaPlatnosci>6</FormaPlatnosci><LinkDoPlatnosci>javascript:alert(1)</LinkDoPlatnosci>",
    )
    out = render(with_link)
    assert "Link do płatności bezgotówkowej: javascript:alert(1)" in text_of(out)
    assert not list(tree(out).iter("a"))


# -- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "cannot be shown"),
        (b"not xml", "not well-formed"),
        (b'<!DOCTYPE x [<!ENTITY e "boom">]><Faktura/>', "DOCTYPE"),
        (b"<Potwierdzenie xmlns='http://upo.schematy.mf.gov.pl/KSeF/v4-3'/>", "Not a KSeF invoice"),
        (b"<Faktura xmlns='http://crd.gov.pl/wzor/2025/06/25/13775/'/>", "no Fa section"),
    ],
)
def test_what_is_not_an_invoice_is_refused_clearly(data, message):
    with pytest.raises(visualise.VisualisationError, match=message):
        visualise.invoice_html(data)


def test_text_instead_of_bytes_is_refused():
    with pytest.raises(visualise.VisualisationError, match="bytes"):
        visualise.invoice_html((MF / "FA_3_Przyklad_1.xml").read_text())  # type: ignore[arg-type]
    with pytest.raises(visualise.VisualisationError, match="bytes"):
        visualise.upo_html("<Potwierdzenie/>")  # type: ignore[arg-type]


# -- the UPO --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", UPO_SAMPLES, ids=lambda p: p.name)
def test_every_sample_upo_renders(path):
    out = visualise.upo_html(path.read_bytes())
    assert_safe(out)
    text = text_of(out)
    root = etree.fromstring(path.read_bytes())
    ns = {"u": etree.QName(root).namespace}
    for number in root.xpath("//u:NumerKSeFDokumentu/text()", namespaces=ns):
        assert number.strip() in text
    assert root.xpath("string(//u:NumerReferencyjnySesji)", namespaces=ns).strip() in text
    assert "Urzędowe Poświadczenie Odbioru" in text


def test_an_invoice_upo_reads_with_its_context_dates_and_mode():
    out = visualise.upo_html((DATA / "upo" / "upo-faktura-kontekst-id-nip.xml").read_bytes())
    text = text_of(out)
    assert "Nazwa podmiotu przyjmującego dokument: Ministerstwo Finansów - środowisko testowe (TE)" in text
    assert "Numer referencyjny sesji: 36950822-93-9D5A28BFDA-47C899773E-5C" in text
    assert "Identyfikator kontekstu uwierzytelnienia: NIP: 5265877635" in text
    assert "Kod formularza: FA (3)" in text
    assert table_rows(out, "Numer KSeF")[1] == [
        "1",
        "5265877635-20250916-0200A0D6723E-C2",
        "FA/XVQUD-9997622510/04/2027",
        "5265877635",
        "2025-09-16",
        "2025-09-16 11:05:40",  # Polish time
        "2025-09-16 11:05:41",
        "Online",
        "GZMGNVzs3krF6URKgvaw77OOeG3nJ+WGziT5xguliQ8=",
    ]


def stored(number: str) -> StoredInvoice:
    xml = sample_invoice(seller_nip="5265877635", number=number, issue_date=date(2026, 3, 2))
    moment = datetime(2026, 3, 2, 9, 30, 0, tzinfo=timezone.utc)
    return StoredInvoice(
        ksef_number=make_ksef_number("5265877635", date(2026, 3, 2)),
        xml=xml,
        parsed=check_and_parse(xml, date(2026, 3, 2)),
        invoice_hash="abc=",
        invoicing_date=moment,
        acquisition_date=moment,
        permanent_storage_date=moment,
        invoicing_mode="Online",
        form_code={},
    )


def test_the_simulators_upos_render_an_invoice_and_a_session_page():
    inv = stored("FV/<b>1</b>/2026")
    one = visualise.upo_html(
        invoice_upo(inv, "Ministerstwo Finansów", "20260302-SO-1", "Nip", "5265877635", "h=")
    )
    assert_safe(one)
    row = table_rows(one, "Numer KSeF")[1]
    assert row[1:4] == [inv.ksef_number, "FV/<b>1</b>/2026", "5265877635"]
    assert row[5] == "2026-03-02 10:30:00"  # 09:30 UTC is 10:30 in Warsaw in March
    (page,) = session_upo_pages([inv, stored("FV/2/2026")], "MF", "20260302-SB-2", "Nip", "5265877635", "h=")
    text = text_of(visualise.upo_html(page))
    assert "Strona dokumentu UPO: 1 z 1" in text and "Całkowita liczba dokumentów: 2" in text
    assert len(table_rows(visualise.upo_html(page), "Numer KSeF")) == 3


def test_what_is_not_a_upo_is_refused():
    with pytest.raises(visualise.VisualisationError, match="Not a KSeF UPO"):
        visualise.upo_html((MF / "FA_3_Przyklad_1.xml").read_bytes())
    with pytest.raises(visualise.VisualisationError, match="not well-formed"):
        visualise.upo_html(b"<Potwierdzenie>")


def test_the_command_line_writes_a_page(tmp_path, capsys):
    assert visualise.main([str(MF / "FA_3_Przyklad_1.xml"), KSEF_NUMBER]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and re.search(r"<img[^>]+data:image/png;base64,", out)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<x/>")
    assert visualise.main([str(bad)]) == 1
    assert "Not a KSeF invoice" in capsys.readouterr().err
