from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestInstall(TransactionCase):
    def test_module_installed_and_core_importable(self):
        module = self.env["ir.module.module"].search([("name", "=", "ksefnet_documents")])
        self.assertEqual(module.state, "installed")
        # The addon is a thin layer on the framework-free protocol core: it must be importable here.
        from ksefnet_core import ids

        self.assertTrue(ids.is_valid_nip("5265877635"))
