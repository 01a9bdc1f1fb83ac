"""What administrators and accountants do on the screens: roles on the user form, shops and permissions from
it, purchases apart from sales on the Overview, a rejected invoice corrected by uploading its XML, buttons that
say what they did."""

import base64

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from ksefnet_core.testing import sample_invoice

from .common import DocumentsCase


@tagged("post_install", "-at_install")
class TestUserScreens(DocumentsCase):
    def test_the_ksef_role_is_one_choice_on_the_user_form_and_gives_the_groups(self):
        person = new_test_user(self.env, login="nowa", groups="base.group_user")
        self.assertEqual(person.ksefnet_role, "none")
        person.ksefnet_role = "admin"
        self.assertTrue(person.has_group("ksefnet_buffer.group_ksef_admin"))
        person.ksefnet_role = "user"
        self.assertTrue(person.has_group("ksefnet_buffer.group_ksef_user"))
        self.assertFalse(person.has_group("ksefnet_buffer.group_ksef_admin"))
        person.ksefnet_role = "none"
        self.assertFalse(person.has_group("ksefnet_buffer.group_ksef_user"))
        # Odoo shows a category whose groups form a chain as one selection, without developer mode: the
        # shops' groups and the integration group live in categories of their own
        shop = self.env["ksefnet.shop"].create({"name": "Rynek", "code": "S9", "buffer_id": self.buffer.id})
        category = self.env.ref("ksefnet_buffer.module_category_ksefnet")
        self.assertEqual(
            set(self.env["res.groups"].search([("category_id", "=", category.id)]).mapped("name")),
            {"KSeF user", "KSeF administrator"},
        )
        self.assertNotEqual(shop.group_id.category_id, category)
        clerk = new_test_user(self.env, login="kasjer2", groups="base.group_user")
        with self.assertRaises(AccessError):
            person.with_user(clerk).ksefnet_role = "admin"

    def test_shops_and_permissions_are_reached_from_the_user(self):
        shop = self.env["ksefnet.shop"].create({"name": "Rynek", "code": "S1", "buffer_id": self.buffer.id})
        person = new_test_user(self.env, login="sklepowa", groups="ksefnet_buffer.group_ksef_user")
        doc = self.generated(number="FV/S1/1")
        doc.shop_id = shop
        self.assertFalse(self.Document.with_user(person).search([("id", "=", doc.id)]))
        person.ksefnet_shop_ids = shop
        self.assertIn(person, shop.user_ids)
        self.assertEqual(
            self.Document.with_user(person).search([("id", "=", doc.id)]), doc, "rules see it at once"
        )
        person.ksefnet_shop_ids = False
        self.assertNotIn(person, shop.user_ids)
        permission = self.env["ksefnet.permission"].create({"name": "Wszystko", "include_unassigned": True})
        person.ksefnet_permission_ids = permission
        self.assertIn(person, permission.user_ids)
        self.assertTrue(self.Document.with_user(person).search([("id", "=", doc.id)]))

    def test_the_overview_counts_sales_by_status_and_purchases_apart(self):
        self.generated(number="FV/P/1")
        self.generated(number="FV/P/2")
        self.buffer.invalidate_recordset()
        self.assertEqual(self.buffer.count_sent, 0, "downloaded purchases are not 'sent' sales")
        self.assertEqual(self.buffer.count_purchases, 2)
        action = self.buffer.with_context(ksefnet_direction="purchase").action_open_documents()
        self.assertIn(("direction", "=", "purchase"), action["domain"])
        self.assertEqual(self.Document.search_count(action["domain"]), 2)

    def test_a_rejected_invoice_is_corrected_by_uploading_its_xml(self):
        seller = self.env["ksefnet.buffer"].create({"name": "Sprzedaż", "nip": "5265877635"})
        doc = self.Document._create_submitted(
            seller, sample_invoice(seller_nip="5265877635", number="FV/K/1")
        )
        doc._set_state("processing")
        doc._set_state("failure", code=450, message="Błąd weryfikacji semantyki")
        wizard = self.env["ksefnet.correction.wizard"].create(
            {"document_id": doc.id, "xml_file": base64.b64encode(b"<not-an-invoice/>")}
        )
        with self.assertRaises(ValidationError):
            wizard.action_apply()
        self.assertEqual(doc.state, "failure", "a wrong file changes nothing")
        corrected = sample_invoice(seller_nip="5265877635", number="FV/K/1", net_amounts=("12.00",))
        self.env["ksefnet.correction.wizard"].create(
            {"document_id": doc.id, "xml_file": base64.b64encode(corrected)}
        ).action_apply()
        self.assertEqual((doc.state, doc._xml()), ("waiting", corrected))
        reader = new_test_user(self.env, login="tylko_czyta", groups="ksefnet_buffer.group_ksef_user")
        with self.assertRaises(AccessError):
            doc.with_user(reader).action_open_correction()

    def test_buttons_say_what_they_did(self):
        docs = self.generated(number="FV/R/1") | self.generated(number="FV/R/2")
        result = docs.action_reclassify()
        self.assertEqual(result["tag"], "display_notification")
        self.assertIn("2", result["params"]["message"])
        self.buffer.credentials_set = True
        for action in (self.buffer.action_send_now(), self.buffer.action_download_now()):
            self.assertEqual(action["tag"], "display_notification")
            self.assertTrue(action["params"]["message"])

    def test_a_catalog_counts_its_sub_catalogs_and_the_only_buffer_is_preselected(self):
        costs = self.catalog("Koszty")
        energy = self.catalog("Energia", costs)
        self.generated(number="FV/C/1").catalog_id = energy
        self.generated(number="FV/C/2").catalog_id = costs
        costs.invalidate_recordset()
        self.assertEqual(
            (costs.document_count, energy.document_count), (2, 1), "a folder counts what is inside"
        )
        action = costs.action_open_documents()
        self.assertEqual(self.Document.search_count(action["domain"]), 2)
        if self.env["ksefnet.buffer"].search_count([]) == 1:
            for model in ("ksefnet.catalog", "ksefnet.classification.rule", "ksefnet.shop"):
                self.assertEqual(self.env[model].new({}).buffer_id, self.buffer, model)
        self.env["ksefnet.buffer"].create({"name": "Druga", "nip": "5265877635"})
        self.assertFalse(self.env["ksefnet.catalog"].new({}).buffer_id, "with several, the user chooses")
