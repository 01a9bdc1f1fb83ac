from datetime import timedelta
from unittest.mock import patch

from lxml import etree
from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import TransactionCase, tagged

from ksefnet_core.ids import is_valid_ksef_number

from ..models.ksefnet_sender import SEND_CRONS, STATUS_RESERVE, KsefnetSender
from .common import KsefSimulatorCase

UPO_NS = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"


@tagged("post_install", "-at_install")
class TestSending(KsefSimulatorCase):
    fresh_simulator_per_test = True  # counts what KSeF received, and KSeF's rate limits start afresh

    def sessions_received(self, invoice_hash):
        """How many times KSeF's session lists show an invoice with this hash (all online sessions)."""
        client = self.buffer._ksef_client()
        count = 0
        for session in client.list_sessions("Online", page_size=100):
            for item in client.session_invoices(session["referenceNumber"], page_size=1000):
                count += item.get("invoiceHash") == invoice_hash
        return count

    def assertSent(self, doc):
        self.assertEqual(doc.state, "sent", doc.last_message)
        self.assertTrue(is_valid_ksef_number(doc.ksef_number), doc.ksef_number)
        self.assertTrue(doc.upo_attachment_id, "UPO stored")
        upo = etree.fromstring(doc.upo_attachment_id.raw)
        self.assertEqual(etree.QName(upo).namespace, UPO_NS)
        self.assertIn(doc.ksef_number.encode(), doc.upo_attachment_id.raw)

    def test_online_session_sends_to_sent_with_number_and_upo(self):
        docs = self.submit(3)
        self.assertEqual(set(docs.mapped("state")), {"waiting"})
        self.send_round()
        for doc in docs:
            self.assertSent(doc)
            self.assertEqual(doc.ksef_send_mode, "online")
            self.assertEqual(doc.ksef_number.split("-")[0], self.nip)
            path = [(e.from_state or False, e.to_state) for e in doc.event_ids.sorted("id")]
            self.assertEqual(path[0], (False, "waiting"))
            transitions = [step for step in path if step[0] != step[1]]
            self.assertEqual(transitions[-1], ("processing", "sent"), "sent when the KSeF number came")
            self.assertEqual(doc.upo_state, "stored")
            self.assertIn("UPO", doc.event_ids.sorted("id")[-1].message, "the UPO is its own, later step")

    def test_batch_session_for_large_volumes(self):
        self.buffer.batch_threshold = 5
        docs = self.submit(6)
        self.send_round()
        for doc in docs:
            self.assertSent(doc)
            self.assertEqual(doc.ksef_send_mode, "batch")
        self.assertEqual(len(set(docs.mapped("ksef_number"))), 6)

    def test_rejection_is_a_failure_with_ksef_reason(self):
        first = self.submit(number="FV/DUP/1")
        self.send_round()
        self.assertSent(first)
        # Another invoice reusing the same number: KSeF refuses it as a duplicate of a different invoice.
        second = self.submit(number="FV/DUP/1", net_amounts=("10.00",))
        self.send_round()
        self.assertEqual(second.state, "failure")
        self.assertEqual(second.last_code, 440)
        self.assertIn(first.ksef_number, second.last_message)
        # A correction must still be the buffer's own invoice.
        with self.assertRaises(ValidationError):
            second.action_correct(self.invoice(number="FV/DUP/2", seller_nip="1111111111"))
        self.assertEqual(second.state, "failure")
        # A person corrects it (new number) and resubmits: it goes through.
        second.action_correct(self.invoice(number="FV/DUP/2"))
        self.assertEqual(second.state, "waiting")
        self.send_round()
        self.assertSent(second)

    def test_transient_fault_is_an_error_then_retried_to_sent(self):
        self.add_fault(kind="status", status=503, method="POST", path="/sessions/online", times=1)
        doc = self.submit()
        self.send_round()
        self.assertEqual(doc.state, "error")
        self.assertIn("503", doc.last_message)
        self.assertTrue(doc.next_retry_at > fields.Datetime.now())
        self.assertEqual(doc.retry_count, 1)
        self.send_round()  # not due yet: nothing happens
        self.assertEqual(doc.state, "error")
        self.make_due(doc)
        self.send_round()
        self.assertSent(doc)

    def test_unavailable_ksef_leaves_error_with_reason(self):
        self.add_fault(kind="unavailable")
        doc = self.submit()
        self.send_round()
        self.assertEqual(doc.state, "error")
        self.assertTrue(doc.last_message)
        self.assertTrue(doc.next_retry_at)

    def test_dropped_answer_is_reconciled_not_resent(self):
        self.add_fault(kind="drop_response", method="POST", path="/sessions/online/*/invoices", times=1)
        doc = self.submit()
        self.send_round()
        # The answer was lost, but KSeF has the invoice: found in the session by hash, never sent twice.
        self.assertSent(doc)
        self.assertEqual(self.sessions_received(doc.xml_sha256), 1)
        messages = " ".join(doc.event_ids.mapped("message"))
        self.assertIn("Found in KSeF's session", messages)

    def test_rate_limit_answer_waits_for_retry_after(self):
        self.add_fault(kind="rate_limit", retry_after=45, method="POST", path="/sessions/online", times=1)
        doc = self.submit()
        before = fields.Datetime.now()
        self.send_round()
        # Nothing went wrong with the invoice: it keeps waiting, until KSeF's Retry-After has passed, and
        # the buffer says why and until when.
        self.assertEqual(doc.state, "waiting")
        wait = doc.next_retry_at - before
        self.assertGreaterEqual(wait, timedelta(seconds=44))
        self.assertLessEqual(wait, timedelta(seconds=50))
        self.assertIn("limit", self.buffer.engine_note)
        self.assertGreaterEqual(self.buffer.engine_next_run_at, before + timedelta(seconds=44))

    def test_session_temporarily_unavailable_goes_on_in_a_new_session(self):
        # KSeF API 2.8: 21184 on the third invoice; the invoices not yet accepted go on in a new session
        self.add_fault(kind="session_unavailable", after=2, times=1)
        docs = self.submit(5)
        self.send_round()
        for doc in docs:
            self.assertSent(doc)
            self.assertEqual(doc.retry_count, 0, "not the invoice's fault: no retry counted")
            self.assertEqual(self.sessions_received(doc.xml_sha256), 1, "received once")
        online = self.buffer.session_ids.filtered(lambda s: s.mode == "online")
        self.assertEqual(len(online), 2)
        self.assertEqual(len(set(docs.mapped("ksef_session_ref"))), 2)
        third = docs[2]
        messages = " ".join(third.event_ids.mapped("message"))
        self.assertIn("takes no more invoices", messages)
        self.assertIn(21184, third.event_ids.mapped("ksef_code"))

    def test_ksef_system_warnings_are_shown_on_the_buffer(self):
        self.add_fault(kind="system_warning", message="[W-1]: Faktura nie ma SystemInfo")
        self.submit()
        self.send_round()
        self.assertIn("[W-1]: Faktura nie ma SystemInfo", self.buffer.ksef_warning)
        self.assertTrue(self.buffer.ksef_warning_at)

    def test_expired_access_token_is_refreshed(self):
        self.send_round()
        self.add_fault(kind="expire_tokens")
        doc = self.submit()
        self.send_round()
        self.assertSent(doc)

    def test_state_changes_only_through_the_buffer(self):
        doc = self.submit()
        admin = self.env.ref("base.user_admin")  # a KSeF administrator, not the engine (superuser)
        for values in ({"state": "sent"}, {"ksef_number": "X"}, {"xml_sha256": "X"}, {"upo_state": "stored"}):
            with self.assertRaises(AccessError):
                doc.with_user(admin).write(values)
        with self.assertRaises(AccessError):  # a context flag over RPC grants nothing
            doc.with_user(admin).with_context(ksefnet_allow_state_write=True).write({"state": "sent"})
        with self.assertRaises(ValidationError):
            doc._set_state("sent")  # waiting -> sent skips KSeF: not an allowed transition
        with self.assertRaises(UserError):
            doc.event_ids.write({"message": "rewritten"})
        with self.assertRaises(UserError):
            doc.event_ids.unlink()
        self.assertEqual(doc.state, "waiting")

    def send_behind_the_buffers_back(self, xml, close=True):
        """Send ``xml`` to KSeF with the core client, as a worker did before it was killed; the session ref."""
        from ksefnet_core.sessions import OnlineSession

        session = OnlineSession(self.buffer._ksef_client())
        session.open()
        sent = session.send(xml)
        if close:
            session.close()
        return session.reference_number, sent

    def test_worker_killed_after_sending_is_reconciled_from_the_session(self):
        doc = self.submit()
        # The sender commits "processing, ambiguous" before it sends; the worker dies after KSeF got the
        # invoice and before the answer was recorded.
        ref, _sent = self.send_behind_the_buffers_back(doc._xml(), close=False)
        doc._set_state(
            "processing",
            message="sending",
            reference=ref,
            ksef_session_ref=ref,
            ksef_invoice_ref=False,
            ksef_send_mode="online",
            ksef_ambiguous=True,
        )
        self.send_round()
        self.assertSent(doc)
        self.assertEqual(self.sessions_received(doc.xml_sha256), 1, "reconciled, never sent a second time")
        self.assertIn("Found in KSeF's session", " ".join(doc.event_ids.mapped("message")))

    def test_invoice_already_in_ksef_is_adopted_from_the_440_answer(self):
        xml = self.invoice()
        _ref, _sent = self.send_behind_the_buffers_back(xml)
        doc = self.env["ksefnet.document"]._create_submitted(self.buffer, xml)
        self.send_round()
        self.assertSent(doc)
        self.assertEqual(self.sessions_received(doc.xml_sha256), 2, "KSeF refused the second copy as 440")
        self.assertIn("already had this invoice", " ".join(doc.event_ids.mapped("message")))
        codes = doc.event_ids.mapped("ksef_code")
        self.assertIn(440, codes)

    def test_a_throttled_upo_fetch_does_not_stop_sending(self):
        """KSeF's production limits are on. UPOs that must come one by one from the per-invoice endpoint
        (group sessionMisc, 120 a minute) wait for that group's window; sending and polling go on."""
        first = self.submit(2)
        # The worker records the KSeF numbers and dies before it fetches the UPOs: their links are lost.
        with patch.object(KsefnetSender, "_fetch_upos", lambda *args: None):
            self.send_round()
        self.assertEqual(set(first.mapped("state")), {"sent"})
        self.assertEqual(set(first.mapped("upo_state")), {"pending"})
        # Many UPO fetches used the session-request budget down to the reserve kept for status polls.
        client = self.buffer._ksef_client()
        while client.throttle.capacity("sessionMisc") > STATUS_RESERVE:
            client.session_status(first[0].ksef_session_ref)
        second = self.submit(2)
        before = fields.Datetime.now()
        self.send_round()
        for doc in second:  # sent, polled, numbered, and their UPOs came from the pre-signed links
            self.assertSent(doc)
        self.assertEqual(set(first.mapped("upo_state")), {"pending"}, "still waiting for the window")
        self.assertTrue(all(d.upo_next_try_at > before for d in first))
        self.assertIn("UPO", self.buffer.engine_note)
        self.assertGreater(self.buffer.engine_next_run_at, before)
        # Once the window has room again, they arrive.
        client.throttle._sent["sessionMisc"].clear()
        self.make_upos_due(first)
        self.send_round()
        for doc in first:
            self.assertSent(doc)

    def test_every_step_commits_and_the_ambiguous_mark_comes_before_the_request(self):
        doc = self.submit()
        self.send_round()
        self.assertSent(doc)
        steps = self.commits
        self.assertEqual(steps[0], "send_lease", "the lease is committed first")
        self.assertEqual(steps[-1], "send_release")
        self.assertLess(steps.index("online_mark"), steps.index("online_received"))
        self.assertIn("upo", steps)


