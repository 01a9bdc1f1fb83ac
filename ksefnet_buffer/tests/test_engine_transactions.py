"""The engines' transactions, for real: leases, row locks, rollback before release, one buffer's failure.

These tests commit (every other test's transaction is rolled back at the end, which would hide commit-order
and locking bugs): each works on buffers of its own NIPs in committed transactions, through several database
cursors as several Odoo workers would, and removes what it created.
"""

import contextlib
import itertools
import time
from unittest.mock import patch

import requests
from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, tagged
from odoo.tests.common import get_db_name
from odoo.tools import mute_logger

from ksefnet_core.ids import nip_with_checksum
from ksefnet_core.simulator.app import Simulator, SimulatorConfig
from ksefnet_core.simulator.server import SimulatorServer
from ksefnet_core.testing import sample_invoice

from ..models.ksefnet_buffer import KsefnetBuffer
from ..models.ksefnet_sender import KsefnetSender

_serial = itertools.count(100)
#: the loggers of the failures these tests cause on purpose
EXPECTED_ERRORS = ("odoo.sql_db", "odoo.addons.ksefnet_buffer.models.ksefnet_buffer")


def fresh_nip():
    while True:
        nip = nip_with_checksum(f"77{int(time.time()) % 10000:04d}{next(_serial) % 1000:03d}")
        if nip:
            return nip


