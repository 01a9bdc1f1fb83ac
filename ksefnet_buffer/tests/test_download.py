from datetime import datetime, timedelta, timezone
from unittest.mock import patch

import requests
from odoo.tests import tagged

from .common import KsefSimulatorCase


@tagged("post_install", "-at_install")
class TestDownload(KsefSimulatorCase):
    fresh_simulator_per_test = True

    def generate(self, count, days=20):
        now = datetime.now(timezone.utc)
        resp = requests.post(
            f"{self.sim.base_url}/_simulator/invoices/generate",
            json={
                "buyerNip": self.nip,
                "count": count,
                "dateFrom": (now - timedelta(days=days)).isoformat(),
                "dateTo": (now - timedelta(minutes=1)).isoformat(),
            },
            timeout=120,
        )
        resp.raise_for_status()
        return resp.json()

    def setUp(self):
        super().setUp()
        self.buffer.download_start_date = datetime.now() - timedelta(days=30)
        # Single-invoice downloads are limited to 16 a minute in KSeF: these tests need more.
        self.raise_rate_limits()

    def sync_error(self):
        return self.buffer.sync_ids.mapped("last_error")

    def purchases(self):
        return self.env["ksefnet.document"].search(
            [("buffer_id", "=", self.buffer.id), ("direction", "=", "purchase")]
        )

    def test_received_invoices_download_once_across_runs(self):
        self.generate(40)
        for mode in ("export", "metadata"):
            self.buffer.download_mode = mode
            created = self.env["ksefnet.downloader"]._run_buffer(self.buffer)
            if mode == "export":
                self.assertEqual(created, 40)
            else:
                self.assertEqual(created, 0)  # nothing new: no duplicates across runs and modes
        docs = self.purchases()
        self.assertEqual(len(docs), 40)
        self.assertEqual(len(set(docs.mapped("ksef_number"))), 40)
        self.assertEqual(set(docs.mapped("state")), {"sent"})
        self.assertTrue(all(d.xml_attachment_id for d in docs))
        self.assertEqual(set(docs.mapped("buyer_nip")), {self.nip})
        sync = self.buffer.sync_ids.filtered(lambda s: s.subject_type == "Subject2")
        self.assertTrue(sync.resume_point)
        self.assertFalse(sync.last_error)
        # More arrive later: only the new ones come down.
        self.generate(7, days=0.001)
        self.assertEqual(self.env["ksefnet.downloader"]._run_buffer(self.buffer), 7, self.sync_error())
        self.assertEqual(len(self.purchases()), 47)

    def test_own_issued_invoices_are_not_duplicated(self):
        docs = self.submit(2)
        self.send_round()
        self.assertEqual(set(docs.mapped("state")), {"sent"})
        self.buffer.write({"download_own": True, "download_received": False, "download_mode": "metadata"})
        self.env["ksefnet.downloader"]._run_buffer(self.buffer)
        sales = self.env["ksefnet.document"].search(
            [("buffer_id", "=", self.buffer.id), ("direction", "=", "sales")]
        )
        self.assertEqual(len(sales), 2, "the buffer's own sent invoices are not stored twice")

    def test_crash_between_download_and_commit_loses_nothing(self):
        self.generate(15)
        self.buffer.download_mode = "metadata"

        def crash(docs, *args, **kwargs):
            raise RuntimeError("worker killed")

        Document = type(self.env["ksefnet.document"])
        with (
            patch.object(Document, "_on_arrival", crash),
            self.assertRaises(RuntimeError),
            self.env.cr.savepoint(),
        ):
            self.env["ksefnet.downloader"]._run_buffer(self.buffer)
        self.buffer.invalidate_recordset()
        self.assertEqual(len(self.purchases()), 0)
        sync = self.buffer.sync_ids.filtered(lambda s: s.subject_type == "Subject2")
        self.assertFalse(sync.resume_point, "the resume point did not move past uncommitted invoices")
        self.assertEqual(self.env["ksefnet.downloader"]._run_buffer(self.buffer), 15, self.sync_error())
        self.assertEqual(len(self.purchases()), 15)
