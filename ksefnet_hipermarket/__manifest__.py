{
    "name": "KSeFNet HiperMarket",
    "summary": "HiperMarket ERP integration over XML-RPC: submit invoices, read KSeF numbers back",
    "version": "18.0.0.1.0",
    "category": "Accounting/Localizations/EDI",
    "website": "https://github.com/ksefnet/ksefnet-odoo",
    "author": "KSeFNet",
    "license": "LGPL-3",
    "depends": ["ksefnet_buffer", "ksefnet_documents"],
    "data": [],
    "installable": True,
}
