from odoo import models


class IrModuleModule(models.Model):
    _inherit = "ir.module.module"

    def _load_module_terms(self, modules, langs, overwrite=False, imported_module=False):
        """A language installed (or its terms loaded again) names the shops' groups in it too."""
        result = super()._load_module_terms(
            modules, langs, overwrite=overwrite, imported_module=imported_module
        )
        if "ksefnet.shop" in self.env and langs:
            installed = {code for code, _name in self.env["res.lang"].get_installed()}
            langs = [lang for lang in langs if lang in installed]
            if langs:
                self.env["ksefnet.shop"].sudo().with_context(active_test=False).search([])._name_groups(langs)
        return result
