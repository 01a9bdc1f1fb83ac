import base64

from lxml import etree
from odoo.addons.ksefnet_buffer.tests.common import KsefSimulatorCase
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from ksefnet_core.ids import is_valid_ksef_number


@tagged("post_install", "-at_install")
class TestHipermarketApi(KsefSimulatorCase):
    fresh_simulator_per_test = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hm = new_test_user(
            cls.env, login="hipermarket", groups="base.group_user,ksefnet_hipermarket.group_hipermarket"
        )
        cls.hm.ksefnet_hm_buffer_ids = cls.buffer
        cls.other_buffer = cls.env["ksefnet.buffer"].create({"name": "Inna spółka", "nip": "1111111111"})

    def api(self, user=None):
        return self.env["ksefnet.hipermarket.api"].with_user(user or self.hm)

    def item(self, ref, xml=None, **extra):
        xml = xml if xml is not None else self.invoice()
        return {
            "buffer_nip": self.nip,
            "document_id": ref,
            "shop_code": "SKLEP12",
            "xml": xml.decode(),
            **extra,
        }

    def test_submit_is_idempotent_and_replaces_only_unsent_documents(self):
        xml = self.invoice(number="FV/HM/1")
        (first,) = self.api().submit([self.item("HM-1", xml)])
        self.assertTrue(first["ok"], first)
        self.assertEqual((first["status"], first["created"]), ("waiting", True))
        (again,) = self.api().submit([self.item("HM-1", base64.b64encode(xml))])  # base64 works too
        self.assertEqual((again["id"], again["created"]), (first["id"], False))
        changed = self.invoice(number="FV/HM/1", net_amounts=("99.00",))
        (replaced,) = self.api().submit([self.item("HM-1", changed)])
        self.assertEqual((replaced["id"], replaced.get("replaced")), (first["id"], True))
        doc = self.env["ksefnet.document"].browse(first["id"])
        self.assertEqual(doc._xml(), changed)
        self.assertEqual(doc.shop_code, "SKLEP12")
        self.send_round()
        (sent,) = self.api().status(self.nip, ["HM-1"])
        self.assertEqual(sent["status"], "sent")
        self.assertTrue(is_valid_ksef_number(sent["ksef_number"]))
        (refused,) = self.api().submit(
            [self.item("HM-1", self.invoice(number="FV/HM/1", net_amounts=("1.00",)))]
        )
        self.assertFalse(refused["ok"])
        self.assertEqual(
            (refused["error"]["field"], refused["error"]["code"]), ("document_id", "already_sent")
        )
        self.assertIn(sent["ksef_number"], refused["error"]["message"])

    def test_archived_rules_and_shops_do_not_classify_submitted_invoices(self):
        """The HiperMarket API stores its documents with archived ones in view (a document id is one, archived
        or not); the classification of what it stores uses the active rules and shops only."""
        catalog = self.env["ksefnet.catalog"].create({"name": "Wszystko", "buffer_id": self.buffer.id})
        rule = self.env["ksefnet.classification.rule"].create(
            {"name": "Zawsze", "buffer_id": self.buffer.id, "catalog_id": catalog.id}
        )
        shop = self.env["ksefnet.shop"].create(
            {"name": "Sklep 12", "code": "SKLEP12", "buffer_id": self.buffer.id}
        )
        rule.action_archive()
        shop.action_archive()
        Document = self.env["ksefnet.document"]
        (result,) = self.api().submit([self.item("HM-ARCH-1", self.invoice(number="FV/HM/ARCH/1"))])
        self.assertTrue(result["ok"], result)
        doc = Document.browse(result["id"])
        self.assertEqual((doc.catalog_id, doc.shop_id), (catalog.browse(), shop.browse()))
        rule.action_unarchive()
        shop.action_unarchive()
        (result,) = self.api().submit([self.item("HM-ARCH-2", self.invoice(number="FV/HM/ARCH/2"))])
        self.assertTrue(result["ok"], result)
        doc = Document.browse(result["id"])
        self.assertEqual((doc.catalog_id, doc.shop_id), (catalog, shop))

    def test_invalid_input_gets_a_clear_error_and_the_rest_of_the_batch_goes_on(self):
        broken = self.invoice().replace(b"<P_15>", b"<P_15>x", 1)
        results = self.api().submit(
            [
                self.item("HM-BAD", broken),
                self.item("", self.invoice()),
                {"buffer_nip": "9999999999", "document_id": "HM-X", "xml": self.invoice().decode()},
                self.item("HM-NOXML", xml=b""),
                self.item("HM-OK"),
            ]
        )
        bad, no_id, no_buffer, no_xml, ok = results
        self.assertEqual(bad["error"]["field"], "xml")
        self.assertIn("P_15", bad["error"]["message"])
        self.assertEqual(no_id["error"]["field"], "document_id")
        self.assertEqual(no_buffer["error"]["code"], "refused")
        self.assertEqual(no_xml["error"]["field"], "xml")
        self.assertTrue(ok["ok"])
        docs = self.env["ksefnet.document"].search([("source", "=", "HiperMarket")])
        self.assertEqual(docs.mapped("external_ref"), ["HM-OK"], "nothing stored for the refused ones")

    def test_change_feed_acknowledge_upo_and_qr(self):
        results = self.api().submit([self.item(f"HM-F{i}") for i in range(3)])
        feed = self.api().changes(self.nip, 0)
        self.assertEqual([c["document_id"] for c in feed["changes"]], ["HM-F0", "HM-F1", "HM-F2"])
        cursor = feed["cursor"]
        self.assertEqual(self.api().changes(self.nip, cursor)["changes"], [])
        self.send_round()
        later = self.api().changes(self.nip, cursor, 2)
        self.assertTrue(later["more"])
        rest = self.api().changes(self.nip, later["cursor"])
        sent = later["changes"] + rest["changes"]
        self.assertEqual(
            {c["document_id"] for c in sent if c["status"] == "sent"}, {r["document_id"] for r in results}
        )
        self.assertTrue(all(c["ksef_number"] and c["upo_available"] for c in sent if c["status"] == "sent"))
        self.assertGreater(rest["cursor"], later["cursor"])
        self.assertEqual(self.api().acknowledge(self.nip, ["HM-F0", "HM-F1"]), {"acknowledged": 2})
        statuses = {
            s["document_id"]: s["delivered"] for s in self.api().status(self.nip, ["HM-F0", "HM-F2", "NOPE"])
        }
        self.assertEqual(statuses, {"HM-F0": True, "HM-F2": False, "NOPE": False})
        upo = self.api().upo(self.nip, "HM-F0")
        root = etree.fromstring(base64.b64decode(upo["upo_xml_base64"]))
        self.assertIn(upo["ksef_number"].encode(), etree.tostring(root))
        code = self.api().qr(self.nip, "HM-F0")
        self.assertIn(f"/invoice/{self.nip}/", code["url"])
        self.assertEqual(code["label"], upo["ksef_number"])
        self.assertTrue(base64.b64decode(code["png_base64"]).startswith(b"\x89PNG"))

    def test_a_rejected_invoice_is_resubmitted_as_corrected(self):
        self.submit(number="FV/DUP/9")  # another document already used this number
        self.send_round()
        (first,) = self.api().submit(
            [self.item("HM-DUP", self.invoice(number="FV/DUP/9", net_amounts=("5.00",)))]
        )
        self.send_round()
        (rejected,) = self.api().status(self.nip, ["HM-DUP"])
        self.assertEqual((rejected["status"], rejected["error_code"]), ("failure", 440))
        (corrected,) = self.api().submit([self.item("HM-DUP", self.invoice(number="FV/DUP/10"))])
        self.assertEqual((corrected["id"], corrected["status"]), (first["id"], "waiting"))

    def test_only_integration_users_for_their_buffers_and_shops(self):
        clerk = new_test_user(self.env, login="kasjer", groups="ksefnet_buffer.group_ksef_user")
        with self.assertRaises(AccessError):
            self.api(clerk).status(self.nip, ["HM-1"])
        (other,) = self.api().submit([dict(self.item("HM-O"), buffer_nip="1111111111")])
        self.assertEqual(other["error"]["code"], "refused")
        with self.assertRaises(AccessError):
            self.api().changes("1111111111", 0)
        self.submit(number="FV/UI/1")  # not a HiperMarket document
        self.assertFalse(
            self.env["ksefnet.document"].with_user(self.hm).search([("source", "!=", "HiperMarket")])
        )
        self.hm.ksefnet_hm_shop_codes = "SKLEP1, SKLEP2"
        (shop,) = self.api().submit([self.item("HM-S")])
        self.assertEqual((shop["error"]["field"], shop["error"]["code"]), ("shop_code", "forbidden"))
        self.assertTrue(self.api().submit([dict(self.item("HM-S"), shop_code="SKLEP2")])[0]["ok"])

    def test_buffers_created_archived_or_given_another_nip_are_seen_at_once(self):
        """The API finds a buffer by its NIP from the registry's cache: each change of it shows in the next
        call."""
        admin = new_test_user(
            self.env, login="hm-admin", groups="base.group_user,ksefnet_buffer.group_ksef_admin"
        )

        def state(nip, user=None):
            try:
                return self.api(user).availability(nip)["state"]
            except AccessError:
                return "refused"

        self.assertEqual(state(self.nip), "available")
        self.buffer.action_archive()
        with self.assertRaises(AccessError):  # whatever the first caller's context, as the next one sees it
            self.api().with_context(active_test=False).availability(self.nip)
        self.assertEqual(state(self.nip), "refused", "archived")
        self.buffer.action_unarchive()
        self.assertEqual(state(self.nip), "available", "active again")
        self.assertEqual(state("5260000005", admin), "refused", "no buffer of that NIP yet")
        created = self.env["ksefnet.buffer"].create({"name": "Nowa", "nip": "5260000005"})
        self.assertEqual(state("5260000005", admin), "available", "created")
        created.nip = "5260000011"
        self.assertEqual((state("5260000005", admin), state("5260000011", admin)), ("refused", "available"))
        created.unlink()
        self.assertEqual(state("5260000011", admin), "refused", "deleted")

    def test_a_users_changed_buffers_and_shops_take_effect_at_once(self):
        """Odoo caches each user's record rules: a change of the buffers or shops of an integration user is
        seen by its next call (the API's own checks and the record rules behind status and plain reads), not
        after a restart."""
        self.hm.ksefnet_hm_shop_codes = "SKLEP12, SKLEP2"
        results = self.api().submit([self.item("HM-R1"), dict(self.item("HM-R2"), shop_code="SKLEP2")])
        self.assertTrue(all(r["ok"] for r in results), results)
        Document = self.env["ksefnet.document"].with_user(self.hm)

        def seen():
            found = [s["ok"] for s in self.api().status(self.nip, ["HM-R1", "HM-R2"])]
            read = Document.search([("external_ref", "in", ["HM-R1", "HM-R2"])]).mapped("external_ref")
            return found, sorted(read)

        self.assertEqual(seen(), ([True, True], ["HM-R1", "HM-R2"]))
        self.hm.ksefnet_hm_shop_codes = "SKLEP2"
        self.assertEqual(seen(), ([False, True], ["HM-R2"]), "a shop taken away")
        (refused,) = self.api().submit([self.item("HM-R3")])
        self.assertEqual(refused["error"]["code"], "forbidden")
        self.hm.ksefnet_hm_shop_codes = False
        self.assertEqual(seen(), ([True, True], ["HM-R1", "HM-R2"]), "every shop again")
        self.hm.ksefnet_hm_buffer_ids = [(5,)]
        with self.assertRaises(AccessError):
            self.api().status(self.nip, ["HM-R2"])
        self.assertFalse(Document.search([("external_ref", "in", ["HM-R1", "HM-R2"])]), "a buffer taken away")
        self.hm.ksefnet_hm_buffer_ids = self.buffer
        self.assertEqual(seen(), ([True, True], ["HM-R1", "HM-R2"]), "the buffer given back")
