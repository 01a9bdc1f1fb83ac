{
    "name": "KSeFNet HiperMarket",
    "summary": "HiperMarket integration over XML-RPC: submit sales invoices, follow their KSeF status, read KSeF numbers",
    "version": "18.0.0.2.0",
    "category": "Accounting/Localizations/EDI",
    "website": "https://github.com/ksefnet/ksefnet-odoo",
    "author": "KSeFNet",
    "license": "LGPL-3",
    "depends": ["ksefnet_buffer", "ksefnet_documents"],
    "data": [
        "security/ksefnet_hipermarket_security.xml",
        "security/ir.model.access.csv",
        "views/ksefnet_hipermarket_views.xml",
    ],
    "installable": True,
}
