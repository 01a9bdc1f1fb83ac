"""What nobody may do to a KSeF document, and credentials sealed with a key from Odoo's configuration file."""

from datetime import datetime, timedelta, timezone
from unittest.mock import patch

import requests
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import config

from .common import KsefSimulatorCase


@tagged("post_install", "-at_install")
class TestDocumentsKnownToKsef(KsefSimulatorCase):
    fresh_simulator_per_test = True

    def test_nothing_known_to_ksef_disappears_and_archived_invoices_are_not_downloaded_again(self):
        now = datetime.now(timezone.utc)
        requests.post(
            f"{self.sim.base_url}/_simulator/invoices/generate",
            json={"buyerNip": self.nip, "count": 3, "dateFrom": (now - timedelta(days=2)).isoformat(),
                  "dateTo": (now - timedelta(minutes=1)).isoformat()},
            timeout=60,
        ).raise_for_status()  # fmt: skip
        self.buffer.download_start_date = datetime.now() - timedelta(days=5)
        self.raise_rate_limits()
        self.assertEqual(self.env["ksefnet.downloader"]._run_buffer(self.buffer), 3)
        Document = self.env["ksefnet.document"]
        purchase = Document.search(
            [("buffer_id", "=", self.buffer.id), ("direction", "=", "purchase")], limit=1
        )
        (sent,) = self.submit()
        self.send_round()
        admin = new_test_user(self.env, login="ksef_boss", groups="ksefnet_buffer.group_ksef_admin")
        for doc in (purchase, sent):
            with self.assertRaises(UserError):
                doc.with_user(admin).unlink()
            with self.assertRaises(UserError):
                doc.unlink()  # not even the superuser
        (waiting,) = self.submit()
        with self.assertRaises(UserError):
            waiting.with_user(admin).action_archive()  # on its way to KSeF
        with self.assertRaises(AccessError):
            Document.with_user(admin).create({"buffer_id": self.buffer.id, "state": "sent"})
        purchase.with_user(admin).action_archive()
        self.assertFalse(purchase.active)
        # the download runs again from the start: the archived invoice is still known, not stored twice
        self.buffer.sync_ids.write({"resume_point": False})
        self.env["ksefnet.downloader"]._run_buffer(self.buffer)
        self.assertEqual(
            Document.with_context(active_test=False).search_count(
                [("buffer_id", "=", self.buffer.id), ("direction", "=", "purchase")]
            ),
            3,
        )
        self.assertFalse(
            self.buffer.sync_ids.filtered("last_error"), self.buffer.sync_ids.mapped("last_error")
        )


@tagged("post_install", "-at_install")
class TestSealingKeyInTheConfigurationFile(KsefSimulatorCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(self.buffer._forget_clients)

    def stored(self, field="ksef_token"):
        self.env.flush_all()
        self.env.cr.execute(f"SELECT {field} FROM ksefnet_buffer WHERE id = %s", [self.buffer.id])  # noqa: S608
        return self.env.cr.fetchone()[0]

    def connects(self):
        self.buffer._forget_clients()
        return self.buffer.action_test_connection()["params"]["type"] == "success"

    def test_a_dump_alone_does_not_open_the_credentials_and_a_missing_key_loses_nothing(self):
        token = self.mint_token(self.nip)
        self.set_token(self.buffer, token)
        self.assertTrue(self.stored().startswith("sealed:v1:"), "without the option: the database's key")
        with patch.dict(config.options, {"ksefnet_sealing_key": "a-long-secret-kept-outside-the-database"}):
            self.assertTrue(self.connects())
            self.assertTrue(self.stored().startswith("sealed:file:v1:"), "sealed again with the file's key")
            sealed = self.stored()
            self.assertNotIn(token, sealed)
            self.set_token(self.buffer, token)  # new credentials are sealed with the file's key at once
            self.assertTrue(self.stored().startswith("sealed:file:v1:"))
            sealed = self.stored()
        # the key is gone from the configuration file: a clear error, the sealed value untouched
        with self.assertRaises(UserError) as caught:
            self.buffer._unseal(sealed)
        self.assertIn("ksefnet_sealing_key", str(caught.exception))
        self.assertFalse(self.connects())
        self.assertIn("ksefnet_sealing_key", self.buffer.last_connection_result)
        with patch.dict(config.options, {"ksefnet_sealing_key": "another-key"}):
            with self.assertRaises(UserError) as caught:
                self.buffer._unseal(sealed)
            self.assertIn("not the key", str(caught.exception))
        self.assertEqual(self.stored(), sealed, "nothing was lost")
        with patch.dict(config.options, {"ksefnet_sealing_key": "a-long-secret-kept-outside-the-database"}):
            self.assertTrue(self.connects(), "the same key back: it works again")