@tagged("post_install", "-at_install")
class TestWakingTheSender(TransactionCase):
    def _notifications(self):
        """The cron workers' notifications waiting for this transaction's commit."""
        return sum(
            1 for func in self.env.cr.postcommit._funcs if getattr(func, "__name__", "") == "_notifydb"
        )

    def test_each_cron_gets_its_trigger_and_the_workers_are_woken_once(self):
        Sender, Trigger = self.env["ksefnet.sender"], self.env["ir.cron.trigger"].sudo()
        crons = self.env["ir.cron"].browse([self.env.ref(x).id for x in SEND_CRONS])
        Trigger.search([("cron_id", "in", crons.ids)]).unlink()
        Sender._trigger()
        self.assertEqual(
            sorted(Trigger.search([("cron_id", "in", crons.ids)]).cron_id.ids), sorted(crons.ids)
        )
        self.assertEqual(self._notifications(), 1, "one NOTIFY wakes every cron thread")
        Sender._trigger()  # a trigger of each is due already: the workers are awake, nothing to add
        self.assertEqual(Trigger.search_count([("cron_id", "in", crons.ids)]), len(crons))
        self.assertEqual(self._notifications(), 1)
        Trigger.search([("cron_id", "=", crons[0].id)]).unlink()  # the first cron ran, the other not yet
        Sender._trigger()  # the first gets its trigger again; the other's due one wakes the workers
        self.assertEqual(
            sorted(Trigger.search([("cron_id", "in", crons.ids)]).cron_id.ids), sorted(crons.ids)
        )
        self.assertEqual(self._notifications(), 1)
        Trigger.search([("cron_id", "in", crons.ids)]).unlink()  # they ran
        Sender._trigger()
        self.assertEqual(self._notifications(), 2)
        later = fields.Datetime.now() + timedelta(minutes=5)
        Sender._trigger(at=later)
        self.assertEqual(
            Trigger.search_count([("cron_id", "in", crons.ids), ("call_at", "=", later)]), len(crons)
        )
        crons[1].active = False  # an inactive cron gets no trigger
        Trigger.search([("cron_id", "in", crons.ids)]).unlink()
        Sender._trigger()
        self.assertEqual(self._notifications(), 3)
        self.assertEqual(Trigger.search([("cron_id", "in", crons.ids)]).cron_id, crons[0])
        crons[1].active = True
