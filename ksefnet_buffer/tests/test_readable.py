"""A person reads an invoice, not XML: the rendered invoice and UPO on the form, the printed report, who may see them."""

import base64
import re
from datetime import date
from pathlib import Path

from lxml import etree, html
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

import ksefnet_core
from ksefnet_core import environments, qr
from ksefnet_core.download import DownloadedInvoice
from ksefnet_core.ids import make_ksef_number

from .common import KsefSimulatorCase

MF_SAMPLES = Path(ksefnet_core.__file__).resolve().parent / "tests" / "data" / "fa3-mf-examples"
INVOICE_REPORT = "ksefnet_buffer.report_ksefnet_invoice"
UPO_REPORT = "ksefnet_buffer.report_ksefnet_upo"


def text_of(markup):
    root = html.fragment_fromstring(str(markup), create_parent="div")
    for el in root.iter("p", "div", "tr", "td", "th"):
        el.tail = " " + (el.tail or "")
    return re.sub(r"[ \t\r\n]+", " ", root.text_content()).strip()


def qr_label_url(markup):
    """(the verification URL the page links to, the PNG of its QR code)."""
    root = html.fragment_fromstring(str(markup), create_parent="div")
    (link,) = root.iter("a")
    (img,) = root.iter("img")
    return link.get("href"), base64.b64decode(img.get("src").split(",", 1)[1])


