/** @odoo-module **/
/* The main screens, as an accountant and an administrator working in Polish use them. */
import { registry } from "@web/core/registry";

function absent(selector, what) {
    return () => {
        if (document.querySelector(selector)) {
            throw new Error(`${what} should not be shown`);
        }
    };
}

registry.category("web_tour.tours").add("ksefnet_overview_and_purchases", {
    url: "/odoo/action-ksefnet_buffer.action_ksefnet_dashboard",
    steps: () => [
        { content: "the buffer's card", trigger: ".o_kanban_record:contains('Sieć Sklepów')" },
        { content: "sales by status, in Polish", trigger: ".o_kanban_record:contains('Faktury sprzedaży według statusu')" },
        { content: "open the purchases", trigger: ".o_kanban_record button:contains('Faktury zakupu')", run: "click" },
        { content: "the purchases list", trigger: ".o_list_view .o_data_row .o_data_cell:contains('FV/ZAKUP/1')", run: "click" },
        { content: "the purchase invoice", trigger: ".o_form_view:contains('FV/ZAKUP/1')" },
        { content: "its KSeF number", trigger: ".o_form_view .o_field_widget[name=ksef_number]:contains('-')" },
        {
            content: "no sending statusbar for a purchase",
            trigger: ".o_form_view",
            run: absent(".o_statusbar_status", "the sales statusbar"),
        },
        { content: "the history, in Polish", trigger: ".o_notebook a.nav-link:contains('Historia')", run: "click" },
    ],
});

registry.category("web_tour.tours").add("ksefnet_catalog_tree", {
    url: "/odoo/action-ksefnet_buffer.action_ksefnet_purchases",
    steps: () => [
        { content: "the catalog tree beside the list", trigger: ".o_search_panel .o_search_panel_label_title:contains('Koszty')" },
        { content: "open the parent catalog", trigger: ".o_search_panel_category_value .o_search_panel_label_title:contains('Koszty')", run: "click" },
        { content: "its sub-catalog's invoice is there", trigger: ".o_list_view .o_data_row .o_data_cell:contains('FV/ZAKUP/1')" },
        {
            content: "and nothing from another catalog",
            trigger: ".o_list_view .o_data_row",
            run: () => {
                if (document.querySelectorAll(".o_list_view .o_data_row").length !== 1) {
                    throw new Error("the parent catalog should show its sub-catalog's one invoice");
                }
            },
        },
        { content: "open it", trigger: ".o_list_view .o_data_row .o_data_cell:contains('FV/ZAKUP/1')", run: "click" },
        { content: "the invoice, its seller in Polish", trigger: ".o_form_view:contains('Sprzedawca')" },
    ],
});

registry.category("web_tour.tours").add("ksefnet_rejected_sale", {
    url: "/odoo/action-ksefnet_buffer.action_ksefnet_sales",
    steps: () => [
        { content: "the rejected sale", trigger: ".o_list_view .o_data_row .o_data_cell:contains('FV/ODRZ/1')", run: "click" },
        { content: "the reason", trigger: ".o_form_view .alert-warning:contains('KSeF odrzucił tę fakturę')" },
        {
            content: "no Retry of the same XML",
            trigger: ".o_form_view",
            run: absent(".o_form_statusbar button[name=action_retry]:not(.d-none)", "Retry"),
        },
        { content: "correct it", trigger: ".o_form_statusbar button[name=action_open_correction]", run: "click" },
        { content: "the correction form", trigger: ".modal .o_form_view:contains('Powód odrzucenia przez KSeF')" },
        { content: "cancel", trigger: ".modal .modal-footer button.btn-secondary", run: "click" },
    ],
});

registry.category("web_tour.tours").add("ksefnet_user_role", {
    url: "/odoo/action-base.action_res_users",
    steps: () => [
        { content: "a user", trigger: ".o_list_view .o_data_row .o_data_cell:contains('Księgowa')", run: "click" },
        { content: "the KSeF page", trigger: ".o_notebook a.nav-link:contains('KSeF')", run: "click" },
        { content: "the role as one choice", trigger: ".o_field_widget[name=ksefnet_role]:contains('Administrator KSeF')" },
        { content: "the shops", trigger: ".o_form_view:contains('Sklepy KSeF')" },
    ],
});
