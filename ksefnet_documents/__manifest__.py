{
    "name": "KSeFNet Documents",
    "summary": "Catalogs, tags, shops, classification rules, validity check and per-shop permissions for KSeF documents",
    "version": "18.0.0.7.0",
    "category": "Accounting/Localizations/EDI",
    "website": "https://github.com/ksefnet/ksefnet-odoo",
    "author": "KSeFNet",
    "license": "LGPL-3",
    "depends": ["ksefnet_buffer"],
    "data": [
        "security/ir.model.access.csv",
        "security/ksefnet_documents_security.xml",
        "data/ksefnet_invoice_kind_data.xml",
        "data/ir_cron_data.xml",
        "views/ksefnet_document_views.xml",
        "views/ksefnet_configuration_views.xml",
    ],
    "assets": {
        "web.assets_tests": ["ksefnet_documents/static/tests/**/*"],
    },
    "installable": True,
}