@tagged("post_install", "-at_install")
class TestReadableDocuments(KsefSimulatorCase):
    def purchase(self, sample="FA_3_Przyklad_9.xml"):
        """A purchase invoice downloaded from KSeF (an MF sample: bank account, due date, third party)."""
        xml = (MF_SAMPLES / sample).read_bytes()
        downloaded = DownloadedInvoice(make_ksef_number("9999999999", date(2026, 2, 15)), {}, xml)
        return self.env["ksefnet.document"]._create_downloaded(self.buffer, downloaded, "Subject2")

    def test_a_purchase_invoice_reads_with_lines_addresses_due_date_and_bank_account(self):
        doc = self.purchase()
        self.assertEqual(doc.direction, "purchase")
        text = text_of(doc.invoice_html)
        for expected in (
            "FV2026/02/150",
            "Sprzedawca",
            "Nazwa: ABC Leasing S.A. Adres: ul. Kwiatowa 1 m. 2 00-001 Warszawa Polska (PL)",
            "Nabywca",
            "rata leasingowa za 01/2026",
            "Termin płatności 2026-03-15",
            "Forma płatności: Przelew",
            "73 1111 1111 1111 1111 1111 1111",
            "Bank Bankowości Bankowej S. A.",
            "Szkoła Podstawowa w Bzdziszewie",
            "23% lub 22% 2\u00a0000,00 460,00 2\u00a0460,00",
        ):
            self.assertIn(expected, text)
        # KOD I: the buffer's environment, this very file, labelled with the KSeF number
        url, png = qr_label_url(doc.invoice_html)
        env = self.buffer._environment()
        self.assertEqual(url, qr.invoice_verification_url(env, "9999999999", date(2026, 2, 15), doc._xml()))
        self.assertEqual(png, qr.qr_png(url, doc.ksef_number, scale=3))
        self.assertEqual(env.qr_base, environments.TEST.qr_base, "the simulator's codes point at KSeF TEST")

    def test_a_submitted_sales_invoice_reads_offline_then_with_its_ksef_number_and_upo(self):
        doc = self.submit(buyer_name='Sklep <script>alert("x")</script> & Syn')
        self.assertEqual(doc.state, "waiting")
        markup = str(doc.invoice_html)
        self.assertIn(doc.invoice_number, text_of(markup))
        self.assertIn("Oznaczenie kodu: OFFLINE", text_of(markup))
        self.assertNotIn("<script", markup)
        self.assertIn("Sklep &lt;script&gt;", markup)
        self.assertIn('Nazwa: Sklep <script>alert("x")</script> & Syn', text_of(markup))
        self.assertFalse(doc.upo_html)
        self.send_round()
        self.assertEqual(doc.state, "sent")
        self.assertEqual(doc.upo_state, "stored")
        # The engine writes its columns in SQL; a form opened now reads in a new request (a new cache).
        self.env.invalidate_all()
        self.assertIn(f"Oznaczenie kodu: {doc.ksef_number}", text_of(doc.invoice_html))
        self.assertIn(f"Numer KSeF: {doc.ksef_number}", text_of(doc.invoice_html))
        upo = text_of(doc.upo_html)
        self.assertIn("Urzędowe Poświadczenie Odbioru", upo)
        self.assertIn(doc.ksef_number, upo)
        self.assertIn(f"Numer referencyjny sesji: {doc.ksef_session_ref}", upo)
        self.assertIn(f"Identyfikator kontekstu uwierzytelnienia: NIP: {self.nip}", upo)

    def test_the_form_opens_on_the_invoice_then_the_upo(self):
        arch = self.env["ksefnet.document"].get_view(view_type="form")["arch"]
        pages = etree.fromstring(arch).xpath("//notebook/page/@name")
        self.assertEqual(pages[:3], ["invoice", "upo", "history"])
        self.assertTrue(etree.fromstring(arch).xpath("//page[@name='invoice']/field[@name='invoice_html']"))
        buttons = etree.fromstring(arch).xpath("//header/button/@name")
        report = self.env.ref("ksefnet_buffer.action_report_ksefnet_invoice")
        self.assertIn(str(report.id), buttons)

    def test_the_invoice_and_the_upo_print(self):
        self.assertEqual(self.env.ref("ksefnet_buffer.action_report_ksefnet_invoice").report_type, "qweb-pdf")
        docs = self.submit(2)
        self.send_round()
        content, kind = self.env["ir.actions.report"]._render_qweb_html(INVOICE_REPORT, docs.ids)
        self.assertEqual(kind, "html")
        page = html.document_fromstring(content)
        articles = page.xpath("//div[@class='article']")
        self.assertEqual([int(a.get("data-oe-id")) for a in articles], docs.ids, "one article per document")
        for doc, article in zip(docs, articles, strict=True):
            text = text_of(etree.tostring(article, encoding="unicode"))
            self.assertIn(doc.invoice_number, text)
            self.assertIn("Pozycje", text)
            self.assertIn(f"Oznaczenie kodu: {doc.ksef_number}", text)
            self.assertTrue(article.xpath(".//img[starts-with(@src, 'data:image/png;base64,')]"))
        content, _kind = self.env["ir.actions.report"]._render_qweb_html(UPO_REPORT, docs[:1].ids)
        self.assertIn(docs[0].ksef_number, text_of(content.decode()))
        self.assertIn("Urzędowe Poświadczenie Odbioru", text_of(content.decode()))
        # the PDF action (without wkhtmltopdf here, Odoo's test mode renders it as HTML)
        pdf, _kind = self.env["ir.actions.report"]._render_qweb_pdf(INVOICE_REPORT, docs[:1].ids)
        self.assertIn(docs[0].invoice_number.encode(), pdf)

    def test_only_those_who_may_read_the_document_read_or_print_its_rendering(self):
        doc = self.submit()
        self.send_round()
        outsider = self.other_company_admin("ksef_reader_elsewhere")
        # (an administrator: ksefnet_documents, when installed, gives KSeF users only the documents they are
        # permitted; its tests check the rendering under those rules)
        clerk = new_test_user(self.env, login="ksef_reader_here", groups="ksefnet_buffer.group_ksef_admin")
        self.assertIn(doc.invoice_number, text_of(doc.with_user(clerk).invoice_html))
        self.assertIn(doc.ksef_number, text_of(doc.with_user(clerk).upo_html))
        for field in ("invoice_html", "upo_html"):
            with self.assertRaises(AccessError):
                doc.with_user(outsider).read([field])
            with self.assertRaises(AccessError):
                doc.with_user(outsider)[field]  # noqa: B018 - reading is the test
        for report in (INVOICE_REPORT, UPO_REPORT):
            with self.assertRaises(AccessError):
                self.env["ir.actions.report"].with_user(outsider)._render_qweb_html(report, doc.ids)
        content, _kind = (
            self.env["ir.actions.report"].with_user(clerk)._render_qweb_html(INVOICE_REPORT, doc.ids)
        )
        self.assertIn(doc.invoice_number, text_of(content.decode()))
        nobody = new_test_user(self.env, login="not_a_ksef_user", groups="base.group_user")
        with self.assertRaises(AccessError):
            doc.with_user(nobody).invoice_html  # noqa: B018

    def test_an_unreadable_file_is_said_not_shown(self):
        doc = self.purchase()
        doc.xml_attachment_id.sudo().raw = b"<Faktura>broken"
        doc.invalidate_recordset(["invoice_html"])
        markup = str(doc.with_context(lang="en_US").invoice_html)
        self.assertIn('class="alert alert-warning"', markup)
        self.assertIn("The invoice cannot be displayed:", markup)
        self.assertIn("not well-formed", markup)
