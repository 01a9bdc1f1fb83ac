import logging

import requests
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger
from psycopg2.errors import UniqueViolation

from ksefnet_core.certificates import CertificateKind, credential_to_pkcs12, generate_test_credential

from .common import KsefSimulatorCase

PESEL = "44051401359"


@tagged("post_install", "-at_install")
class TestBuffer(KsefSimulatorCase):
    def test_one_buffer_per_valid_nip(self):
        with self.assertRaises(ValidationError):
            self.env["ksefnet.buffer"].create({"name": "Bad", "nip": "1234567890"})
        with self.assertRaises(UniqueViolation), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            self.env["ksefnet.buffer"].create({"name": "Twin", "nip": self.nip})
        normalised = self.env["ksefnet.buffer"].create({"name": "Dashes", "nip": "111-111-11-11"})
        self.assertEqual(normalised.nip, "1111111111")

    def test_saving_checked_credentials_records_the_connection(self):
        self.set_token(self.buffer, self.mint_token(self.nip))
        self.assertIn(self.nip, self.buffer.last_connection_result)
        self.assertTrue(self.buffer.last_connection_at)

    def test_token_connection_reports_success_in_plain_words(self):
        result = self.buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "success", result["params"]["message"])
        self.assertIn(self.nip, self.buffer.last_connection_result)

    def test_wrong_token_reports_a_clear_failure(self):
        buffer = self.env["ksefnet.buffer"].create(
            {"name": "Other", "nip": "1111111111", "environment": "simulator", "api_url": self.sim.api_base}
        )
        token = self.mint_token(self.nip)  # a token of another NIP does not work in this context
        with self.assertRaises(UserError) as caught:
            self.set_token(buffer, token)  # checked with KSeF first: refused, nothing replaced
        self.assertIn("previous ones are kept", str(caught.exception))
        self.assertNotIn(token, str(caught.exception))
        self.assertFalse(buffer.credentials_set)
        self.set_token(buffer, token, verify=False)  # saved without the check (KSeF unreachable, say)
        result = buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("KSeF", result["params"]["message"])
        self.assertNotIn(token, result["params"]["message"])

    def test_secrets_are_admin_only_and_never_in_views(self):
        user = new_test_user(self.env, login="ksef_clerk", groups="ksefnet_buffer.group_ksef_user")
        buffer = self.buffer.with_user(user)
        self.assertEqual(buffer.name, "Test buffer")
        with self.assertRaises(AccessError):
            buffer.read(["ksef_token"])
        arch = self.env["ksefnet.buffer"].get_view(view_type="form")["arch"]
        self.assertNotIn('name="ksef_token"', arch)
        self.assertNotIn('name="certificate_password"', arch)
        with self.assertRaises(AccessError):
            self.env["ksefnet.credentials.wizard"].with_user(user).create(
                {"buffer_id": self.buffer.id, "method": "token", "ksef_token": "x"}
            ).action_save()

    def _certificate_buffer(
        self,
        nip,
        credential,
        password="tajne-haslo",
        subject_identifier_type="certificateSubject",
        verify=True,
    ):
        buffer = self.env["ksefnet.buffer"].search([("nip", "=", nip)]) or self.env["ksefnet.buffer"].create(
            {"name": f"Cert {nip}", "nip": nip, "environment": "simulator", "api_url": self.sim.api_base}
        )
        self.set_certificate(
            buffer,
            credential_to_pkcs12(credential, password),
            password,
            subject_identifier_type,
            verify=verify,
        )
        return buffer

    def test_company_seal_certificate(self):
        cred = generate_test_credential(CertificateKind.COMPANY_SEAL, nip="1111111111")
        buffer = self._certificate_buffer("1111111111", cred)
        self.assertEqual(buffer.certificate_kind, "company_seal")
        self.assertEqual(buffer.certificate_serial, cred.serial_hex)
        self.assertTrue(buffer.certificate_valid_to)
        result = buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "success", result["params"]["message"])

    def test_personal_certificate(self):
        cred = generate_test_credential(CertificateKind.PERSONAL_NIP, nip="1111111111", key_type="EC")
        buffer = self._certificate_buffer("1111111111", cred)
        self.assertEqual(buffer.certificate_kind, "personal")
        result = buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "success", result["params"]["message"])

    def test_pesel_certificate_in_company_nip_context(self):
        cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL)
        with self.assertRaises(UserError):  # KSeF refuses it for now: checked before it is saved
            self._certificate_buffer("1111111111", cred)
        buffer = self._certificate_buffer("1111111111", cred, verify=False)
        self.assertEqual(buffer.certificate_kind, "personal_pesel")
        # Without a permission in the company's context, KSeF refuses (415) and the buffer says so.
        result = buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "danger")
        self.assertIn("415", result["params"]["message"])
        # The company grants the person rights (on TEST: /testdata/person); then the context switch works.
        resp = requests.post(
            f"{self.sim.api_base}/testdata/person",
            json={"nip": "1111111111", "pesel": PESEL, "isBailiff": False, "description": "Księgowa"},
            timeout=30,
        )
        resp.raise_for_status()
        result = buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "success", result["params"]["message"])

    def test_bad_certificate_password_is_a_clear_error_without_secrets(self):
        cred = generate_test_credential(CertificateKind.COMPANY_SEAL, nip="1111111111")
        buffer = self.env["ksefnet.buffer"].create(
            {"name": "Cert", "nip": "1111111111", "environment": "simulator", "api_url": self.sim.api_base}
        )
        with self.assertRaises(UserError) as caught:
            self.set_certificate(buffer, credential_to_pkcs12(cred, "dobre-haslo"), "zle-haslo")
        self.assertNotIn("zle-haslo", str(caught.exception))
        self.assertFalse(buffer.credentials_set)

    def test_an_expired_certificate_or_another_companys_seal_never_replaces_working_credentials(self):
        seal = generate_test_credential(CertificateKind.COMPANY_SEAL, nip="1111111111")
        buffer = self._certificate_buffer("1111111111", seal)
        fingerprint = buffer.certificate_fingerprint
        expired = generate_test_credential(CertificateKind.COMPANY_SEAL, nip="1111111111", valid_days=-1)
        other = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=self.nip)
        for credential, words in ((expired, "expired"), (other, self.nip)):
            with self.assertRaises(UserError) as caught:
                self.set_certificate(buffer, credential_to_pkcs12(credential, "x"), "x")
            self.assertIn(words, str(caught.exception))
            self.assertEqual(buffer.certificate_fingerprint, fingerprint, "the working certificate stays")
        result = buffer.action_test_connection()
        self.assertEqual(result["params"]["type"], "success", result["params"]["message"])

    def test_certificate_expiry_is_warned(self):
        cred = generate_test_credential(CertificateKind.COMPANY_SEAL, nip="1111111111", valid_days=10)
        buffer = self._certificate_buffer("1111111111", cred)
        self.assertTrue(buffer.certificate_expiry_warning)

    def test_secrets_never_reach_the_logs(self):
        records = []

        class Collect(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())

        root = logging.getLogger()
        handler, level = Collect(logging.DEBUG), root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            token = self.mint_token(self.nip)
            self.set_token(self.buffer, token)
            self.buffer.action_test_connection()
            self.submit()
            self.send_round()
            access = self.buffer._ksef_client().access_token.token
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        self.assertTrue(records, "the operations were logged at all")
        leaked = [r for r in records if token in r or access in r or token.split("|")[-1] in r]
        self.assertFalse(leaked, "a secret appeared in the log")
        self.env.flush_all()
        self.env.cr.execute("SELECT ksef_token FROM ksefnet_buffer WHERE id = %s", [self.buffer.id])
        stored = self.env.cr.fetchone()[0]
        self.assertTrue(stored.startswith("sealed:v1:") and token not in stored, "sealed at rest")
        self.env.cr.execute(
            "SELECT count(*) FROM ksefnet_credentials_wizard WHERE ksef_token LIKE %s", [f"%{token}%"]
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)
