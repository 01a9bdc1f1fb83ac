from pathlib import Path

import polib
from odoo.tests import TransactionCase, tagged

I18N = Path(__file__).resolve().parents[1] / "i18n"


@tagged("post_install", "-at_install")
class TestPolish(TransactionCase):
    def test_the_translation_is_complete_and_used(self):
        po, pot = polib.pofile(str(I18N / "pl.po")), polib.pofile(str(I18N / "ksefnet_hipermarket.pot"))
        self.assertFalse(po.untranslated_entries() or po.fuzzy_entries())
        self.assertEqual({e.msgid for e in pot} - {e.msgid for e in po}, set())
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
