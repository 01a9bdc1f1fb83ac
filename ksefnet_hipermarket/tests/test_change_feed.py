"""The change feed under concurrent commits, with real transactions on several cursors (as several workers)."""

import time

import psycopg2.errors
from odoo import SUPERUSER_ID, api
from odoo.addons.ksefnet_buffer.tests.test_engine_transactions import fresh_nip
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, tagged
from odoo.tests.common import get_db_name
from odoo.tools import mute_logger

from ksefnet_core.testing import sample_invoice

SOURCE = "HiperMarket"


@tagged("post_install", "-at_install")
class TestChangeFeedOrdering(BaseCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())

    def setUp(self):
        super().setUp()
        self.buffer_ids = []
        self.addCleanup(self._remove)

    def env_on(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def _remove(self):
        with self.registry.cursor() as cr:
            for buffer_id in self.buffer_ids:
                cr.execute(
                    "DELETE FROM ksefnet_document_event WHERE document_id IN "
                    "(SELECT id FROM ksefnet_document WHERE buffer_id = %s)",
                    [buffer_id],
                )
                cr.execute("DELETE FROM ksefnet_document WHERE buffer_id = %s", [buffer_id])
                cr.execute("DELETE FROM ksefnet_buffer WHERE id = %s", [buffer_id])

    def documents(self, env, count):
        nip = fresh_nip()
        buffer = env["ksefnet.buffer"].create({"name": f"Feed {nip}", "nip": nip})
        self.buffer_ids.append(buffer.id)
        Document = env["ksefnet.document"].with_context(ksefnet_defer_trigger=True)
        docs = Document.browse()
        for i in range(count):
            xml = sample_invoice(seller_nip=nip, number=f"FV/CF/{time.time_ns()}/{i}")
            docs |= Document._create_submitted(buffer, xml, external_ref=f"HM-{i}", source=SOURCE)
        return buffer, docs

    def feed(self, buffer_id):
        """What a reader sees now: [(document id, change number)] of the buffer's feed, in order."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, hm_change_seq FROM ksefnet_document WHERE buffer_id = %s AND source = %s "
                "ORDER BY hm_change_seq",
                [buffer_id, SOURCE],
            )
            return cr.fetchall()

    def test_numbers_become_visible_in_commit_order_and_buffers_do_not_wait_for_each_other(self):
        with self.registry.cursor() as cr:
            env = self.env_on(cr)
            buffer_a, (a1, a2) = self.documents(env, 2)
            buffer_b, (b1,) = self.documents(env, 1)
        start = dict(self.feed(buffer_a.id))

        first = self.registry.cursor()
        self.addCleanup(first.close)
        self.env_on(first)["ksefnet.document"].browse(a1.id)._hm_bump()  # numbered, not committed yet
        number_a1 = self.env_on(first)["ksefnet.document"].browse(a1.id).hm_change_seq

        # A second worker's change of buffer A waits for the first transaction (here: gives up after 0.3 s).
        second = self.registry.cursor()
        self.addCleanup(second.close)
        second.execute("SET lock_timeout = '300ms'")
        with self.assertRaises(psycopg2.errors.LockNotAvailable), mute_logger("odoo.sql_db"):
            self.env_on(second)["ksefnet.document"].browse(a2.id)._hm_bump()
        second.rollback()
        self.assertEqual(dict(self.feed(buffer_a.id)), start, "nothing uncommitted is visible")

        # Buffer B's feed is not held up by buffer A's open transaction.
        with self.registry.cursor() as cr:
            cr.execute("SET lock_timeout = '300ms'")
            self.env_on(cr)["ksefnet.document"].browse(b1.id)._hm_bump()  # no global lock: no timeout

        first.commit()
        second.execute("SET lock_timeout = '5s'")
        doc = self.env_on(second)["ksefnet.document"].browse(a2.id)
        doc._hm_bump()  # the first committed: the lock is free
        number_a2 = doc.hm_change_seq
        second.commit()
        self.assertGreater(number_a2, number_a1, "committed later, numbered later")
        seen = self.feed(buffer_a.id)
        self.assertEqual([doc_id for doc_id, _n in seen], [a1.id, a2.id])

    def test_only_what_hipermarket_reads_is_numbered(self):
        with self.registry.cursor() as cr:
            env = self.env_on(cr)
            buffer, (doc,) = self.documents(env, 1)
            self.assertTrue(doc.hm_change_seq)
            own = env["ksefnet.document"]._create_submitted(
                buffer, sample_invoice(seller_nip=buffer.nip, number=f"FV/CF/OWN/{time.time_ns()}")
            )
            self.assertFalse(own.hm_change_seq, "a document HiperMarket did not submit is not in its feed")
