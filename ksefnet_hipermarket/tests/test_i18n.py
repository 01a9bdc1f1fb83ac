from odoo.addons.ksefnet_buffer.tests.common import assert_translation_complete
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestPolish(TransactionCase):
    def test_the_translation_is_complete_and_used(self):
        assert_translation_complete(self, "ksefnet_hipermarket")
        self.env["res.lang"]._activate_lang("pl_PL")
        self.env["ir.module.module"]._load_module_terms(["ksefnet_hipermarket"], ["pl_PL"], overwrite=True)
        group = self.env.ref("ksefnet_hipermarket.group_hipermarket").with_context(lang="pl_PL")
        self.assertEqual(group.name, "Integracja z HiperMarketem")
        buffer = self.env["ksefnet.buffer"].create({"name": "B", "nip": "5265877635"})
        (result,) = (
            self.env["ksefnet.hipermarket.api"]
            .with_context(lang="pl_PL")
            .submit([{"buffer_nip": buffer.nip, "document_id": "X", "xml": ""}])
        )
        self.assertEqual(result["error"]["message"], "Brak pliku XML faktury.")