@tagged("post_install", "-at_install")
class TestEngineTransactions(BaseCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())
        cls.sim_app = Simulator(SimulatorConfig(processing_delay=0.0, conformance=True))
        cls.sim = SimulatorServer(cls.sim_app).start()
        cls.addClassCleanup(cls.sim.stop)

    def setUp(self):
        super().setUp()
        self.buffer_ids = []
        self.addCleanup(self._remove)
        self.addCleanup(self._assert_conformance)

    def _assert_conformance(self):
        found = list(self.sim_app.conformance.violations)
        self.sim_app.conformance.violations.clear()
        self.assertFalse(found, "OpenAPI conformance violations:\n" + "\n".join(map(str, found)))

    @contextlib.contextmanager
    def worker(self):
        """An environment on a cursor of its own, as one Odoo worker has; committed when the block ends."""
        with self.registry.cursor() as cr:
            yield api.Environment(cr, SUPERUSER_ID, {})

    def _remove(self):
        with self.worker() as env:
            for buffer in env["ksefnet.buffer"].browse(self.buffer_ids).exists():
                buffer._forget_clients()
                env.cr.execute("DELETE FROM ksefnet_document_event WHERE document_id IN "
                               "(SELECT id FROM ksefnet_document WHERE buffer_id = %s)", [buffer.id])  # fmt: skip
                env.cr.execute("DELETE FROM ksefnet_document WHERE buffer_id = %s", [buffer.id])
                buffer.unlink()

    def make_buffer(self, env, with_token=True, documents=0):
        nip = fresh_nip()
        buffer = env["ksefnet.buffer"].create(
            {"name": f"Engine {nip}", "nip": nip, "environment": "simulator", "api_url": self.sim.api_base}
        )
        self.buffer_ids.append(buffer.id)
        if with_token:
            token = requests.post(f"{self.sim.base_url}/_simulator/tokens", json={"nip": nip}, timeout=30)
            token.raise_for_status()
            env["ksefnet.credentials.wizard"].create(
                {"buffer_id": buffer.id, "method": "token", "ksef_token": token.json()["token"]}
            ).action_save()
        docs = env["ksefnet.document"]
        for i in range(documents):
            xml = sample_invoice(seller_nip=nip, number=f"FV/E/{time.time_ns()}/{i}")
            docs |= (
                env["ksefnet.document"]
                .with_context(ksefnet_defer_trigger=True)
                ._create_submitted(buffer, xml)
            )
        return buffer, docs

    def states(self, env, docs):
        env.invalidate_all()
        return sorted(set(docs.with_env(env).mapped("state")))

    # -- leases and row locks ----------------------------------------------------------------------------------
    def test_a_buffer_lease_keeps_it_to_one_worker_until_released_or_expired(self):
        with self.worker() as env:
            buffer, _docs = self.make_buffer(env, with_token=False)
        with self.worker() as first, self.worker() as second:
            one, two = first["ksefnet.buffer"].browse(buffer.id), second["ksefnet.buffer"].browse(buffer.id)
            lease = one._take_lease("send")
            self.assertTrue(lease)
            self.assertFalse(two._take_lease("send"), "held by the first worker")
            download = two._take_lease("download")
            self.assertTrue(download, "one lease per operation")
            one._end_lease("send", lease)
            old = two._take_lease("send")
            self.assertTrue(old, "released")
            # a worker that died keeps nothing: its lease expires
            second.cr.execute(
                "UPDATE ksefnet_buffer SET send_lease_until = (now() at time zone 'UTC') - interval '1 second' "
                "WHERE id = %s",
                [buffer.id],
            )
            second.cr.commit()
            new = one._take_lease("send")
            self.assertTrue(new, "an expired lease is taken over")
            # the worker whose lease expired cannot release the new holder's lease
            two._end_lease("send", old)
            self.assertFalse(two._take_lease("send"))
            one._end_lease("send", new)
            two._end_lease("download", download)

    def test_skip_locked_picking_gives_each_document_to_one_worker(self):
        with self.worker() as env:
            buffer, docs = self.make_buffer(env, with_token=False, documents=6)
        with self.worker() as first, self.worker() as second:
            taken_first = first["ksefnet.sender"]._pick(first["ksefnet.buffer"].browse(buffer.id), 4)
            taken_second = second["ksefnet.sender"]._pick(second["ksefnet.buffer"].browse(buffer.id), 6)
            self.assertEqual(len(taken_first), 4)
            self.assertEqual(set(taken_second.ids), set(docs.ids) - set(taken_first.ids))
            first.cr.rollback()  # the first worker's row locks go with its transaction
            again = second["ksefnet.sender"]._pick(second["ksefnet.buffer"].browse(buffer.id), 6)
            self.assertEqual(set(again.ids), set(docs.ids), "the same transaction keeps its own locks")

    def test_an_sql_error_is_rolled_back_before_the_lease_is_released(self):
        with self.worker() as env:
            buffer, docs = self.make_buffer(env, documents=2)

        def broken_send(sender, buffer, client, rnd, deadline):
            sender.env.cr.execute("SELECT no_such_column FROM ksefnet_document")

        with patch.object(KsefnetSender, "_send", broken_send), mute_logger(*EXPECTED_ERRORS):
            with self.worker() as env:
                self.assertEqual(env["ksefnet.buffer"]._run_isolated("ksefnet.sender", buffer.id), 0)
        with self.worker() as env:
            env.cr.execute(
                "SELECT send_lease_until, engine_note_source FROM ksefnet_buffer WHERE id = %s", [buffer.id]
            )
            lease, note = env.cr.fetchone()
            self.assertIsNone(lease, "the lease was given back")
            self.assertIn("failed", note)
            self.assertEqual(self.states(env, docs), ["waiting"], "nothing half-done was kept")
        with self.worker() as env:  # and the next round works
            env["ksefnet.buffer"]._run_isolated("ksefnet.sender", buffer.id)
        with self.worker() as env:
            self.assertEqual(self.states(env, docs), ["sent"])

    # -- the scheduled action -------------------------------------------------------------------------------------
    def test_one_buffers_failure_never_stops_the_others(self):
        with self.worker() as env:
            good, good_docs = self.make_buffer(env, documents=3)
            no_credentials, stuck_docs = self.make_buffer(env, with_token=False, documents=2)
            broken, broken_docs = self.make_buffer(env, documents=2)
            other, other_docs = self.make_buffer(env, documents=2)
        original = KsefnetBuffer._ksef_client

        def client(buffer, fresh=False):
            if buffer.id == broken.id:
                raise RuntimeError("a bug in one buffer's configuration")
            return original(buffer, fresh=fresh)

        with patch.object(KsefnetBuffer, "_ksef_client", client), mute_logger(*EXPECTED_ERRORS):
            with self.worker() as env:
                env["ksefnet.buffer"]._run_engine_jobs("ksefnet.sender", "send_enabled", run_seconds=5)
        with self.worker() as env:
            self.assertEqual(self.states(env, good_docs), ["sent"])
            self.assertEqual(
                self.states(env, other_docs), ["sent"], "the buffer after the broken one went on"
            )
            self.assertTrue(all(d.upo_state == "stored" for d in (good_docs | other_docs).with_env(env)))
            self.assertEqual(self.states(env, stuck_docs), ["error"])
            self.assertIn("credentials", stuck_docs.with_env(env)[0].last_message)
            self.assertEqual(self.states(env, broken_docs), ["waiting"], "rolled back, not half-sent")
            broken_buffer = env["ksefnet.buffer"].browse(broken.id)
            # an unexpected exception's English text stays in the log; the note names its kind
            self.assertIn("RuntimeError", broken_buffer.engine_note)
            self.assertNotIn("a bug in one buffer", broken_buffer.engine_note)
            self.assertTrue(broken_buffer.engine_next_run_at, "tried again later")
            env.cr.execute(
                "SELECT count(*) FROM ksefnet_buffer WHERE id IN %s AND send_lease_until IS NOT NULL",
                [tuple(self.buffer_ids)],
            )
            self.assertEqual(env.cr.fetchone()[0], 0, "no lease left held")

    def test_buffers_interleave_within_one_run(self):
        """Two buffers in one run: both sent, each round in its own transaction (committed steps)."""
        with self.worker() as env:
            first, first_docs = self.make_buffer(env, documents=2)
            second, second_docs = self.make_buffer(env, documents=2)
        with self.worker() as env:
            done = env["ksefnet.buffer"]._run_engine_jobs("ksefnet.sender", "send_enabled", run_seconds=5)
        self.assertGreaterEqual(done, 4)
        with self.worker() as env:
            self.assertEqual(self.states(env, first_docs | second_docs), ["sent"])
            for buffer in env["ksefnet.buffer"].browse([first.id, second.id]):
                self.assertTrue(buffer.engine_last_run_at)
                self.assertFalse(buffer.engine_next_run_at, "nothing left to do")
                self.assertLessEqual(buffer.engine_last_run_at, fields.Datetime.now())

    def test_a_second_runner_takes_the_buffers_the_first_does_not_hold(self):
        """Two scheduled actions run the rounds; each skips the buffers whose lease the other holds, so two
        cron threads or workers work on two buffers at once."""
        with self.worker() as env:
            self.assertTrue(env.ref("ksefnet_buffer.ir_cron_ksefnet_send_2").active)
            held, held_docs = self.make_buffer(env, documents=2)
            free, free_docs = self.make_buffer(env, documents=2)
        with self.worker() as env:
            lease = env["ksefnet.buffer"].browse(held.id)._take_lease("send")  # the other runner is on it
        with self.worker() as env:
            env["ksefnet.buffer"]._run_engine_jobs("ksefnet.sender", "send_enabled", run_seconds=3)
        with self.worker() as env:
            self.assertEqual(self.states(env, free_docs), ["sent"])
            self.assertEqual(self.states(env, held_docs), ["waiting"], "left to the runner holding it")
            env["ksefnet.buffer"].browse(held.id)._end_lease("send", lease)
        with self.worker() as env:
            env["ksefnet.buffer"]._run_engine_jobs("ksefnet.sender", "send_enabled", run_seconds=3)
        with self.worker() as env:
            self.assertEqual(self.states(env, held_docs), ["sent"])
