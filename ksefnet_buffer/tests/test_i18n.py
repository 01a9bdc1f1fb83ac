from odoo.exceptions import UserError, ValidationError
from odoo.tests import TransactionCase, tagged

from ksefnet_core.testing import sample_invoice

from .common import assert_translation_complete


@tagged("post_install", "-at_install")
class TestPolish(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("pl_PL")
        cls.env["ir.module.module"]._load_module_terms(["ksefnet_buffer"], ["pl_PL"], overwrite=True)

    def test_the_translation_is_complete(self):
        assert_translation_complete(self, "ksefnet_buffer")

    def test_statuses_read_in_polish(self):
        env = self.env(context={"lang": "pl_PL"})
        labels = dict(env["ksefnet.document"]._fields["state"]._description_selection(env))
        self.assertEqual(
            labels,
            {
                "waiting": "Oczekuje",
                "processing": "W trakcie przetwarzania",
                "sent": "Wysłano",
                "failure": "Niepowodzenie",
                "error": "Błąd",
            },
        )
        self.assertEqual(env.ref("ksefnet_buffer.group_ksef_admin").name, "Administrator KSeF")

    def test_messages_from_code_read_in_polish(self):
        buffer = self.env["ksefnet.buffer"].create({"name": "Sklep", "nip": "5265877635"})
        doc = self.env["ksefnet.document"]._create_submitted(
            buffer, sample_invoice(seller_nip="5265877635", number="FV/PL/1")
        )
        with self.assertRaises(UserError) as caught:
            doc.with_context(lang="pl_PL").action_retry()
        self.assertIn("Ponowić można tylko dokumenty", str(caught.exception))
        with self.assertRaises(ValidationError) as caught:
            doc.with_context(lang="pl_PL")._set_state("sent")  # the status names inside come out in Polish
        self.assertIn("Oczekuje", str(caught.exception))
        self.assertIn("Wysłano", str(caught.exception))
