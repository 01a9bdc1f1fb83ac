import xmlrpc.client
from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged

from .common import DocumentsCase


class PermissionsSetup:
    """Two shops with a document each, a catalog tree, and users with different rights."""

    @classmethod
    def setup_permissions(cls):
        env = cls.env
        cls.shop_a = env["ksefnet.shop"].create({"name": "A", "code": "A", "buffer_id": cls.buffer.id})
        cls.shop_b = env["ksefnet.shop"].create({"name": "B", "code": "B", "buffer_id": cls.buffer.id})
        cls.costs = cls.catalog("Koszty")
        cls.energy = cls.catalog("Energia", cls.costs)
        cls.other = cls.catalog("Inne")
        cls.doc_a = cls.generated(number="FV/A/1")
        cls.doc_b = cls.generated(number="FV/B/1")
        cls.doc_energy = cls.generated(number="FV/E/1")
        cls.doc_other = cls.generated(number="FV/O/1")
        cls.doc_a.shop_id, cls.doc_b.shop_id = cls.shop_a, cls.shop_b
        cls.doc_energy.catalog_id, cls.doc_other.catalog_id = cls.energy, cls.other
        cls.shop_a_user = new_test_user(env, login="sklep_a", groups="ksefnet_buffer.group_ksef_user")
        cls.shop_a.user_ids = [(4, cls.shop_a_user.id)]
        cls.reader = new_test_user(env, login="czytelnik", groups="ksefnet_buffer.group_ksef_user")
        cls.handler = new_test_user(env, login="ksiegowa", groups="ksefnet_buffer.group_ksef_user")
        Permission = env["ksefnet.permission"]
        Permission.create(
            {
                "name": "Costs, read",
                "user_ids": [(6, 0, cls.reader.ids)],
                "catalog_ids": [(6, 0, cls.costs.ids)],
            }
        )
        Permission.create(
            {
                "name": "Costs, handle",
                "user_ids": [(6, 0, cls.handler.ids)],
                "catalog_ids": [(6, 0, cls.costs.ids)],
                "access": "handle",
            }
        )


