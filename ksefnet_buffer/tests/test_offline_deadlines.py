"""Offline deadlines visible: counted on the Overview, a filter, and sent first when KSeF answers again."""

from datetime import datetime, timedelta, timezone

from odoo import fields
from odoo.tests import tagged

from .common import KsefSimulatorCase


@tagged("post_install", "-at_install")
class TestOfflineDeadlines(KsefSimulatorCase):
    fresh_simulator_per_test = True

    def offline_doc(self, mode="offline24", **kw):
        Document = self.env["ksefnet.document"]
        values = Document._offline_values(mode, datetime.now(timezone.utc) - timedelta(minutes=1))
        return Document._create_submitted(self.buffer, self.invoice(), offline=values, **kw)

    def test_deadlines_are_counted_filtered_and_sent_first(self):
        plain = self.submit()
        relaxed = self.offline_doc("failure")  # 7 working days: not near
        urgent = self.offline_doc()
        overdue = self.offline_doc()
        total = self.offline_doc("total_failure")  # no obligation: never near
        now = fields.Datetime.now()
        urgent.sudo().write({"offline_deadline": now + timedelta(hours=3)})
        overdue.sudo().write({"offline_deadline": now - timedelta(hours=1)})
        self.assertFalse(total.offline_deadline)
        self.buffer.invalidate_recordset(["count_offline_due"])
        self.assertEqual(self.buffer.count_offline_due, 2)
        Document = self.env["ksefnet.document"]
        near = Document.search([("buffer_id", "=", self.buffer.id), ("offline_deadline_near", "=", True)])
        self.assertEqual(near, urgent | overdue)
        not_near = Document.search(
            [("buffer_id", "=", self.buffer.id), ("offline_deadline_near", "=", False)]
        )
        self.assertEqual(not_near, plain | relaxed | total)
        action = self.buffer.with_context(ksefnet_offline_due=True).action_open_documents()
        self.assertEqual(Document.search(action["domain"]), urgent | overdue)
        # the sender takes the overdue one first, then the nearest deadline, the others after
        order = self.env["ksefnet.sender"]._due_documents(self.buffer)
        self.assertEqual(order.ids[:3], [overdue.id, urgent.id, relaxed.id])
        self.assertEqual(set(order.ids[3:]), {plain.id, total.id})
        self.send_round()
        self.assertEqual(set((plain | relaxed | urgent | overdue | total).mapped("state")), {"sent"})
        # once in KSeF a deadline is no longer a concern
        self.buffer.invalidate_recordset(["count_offline_due"])
        self.assertEqual(self.buffer.count_offline_due, 0)
