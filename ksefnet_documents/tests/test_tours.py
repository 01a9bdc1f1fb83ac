"""Browser tours of the main screens, in Polish, in headless Chromium: the Overview, purchases, a rejected sale
and its correction, the KSeF role on the user form. With Odoo's web_tour addon (every full Odoo 18 server has
it) they run through HttpCase.start_tour; on an installation without it, the same tours run through
browser_js with the small step runner in ksefnet_buffer/static/tests (same steps, same browser)."""

from odoo.tests import HttpCase, new_test_user, tagged

from ksefnet_core.testing import sample_invoice

from .common import US, DocumentsCase


@tagged("post_install", "-at_install")
class TestMainScreens(DocumentsCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        env["res.lang"]._activate_lang("pl_PL")
        env["ir.module.module"]._load_module_terms(
            ["ksefnet_buffer", "ksefnet_documents", "ksefnet_hipermarket"], ["pl_PL"], overwrite=True
        )
        cls.buffer.name = "Sieć Sklepów"
        purchase = cls.generated(number="FV/ZAKUP/1")
        costs = cls.catalog("Koszty")
        purchase.catalog_id = cls.catalog("Energia", costs)
        cls.generated(number="FV/INNE/1").catalog_id = cls.catalog("Inne")
        sale = cls.Document._create_submitted(cls.buffer, sample_invoice(seller_nip=US, number="FV/ODRZ/1"))
        sale._set_state("processing")
        sale._set_state("failure", code=450, message="Błąd weryfikacji semantyki dokumentu faktury")
        cls.env["ksefnet.shop"].create({"name": "Rynek", "code": "S1", "buffer_id": cls.buffer.id})
        cls.accountant = new_test_user(
            env,
            login="ksiegowa_pl",
            name="Księgowa",
            groups="ksefnet_buffer.group_ksef_admin,base.group_erp_manager",
        )
        cls.accountant.lang = "pl_PL"

    def tour(self, name, url):
        if self.env["ir.module.module"].search_count(
            [("name", "=", "web_tour"), ("state", "=", "installed")]
        ):
            self.start_tour(url, name, login="ksiegowa_pl")
        else:
            self.browser_js(url, f"window.ksefnetRunTour({name!r})", ready="!!window.ksefnetRunTour",
                            login="ksiegowa_pl", timeout=120)  # fmt: skip

    def test_overview_and_purchases(self):
        self.tour("ksefnet_overview_and_purchases", "/odoo/action-ksefnet_buffer.action_ksefnet_dashboard")

    def test_rejected_sale_is_corrected_not_retried(self):
        self.tour("ksefnet_rejected_sale", "/odoo/action-ksefnet_buffer.action_ksefnet_sales")

    def test_the_ksef_role_on_the_user_form(self):
        self.tour("ksefnet_user_role", "/odoo/action-base.action_res_users")

    def test_the_catalog_tree(self):
        self.tour("ksefnet_catalog_tree", "/odoo/action-ksefnet_buffer.action_ksefnet_purchases")
