"""Offline invoices through the HiperMarket API: mode and deadline recorded, KOD I/KOD II at once, sent with
offlineMode true (checked in the simulator), deadlines first; the Offline certificate and its refusals."""

import base64
import re
from datetime import datetime, timedelta, timezone

from odoo.addons.ksefnet_buffer.tests.common import KsefSimulatorCase
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from ksefnet_core import offline, qr
from ksefnet_core.certificates import CertificateKind, credential_to_pkcs12, generate_test_credential
from ksefnet_core.ids import is_valid_ksef_number
from ksefnet_core.simulator.sessions_api import store


@tagged("post_install", "-at_install")
class TestOfflineInvoices(KsefSimulatorCase):
    fresh_simulator_per_test = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hm = new_test_user(
            cls.env, login="hm_offline", groups="base.group_user,ksefnet_hipermarket.group_hipermarket"
        )
        cls.hm.ksefnet_hm_buffer_ids = cls.buffer

    def api(self):
        return self.env["ksefnet.hipermarket.api"].with_user(self.hm)

    def item(self, ref, **extra):
        return {"buffer_nip": self.nip, "document_id": ref, "xml": self.invoice().decode(), **extra}

    def set_offline_certificate(self, credential, password="tajne-haslo"):
        wizard = self.env["ksefnet.credentials.wizard"].create(
            {
                "buffer_id": self.buffer.id,
                "method": "offline_certificate",
                "certificate_file": base64.b64encode(credential_to_pkcs12(credential, password)),
                "certificate_password": password,
            }
        )
        wizard.action_save()

    def sim_mode(self, ksef_number):
        return store(self.sim_app).repository.invoices[ksef_number].invoicing_mode

    def test_offline24_invoice_gets_kod1_kod2_and_is_sent_offline(self):
        credential = offline.generate_offline_credential(self.nip, key_type="EC")
        self.set_offline_certificate(credential)
        self.assertTrue(self.buffer.offline_certificate_set)
        self.assertFalse(self.buffer.offline_certificate_warning)
        issued = datetime.now(timezone.utc) - timedelta(minutes=10)
        (result,) = self.api().submit(
            [
                self.item(
                    "OFF-1", offline_mode="offline24", offline_reason="Brak łącza w sklepie",
                    issued_at=issued.isoformat(),
                )
            ]
        )  # fmt: skip
        self.assertTrue(result["ok"], result)
        block = result["offline"]
        self.assertEqual(block["mode"], "offline24")
        self.assertEqual(block["kod1"]["label"], "OFFLINE")
        self.assertEqual(block["kod2"]["label"], "CERTYFIKAT")
        self.assertFalse(block["kod2_error"])
        self.assertTrue(qr.verify_certificate_url(block["kod2"]["url"], credential.certificate))
        self.assertTrue(base64.b64decode(block["kod2"]["png_base64"]).startswith(b"\x89PNG"))
        doc = self.env["ksefnet.document"].browse(result["id"])
        expected = offline.send_deadline("offline24", issued).until.replace(tzinfo=None)
        self.assertEqual(doc.offline_deadline, expected)
        self.assertEqual(result["offline_deadline"], block["deadline"])
        self.assertEqual(doc.offline_reason, "Brak łącza w sklepie")
        self.assertEqual(doc.offline_issued_at, issued.replace(tzinfo=None, microsecond=0))
        self.assertFalse(doc.offline_problem)
        self.assertIn("KOD II", doc.invoice_html)  # the readable invoice carries both codes
        (shown,) = set(re.findall(r'href="(https://[^"]+/certificate/[^"]+)"', doc.invoice_html))
        self.assertTrue(qr.verify_certificate_url(shown, credential.certificate))  # ECDSA: a new signature
        # the engine owns these fields: a person cannot change them
        with self.assertRaises(AccessError):
            doc.with_user(self.hm).write({"offline_deadline": False})
        self.send_round()
        (sent,) = self.api().changes(self.nip, 0, 100)["changes"][-1:]
        self.assertEqual((sent["document_id"], sent["status"]), ("OFF-1", "sent"))
        self.assertTrue(is_valid_ksef_number(sent["ksef_number"]))
        self.assertEqual(self.sim_mode(sent["ksef_number"]), "Offline")  # sent with offlineMode: true
        # with the number known, KOD I carries it; KOD II stays available from qr()
        again = self.api().qr(self.nip, "OFF-1")
        self.assertEqual(again["label"], sent["ksef_number"])
        self.assertEqual(again["kod2"]["label"], "CERTYFIKAT")
        for code in (again, again["kod2"]):  # PNG and SVG, both labelled
            self.assertTrue(base64.b64decode(code["png_base64"]).startswith(b"\x89PNG"))
            self.assertIn(b"<svg", base64.b64decode(code["svg_base64"]))
        self.assertTrue(qr.verify_certificate_url(again["kod2"]["url"], credential.certificate))

    def test_online_invoices_stay_online_and_offline_ones_go_first(self):
        (online,) = self.api().submit([self.item("ON-1")])
        late = datetime.now(timezone.utc) - timedelta(days=1)
        earlier, later = self.api().submit(
            [
                self.item("OFF-A", offline_mode="failure"),
                self.item("OFF-B", offline_mode="offline24", issued_at=late.isoformat()),
            ]
        )
        self.assertFalse(online["offline_mode"])
        self.assertNotIn("offline", online)
        docs = self.env["ksefnet.document"].browse([online["id"], earlier["id"], later["id"]])
        # the earliest deadline first, then the other offline one, the online invoice last
        order = self.env["ksefnet.sender"]._due_documents(self.buffer).filtered(lambda d: d in docs)
        by_deadline = sorted(docs.filtered("offline_deadline"), key=lambda d: d.offline_deadline)
        self.assertEqual(order.ids, [*(d.id for d in by_deadline), online["id"]])
        # without an Offline certificate the invoices are accepted, KOD II is missing and they are flagged
        self.assertFalse(earlier["offline"]["kod2"])
        self.assertIn("Offline certificate", earlier["offline"]["kod2_error"])
        self.assertTrue(docs[1].offline_problem)
        self.send_round()
        modes = {d.external_ref: self.sim_mode(d.ksef_number) for d in docs}
        self.assertEqual(modes, {"ON-1": "Online", "OFF-A": "Offline", "OFF-B": "Offline"})

    def test_a_batch_session_carries_offline_invoices_apart(self):
        self.buffer.batch_threshold = 2
        results = self.api().submit(
            [self.item(f"B-{i}", **({"offline_mode": "offline24"} if i % 2 else {})) for i in range(4)]
        )
        self.send_round()
        docs = self.env["ksefnet.document"].browse([r["id"] for r in results])
        self.assertEqual(set(docs.mapped("state")), {"sent"})
        self.assertEqual(set(docs.mapped("ksef_send_mode")), {"batch"})
        for doc in docs:
            self.assertEqual(self.sim_mode(doc.ksef_number), "Offline" if doc.offline_mode else "Online")
        self.assertEqual(len(set(docs.mapped("ksef_session_ref"))), 2)

    def test_an_authentication_certificate_is_refused_for_kod2(self):
        auth = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=self.nip)
        with self.assertRaisesRegex(UserError, "Authentication-type KSeF certificate") as caught:
            self.set_offline_certificate(auth, password="sekret-123")
        self.assertNotIn("sekret-123", str(caught.exception))
        self.assertFalse(self.buffer.offline_certificate_set)
        self.assertEqual(self.buffer.auth_method, "token")  # the authentication credentials are untouched

    def test_an_expired_offline_certificate(self):
        expired = offline.generate_offline_credential(self.nip, valid_days=-1)
        with self.assertRaisesRegex(UserError, "expired on"):
            self.set_offline_certificate(expired)
        # one that expired after it was set: a clear error, the invoice is still accepted and flagged
        good = offline.generate_offline_credential(self.nip)
        self.set_offline_certificate(good)
        self.buffer.sudo().write(
            {
                "offline_certificate_file": self.buffer._seal(credential_to_pkcs12(expired, "x")),
                "offline_certificate_password": self.buffer._seal("x"),
                "offline_certificate_valid_to": datetime.now() - timedelta(days=1),
            }
        )
        self.assertIn("has expired", self.buffer.offline_certificate_warning)
        (result,) = self.api().submit([self.item("OFF-EXP", offline_mode="offline24")])
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["status"], "waiting")
        self.assertFalse(result["offline"]["kod2"])
        self.assertIn("expired on", result["offline"]["kod2_error"])
        self.assertEqual(result["offline"]["kod1"]["label"], "OFFLINE")
        doc = self.env["ksefnet.document"].browse(result["id"])
        self.assertIn("expired on", doc.offline_problem)
        self.assertIn(doc, self.env["ksefnet.document"].search([("offline_problem", "!=", False)]))

    def test_bad_offline_arguments_are_refused_clearly(self):
        future = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
        results = self.api().submit(
            [
                self.item("X-1", offline_mode="offline48"),
                self.item("X-2", offline_mode="offline24", issued_at="2026-03-02 14:05"),
                self.item("X-3", offline_mode="offline24", issued_at=future),
                self.item("X-4", offline_reason="bez trybu"),
                self.item("X-5", offline_mode="offline24", offline_reason="x" * 501),
                self.item("X-6", offline_mode="total_failure"),
            ]
        )
        errors = [(r.get("error") or {}).get("field") for r in results[:5]]
        self.assertEqual(errors, ["offline_mode", "issued_at", "issued_at", "offline_mode", "offline_reason"])
        self.assertIn("offline24", results[0]["error"]["message"])
        self.assertEqual(results[2]["error"]["code"], "future")
        self.assertFalse(
            self.env["ksefnet.document"].search_count([("external_ref", "in", ["X-1", "X-2", "X-3", "X-4"])])
        )
        total = results[5]
        self.assertTrue(total["ok"])
        self.assertFalse(total["offline"]["deadline"])  # a total failure: no obligation
        self.assertFalse(total["offline"]["kod2"])  # and no QR codes on such invoices

    def test_auto_lets_the_buffer_decide_from_ksef_availability(self):
        import requests

        (online,) = self.api().submit([self.item("AUTO-1", offline_mode="auto")])
        self.assertFalse(online["offline_mode"])  # KSeF available: an ordinary invoice
        self.assertEqual(self.api().availability(self.nip)["state"], "available")
        url = f"{self.sim.base_url}/_simulator/latarnia"
        requests.post(url, json={"status": "FAILURE", "message": {"title": "Awaria"}}, timeout=10)
        self.addCleanup(requests.delete, url, timeout=10)
        self.buffer._watch_ksef()
        seen = self.api().availability(self.nip)
        self.assertEqual((seen["state"], seen["offline_mode"]), ("failure", "failure"))
        self.assertIn("Awaria", seen["messages"])
        (result,) = self.api().submit([self.item("AUTO-2", offline_mode="auto")])
        self.assertEqual(result["offline"]["mode"], "failure")
        self.assertEqual(result["offline"]["kod1"]["label"], "OFFLINE")
        doc = self.env["ksefnet.document"].browse(result["id"])
        self.assertEqual(doc.offline_reason, "KSeF: failure")

    def test_the_buffer_obtains_its_offline_certificate_from_ksef(self):
        # KSeF issues certificates only after a certificate (XAdES) login: with the token, a clear refusal
        with self.assertRaisesRegex(UserError, "logged in with a certificate"):
            self.buffer.action_enrol_offline_certificate()
        self.env["ir.config_parameter"].sudo().set_param("ksefnet_buffer.enrol_poll", "0.02")
        seal = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=self.nip)
        self.set_certificate(self.buffer, credential_to_pkcs12(seal, "pieczec"), "pieczec")
        action = self.buffer.action_enrol_offline_certificate()
        self.assertEqual(action["params"]["type"], "success")
        self.assertTrue(self.buffer.offline_certificate_set)
        self.assertEqual(self.buffer.auth_method, "certificate")  # the login certificate stays
        credential = self.buffer._offline_credential()
        self.assertEqual(offline.certificate_type(credential.certificate), "Offline")
        self.assertNotEqual(credential.serial_hex, seal.serial_hex)
        (result,) = self.api().submit([self.item("ENR-1", offline_mode="offline24")])
        self.assertTrue(qr.verify_certificate_url(result["offline"]["kod2"]["url"], credential.certificate))
        # a KSeF user may not do it
        user = new_test_user(
            self.env, login="ksef_user_enrol", groups="base.group_user,ksefnet_buffer.group_ksef_user"
        )
        with self.assertRaises(AccessError):
            self.buffer.with_user(user).action_enrol_offline_certificate()

    def test_the_deadline_counts_from_the_invoice_date_when_it_is_earlier(self):
        from datetime import date, time

        p1 = date.today() - timedelta(days=10)  # far enough back that no run of days off bridges it
        item = dict(self.item("P1-1", offline_mode="offline24"), xml=self.invoice(issue_date=p1).decode())
        (result,) = self.api().submit([item])
        self.assertTrue(result["ok"], result)
        doc = self.env["ksefnet.document"].browse(result["id"])
        from_p1 = offline.send_deadline("offline24", datetime.combine(p1, time(12), offline.WARSAW)).until
        self.assertEqual(doc.offline_deadline, from_p1.replace(tzinfo=None))
        from_now = offline.send_deadline("offline24", datetime.now(timezone.utc)).until
        self.assertLess(doc.offline_deadline, from_now.replace(tzinfo=None))
