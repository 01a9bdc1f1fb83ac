from odoo.addons.ksefnet_buffer.tests.common import assert_translation_complete
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestPolish(TransactionCase):
    def test_the_translation_is_complete_and_used(self):
        assert_translation_complete(self, "ksefnet_documents")
        self.env["res.lang"]._activate_lang("pl_PL")
        self.env["ir.module.module"]._load_module_terms(["ksefnet_documents"], ["pl_PL"], overwrite=True)
        env = self.env(context={"lang": "pl_PL"})
        labels = dict(env["ksefnet.document"]._fields["validity"]._description_selection(env))
        self.assertEqual(labels["valid"], "Zasadna (do nas)")
        self.assertEqual(labels["invalid"], "Niezasadna (nie do nas)")
        self.assertEqual(env.ref("ksefnet_documents.kind_kor").name, "KOR (korekta)")
