from pathlib import Path

import polib
from odoo.tests import TransactionCase, tagged

I18N = Path(__file__).resolve().parents[1] / "i18n"


@tagged("post_install", "-at_install")
class TestPolish(TransactionCase):
    def test_the_translation_is_complete_and_used(self):
        po, pot = polib.pofile(str(I18N / "pl.po")), polib.pofile(str(I18N / "ksefnet_documents.pot"))
        self.assertFalse(po.untranslated_entries() or po.fuzzy_entries())
        self.assertEqual({e.msgid for e in pot} - {e.msgid for e in po}, set())
        self.env["res.lang"]._activate_lang("pl_PL")
        self.env["ir.module.module"]._load_module_terms(["ksefnet_documents"], ["pl_PL"], overwrite=True)
        env = self.env(context={"lang": "pl_PL"})
        labels = dict(env["ksefnet.document"]._fields["validity"]._description_selection(env))
        self.assertEqual(labels["valid"], "Zasadna (do nas)")
        self.assertEqual(labels["invalid"], "Niezasadna (nie do nas)")
        self.assertEqual(env.ref("ksefnet_documents.kind_kor").name, "KOR (korekta)")
