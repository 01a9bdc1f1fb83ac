{
    "name": "KSeFNet Documents",
    "summary": "Catalogs, tags, shops, classification rules and per-shop permissions for KSeF documents",
    "version": "18.0.0.1.0",
    "category": "Accounting/Localizations/EDI",
    "website": "https://github.com/ksefnet/ksefnet-odoo",
    "author": "KSeFNet",
    "license": "LGPL-3",
    "depends": ["ksefnet_buffer"],
    "data": [],
    "installable": True,
}
