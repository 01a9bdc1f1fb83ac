"""Classification notes, validity reasons and shop group names read in the reader's language."""

from odoo.addons.ksefnet_buffer.tests.test_messages_i18n import (
    as_reader,
    english_left,
    install_polish,
    msgids,
)
from odoo.tests import new_test_user, tagged

from ksefnet_core.download import DownloadedInvoice
from ksefnet_core.testing import ThirdParty, sample_invoice

from ..models.ksefnet_document import VALIDITY_REASONS
from .common import US, DocumentsCase

#: every kind of condition a rule explains itself with (KsefnetClassificationRule._reason_part)
REASONS = {
    "direction %(d)s", "kind %(k)s", "seller NIP %(nip)s", "gross %(amount)s", "validity %(v)s",
    "%(field)s contains %(text)s", "address of shop %(code)s", "GLN %(gln)s", "delivery id %(id)s",
}  # fmt: skip


@tagged("post_install", "-at_install")
class TestDocumentMessagesReadInPolish(DocumentsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.english = install_polish(env, "ksefnet_buffer", "ksefnet_documents")
        groups = "base.group_user,ksefnet_buffer.group_ksef_admin"
        cls.polish_reader = new_test_user(env, "ksiegowa_dok", groups=groups, lang="pl_PL")
        cls.english_reader = new_test_user(env, "clerk_dok", groups=groups, lang="en_US")
        cls.shop = env["ksefnet.shop"].create(
            {"name": "Warszawa Polna", "code": "WAW1", "buffer_id": cls.buffer.id, "street": "Polna 1",
             "postal_code": "00-001", "city": "Warszawa", "gln_numbers": "5901234000011",
             "delivery_patterns": "WZ/WAW/*"}
        )  # fmt: skip
        rule = cls.rule
        # the rules' names are what a person typed (shown as typed): Polish here
        rule("Zakupy", 1, direction="purchase")
        rule("Faktury VAT", 2, invoice_kind_ids=[(6, 0, env["ksefnet.invoice.kind"].search([]).ids)])
        rule("Dostawca", 3, seller_nips="7740001454")
        rule("Kwota", 4, amount_min=1)
        rule("Zasadne", 5, validity="valid")
        rule("Sprzedawca AGD", 6, text_field="seller_name", text_value="AGD")
        rule("Adres sklepu", 7, address_match="shop", address_shop_id=cls.shop.id, shop_action="matched")
        rule("GLN sklepu", 8, gln_match="any_shop", shop_action="matched")
        rule("Dostawy WZ", 9, delivery_match="any_shop", shop_action="matched")
        rule("Bez warunków", 10)

    def documents_of_every_kind(self):
        """One document for each validity reason (and for a sales invoice, an unreadable one, one that no
        rule matches) with every kind of rule condition among them."""
        generated = self.generated
        docs = generated(buyer_gln="5901234000011", delivery_notes=("WZ/WAW/1",))  # buyer's NIP is ours
        docs |= generated(buyer_nip="7740001454")  # addressed to another NIP
        docs |= generated(buyer_nip="7740001454", third_parties=(ThirdParty(nip=US, role=2),))  # recipient
        docs |= generated(buyer_nip="7740001454", third_parties=(ThirdParty(nip=US, role=1),))  # factor
        docs |= generated(buyer_name="Zupełnie Inna Spółka")  # our NIP, not our name
        no_nip = self.invoice_xml(buyer_nip="5555555555").replace(
            b"<NIP>5555555555</NIP>", b"<BrakID>1</BrakID>", 1
        )
        docs |= self.store(no_nip)  # no Polish NIP
        docs |= self.store(b"<Faktura><Fa/></Faktura>")  # cannot be read
        docs |= self.store(self.invoice_xml(seller_nip=US, buyer_nip="7740001454"), direction="sales")
        return docs

    def invoice_xml(self, **kw):
        kw.setdefault("seller_nip", "7740001454")
        kw.setdefault("number", f"FV/PL/{len(self.Document.search([]))}")
        return sample_invoice(**kw)

    def test_validity_reasons_and_classification_notes_read_in_polish(self):
        docs = self.documents_of_every_kind()
        unmatched = self.env["ksefnet.buffer"].create({"name": "Pusty", "nip": "7740001454"})
        downloaded = DownloadedInvoice(
            "7740001454-20260301-0000000000AA-00", {}, self.invoice_xml(buyer_nip="7740001454")
        )
        orphan = self.Document._create_downloaded(unmatched, downloaded, "Subject2")  # a buffer without rules
        orphan._on_arrival()
        docs |= orphan
        written = set()
        for doc in docs:
            for name in ("validity_reasons", "classification_note"):
                where = f"{doc.invoice_number or doc.ksef_number}.{name}"
                template = doc[f"{name}_template"]
                self.assertTrue(template, f"{where} stored as plain text: {doc[f'{name}_source']!r}")
                written |= msgids(template)
                polish = as_reader(doc, self.polish_reader)[name]
                english = as_reader(doc, self.english_reader)[name]
                self.assertEqual(english, doc[f"{name}_source"])
                self.assertFalse(english_left(polish, self.english), f"{where}: {polish!r}")
                self.assertNotEqual(polish, english, where)
        self.assertLessEqual({t._source for t in VALIDITY_REASONS.values()}, written, "every validity reason")
        self.assertLessEqual(REASONS, written, "every kind of rule condition")
        self.assertLessEqual(
            {"The company is the seller.", "The invoice XML cannot be read.", "No rule matched: Unassigned.",
             "always"},
            written,
        )  # fmt: skip
        first = as_reader(docs[0], self.polish_reader)
        self.assertIn("Zakupy: kierunek Zakup", first.classification_note)
        self.assertIn("NIP nabywcy 1111111111 jest NIP-em firmy", first.validity_reasons)
        self.assertIn(
            "Zakupy: direction Purchase", as_reader(docs[0], self.english_reader).classification_note
        )

    def test_shop_group_names_are_translated(self):
        shop = self.shop
        self.assertEqual(shop.group_id.with_context(lang="pl_PL").name, "Sklep WAW1: Warszawa Polna")
        self.assertEqual(shop.group_id.with_context(lang="en_US").name, "Shop WAW1: Warszawa Polna")
        shop.write({"name": "Warszawa Polna 2", "code": "WAW2"})
        self.assertEqual(shop.group_id.with_context(lang="pl_PL").name, "Sklep WAW2: Warszawa Polna 2")
        self.assertEqual(shop.group_id.with_context(lang="en_US").name, "Shop WAW2: Warszawa Polna 2")
        self.assertEqual(
            shop.group_id.with_context(lang="pl_PL").full_name,
            f"{shop.group_id.category_id.with_context(lang='pl_PL').name} / Sklep WAW2: Warszawa Polna 2",
        )
        # a language installed after the shop exists (here: loaded again) names the groups too
        shop.group_id.update_field_translations("name", {"pl_PL": "stara nazwa"})
        self.env["ir.module.module"]._load_module_terms(["ksefnet_documents"], ["pl_PL"])
        self.assertEqual(shop.group_id.with_context(lang="pl_PL").name, "Sklep WAW2: Warszawa Polna 2")
