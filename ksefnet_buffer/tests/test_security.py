from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import KsefSimulatorCase


@tagged("post_install", "-at_install")
class TestSecurityAndDashboard(KsefSimulatorCase):
    def test_companies_see_only_their_own_buffers_and_documents(self):
        doc = self.submit()
        # Administrators (who see every document of their companies): only the company rule separates them.
        outsider = self.other_company_admin("ksef_other_company")
        self.assertFalse(self.env["ksefnet.buffer"].with_user(outsider).search([("id", "=", self.buffer.id)]))
        self.assertFalse(self.env["ksefnet.document"].with_user(outsider).search([("id", "=", doc.id)]))
        with self.assertRaises(AccessError):
            doc.with_user(outsider).read(["state"])
        insider = new_test_user(self.env, login="ksef_same_company", groups="ksefnet_buffer.group_ksef_admin")
        self.assertEqual(self.env["ksefnet.document"].with_user(insider).search([("id", "=", doc.id)]), doc)

    def test_users_work_with_documents_administrators_manage_buffers(self):
        user = new_test_user(self.env, login="ksef_shop", groups="ksefnet_buffer.group_ksef_user")
        admin = new_test_user(self.env, login="ksef_boss", groups="ksefnet_buffer.group_ksef_admin")
        with self.assertRaises(AccessError):
            self.env["ksefnet.buffer"].with_user(user).create({"name": "X", "nip": "1111111111"})
        with self.assertRaises(AccessError):
            self.buffer.with_user(user).write({"send_enabled": False})
        created = self.env["ksefnet.buffer"].with_user(admin).create({"name": "Second", "nip": "1111111111"})
        self.assertTrue(created.exists())
        self.assertTrue(admin.has_group("ksefnet_buffer.group_ksef_user"), "administrators are users too")

    def test_arrival_triggers_sending_and_dashboard_counts_per_status(self):
        cron = self.env.ref("ksefnet_buffer.ir_cron_ksefnet_send")
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        docs = self.submit(3)
        self.assertGreater(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers)
        self.buffer.invalidate_recordset()
        self.assertEqual(self.buffer.count_waiting, 3)
        self.send_round()
        self.buffer.invalidate_recordset()
        self.assertEqual((self.buffer.count_waiting, self.buffer.count_sent), (0, 3))
        self.assertEqual(set(docs.mapped("state")), {"sent"})
