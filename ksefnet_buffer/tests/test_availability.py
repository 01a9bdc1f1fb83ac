"""KSeF availability: the buffer reads the simulator's Latarnia and its own answers, shows the state and the
announcements, moves offline deadlines when a failure is announced, and sends at once when KSeF is back."""

from datetime import datetime, timedelta, timezone

import requests
from odoo import fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ksefnet_core import offline

from .common import KsefSimulatorCase


@tagged("post_install", "-at_install")
class TestAvailability(KsefSimulatorCase):
    fresh_simulator_per_test = True

    def latarnia(self, **body):
        resp = requests.post(f"{self.sim.base_url}/_simulator/latarnia", json=body, timeout=10)
        resp.raise_for_status()
        self.addCleanup(requests.delete, f"{self.sim.base_url}/_simulator/latarnia", timeout=10)

    def test_failure_announced_then_over(self):
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "available")
        self.assertEqual(self.buffer.latarnia_status, "AVAILABLE")
        self.assertFalse(self.buffer.ksef_messages)
        self.latarnia(status="FAILURE", message={"title": "Awaria KSeF", "text": "Usuwamy awarię."})
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "failure")
        self.assertIn("Awaria KSeF", self.buffer.ksef_messages)
        self.assertIn("Usuwamy awarię.", self.buffer.ksef_messages)
        docs = self.submit(2)
        with mute_logger("odoo.addons.ksefnet_buffer.models.ksefnet_sender"):
            self.send_round()
        self.assertEqual(set(docs.mapped("state")), {"error"})
        self.assertTrue(self.buffer.ksef_unanswered_at)
        self.assertEqual(self.buffer.ksef_availability, "failure")  # the announcement names the cause
        self.latarnia(status="AVAILABLE")
        self.buffer.sudo().write({"engine_next_run_at": False})
        self.buffer._watch_ksef()
        # KSeF is back: the state follows Latarnia once the buffer hears from KSeF, the sender is woken
        self.assertEqual(self.buffer.latarnia_status, "AVAILABLE")
        self.assertFalse(self.buffer.ksef_messages)  # the announcement is closed
        self.assertTrue(self.buffer.engine_next_run_at)
        self.assertTrue(all(d.next_retry_at <= fields.Datetime.now() for d in docs))  # due at once
        self.send_round()
        self.assertEqual(set(docs.mapped("state")), {"sent"})
        self.assertTrue(self.buffer.ksef_answered_at >= self.buffer.ksef_unanswered_at)
        self.assertEqual(self.buffer.ksef_availability, "available")

    def test_back_from_an_outage_wakes_the_sender(self):
        self.latarnia(status="MAINTENANCE", apiUnavailable=False)
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "maintenance")
        self.latarnia(status="AVAILABLE")
        self.buffer.sudo().write({"engine_next_run_at": False})
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "available")
        self.assertTrue(self.buffer.engine_next_run_at)

    def test_unreachable_when_ksef_does_not_answer_although_nothing_is_announced(self):
        self.latarnia(status="AVAILABLE", apiUnavailable=True)
        self.submit()
        with mute_logger("odoo.addons.ksefnet_buffer.models.ksefnet_sender"):
            self.send_round()
        self.assertEqual(self.buffer.ksef_availability, "unreachable")
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "unreachable")  # its own answers count
        # and when Latarnia itself cannot be read, the state says so with the reason
        self.buffer.latarnia_url = "http://127.0.0.1:9"
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "unreachable")
        self.assertIn("cannot be reached", self.buffer.latarnia_problem)
        self.assertFalse(self.buffer.latarnia_status)

    def test_a_failure_announced_moves_the_offline_deadlines(self):
        Document = self.env["ksefnet.document"]
        issued = datetime.now(timezone.utc) - timedelta(minutes=5)
        doc = Document._create_submitted(
            self.buffer, self.invoice(), offline=Document._offline_values("offline24", issued)
        )
        first = doc.offline_deadline
        self.assertEqual(first, offline.send_deadline("offline24", issued).until.replace(tzinfo=None))
        start = datetime.now(timezone.utc).replace(microsecond=0)
        end = start + timedelta(hours=2)
        self.latarnia(
            status="FAILURE",
            apiUnavailable=False,
            message={"title": "Awaria", "start": start.isoformat(), "end": end.isoformat()},
        )
        self.buffer._watch_ksef()
        failure = offline.Outage(offline.OutageKind.FAILURE, start, end)
        expected = offline.send_deadline("offline24", issued.replace(microsecond=0), [failure]).until
        self.assertEqual(doc.offline_deadline, expected.replace(tzinfo=None))
        self.assertGreater(doc.offline_deadline, first)
        # a total failure announced meanwhile lifts the obligation
        self.latarnia(status="TOTAL_FAILURE", apiUnavailable=False, message={"title": "Awaria całkowita"})
        self.buffer._watch_ksef()
        self.assertEqual(self.buffer.ksef_availability, "total_failure")
        self.assertFalse(doc.offline_deadline)

    def test_check_now_from_the_buffer(self):
        from odoo.exceptions import AccessError
        from odoo.tests import new_test_user

        self.latarnia(status="MAINTENANCE", apiUnavailable=False, message={"title": "Prace serwisowe"})
        action = self.buffer.action_check_ksef()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertEqual(self.buffer.ksef_availability, "maintenance")
        self.assertIn("Prace serwisowe", self.buffer.ksef_messages)
        self.assertNotIn("availability", self.commits)  # in a request: no commit of its own
        user = new_test_user(
            self.env, login="ksef_watch_user", groups="base.group_user,ksefnet_buffer.group_ksef_user"
        )
        with self.assertRaises(AccessError):
            self.buffer.with_user(user).action_check_ksef()