@tagged("post_install", "-at_install")
class TestPermissions(PermissionsSetup, DocumentsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_permissions()

    def visible(self, user):
        return self.Document.with_user(user).search([("buffer_id", "=", self.buffer.id)])

    def test_a_shop_user_sees_only_the_shops_documents_everywhere(self):
        Docs = self.Document.with_user(self.shop_a_user)
        self.assertEqual(self.visible(self.shop_a_user), self.doc_a)
        self.assertEqual(Docs.search_count([("invoice_number", "=", "FV/B/1")]), 0)
        groups = Docs.read_group([("buffer_id", "=", self.buffer.id)], ["shop_id"], ["shop_id"])
        self.assertEqual([(g["shop_id"][0], g["shop_id_count"]) for g in groups], [(self.shop_a.id, 1)])
        with self.assertRaises(AccessError):
            self.doc_b.with_user(self.shop_a_user).read(["invoice_number"])
        with self.assertRaises(AccessError):
            self.doc_b.xml_attachment_id.with_user(self.shop_a_user).read(["raw"])
        self.assertTrue(self.doc_a.xml_attachment_id.with_user(self.shop_a_user).read(["raw"])[0]["raw"])

    def test_the_readable_invoice_and_its_print_follow_the_same_rules(self):
        Report = self.env["ir.actions.report"].with_user(self.shop_a_user)
        doc_a, doc_b = self.doc_a.with_user(self.shop_a_user), self.doc_b.with_user(self.shop_a_user)
        self.assertIn("FV/A/1", doc_a.invoice_html)
        html, _kind = Report._render_qweb_html("ksefnet_buffer.report_ksefnet_invoice", doc_a.ids)
        self.assertIn(b"FV/A/1", html)
        with self.assertRaises(AccessError):
            doc_b.read(["invoice_html"])
        with self.assertRaises(AccessError):
            doc_b.invoice_html  # noqa: B018 - reading is the test
        with self.assertRaises(AccessError):
            Report._render_qweb_html("ksefnet_buffer.report_ksefnet_invoice", doc_b.ids)

    def test_catalog_permission_covers_sub_catalogs(self):
        self.assertEqual(self.visible(self.reader), self.doc_energy)  # Energia is inside Koszty
        deeper = self.catalog("Prąd", self.energy)
        self.doc_other.catalog_id = deeper
        self.assertEqual(self.visible(self.reader), self.doc_energy | self.doc_other)

    def test_read_only_cannot_retry_or_retag_but_handling_can(self):
        tag = self.env["ksefnet.tag"].create({"name": "Pilne"})
        with self.assertRaises(AccessError):
            self.doc_energy.with_user(self.reader).write({"tag_ids": [(4, tag.id)]})
        with self.assertRaises(AccessError):
            self.doc_energy.with_user(self.reader).action_retry()
        with self.assertRaises(AccessError):
            self.doc_energy.with_user(self.reader).action_reclassify()
        self.doc_energy.with_user(self.handler).write({"tag_ids": [(4, tag.id)]})
        self.assertIn(tag, self.doc_energy.tag_ids)
        self.doc_energy.with_user(self.handler).action_reclassify()

    def test_without_any_permission_nothing_is_visible_and_admins_see_all(self):
        nobody = new_test_user(self.env, login="nikt", groups="ksefnet_buffer.group_ksef_user")
        self.assertFalse(self.visible(nobody))
        boss = new_test_user(self.env, login="szef", groups="ksefnet_buffer.group_ksef_admin")
        self.assertEqual(len(self.visible(boss)), 4)

    def test_permission_by_document_type_and_unassigned(self):
        clerk = new_test_user(self.env, login="zakupy", groups="ksefnet_buffer.group_ksef_user")
        permission = self.env["ksefnet.permission"].create(
            {"name": "Unassigned purchases", "user_ids": [(6, 0, clerk.ids)], "include_unassigned": True,
             "direction": "purchase"}
        )  # fmt: skip
        self.assertEqual(self.visible(clerk), self.doc_a | self.doc_b)
        permission.invoice_kind_ids = self.env["ksefnet.invoice.kind"].search([("code", "=", "KOR")])
        self.assertFalse(self.visible(clerk), "no correction among them")


@tagged("post_install", "-at_install")
class TestPermissionsOverXmlRpc(PermissionsSetup, DocumentsCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_permissions()

    def test_the_same_rules_hold_over_xml_rpc_with_an_api_key(self):
        expires = fields.Datetime.now() + timedelta(days=1)
        key = (
            self.env["res.users.apikeys"].with_user(self.shop_a_user)._generate(None, "HiperMarket", expires)
        )
        models = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.http_port()}/xmlrpc/2/object")
        db = self.env.cr.dbname
        uid = self.shop_a_user.id
        found = models.execute_kw(
            db, uid, key, "ksefnet.document", "search_read", [[["buffer_id", "=", self.buffer.id]]],
            {"fields": ["invoice_number"]},
        )  # fmt: skip
        self.assertEqual([r["invoice_number"] for r in found], ["FV/A/1"])
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            models.execute_kw(
                db, uid, key, "ksefnet.document", "read", [[self.doc_b.id]], {"fields": ["invoice_number"]}
            )
        self.assertIn("doesn't have 'read' access", caught.exception.faultString)
        attachments = models.execute_kw(
            db, uid, key, "ir.attachment", "search_read",
            [[["res_model", "=", "ksefnet.document"], ["res_id", "in", [self.doc_a.id, self.doc_b.id]]]],
            {"fields": ["res_id"]},
        )  # fmt: skip
        self.assertEqual({a["res_id"] for a in attachments}, {self.doc_a.id})
