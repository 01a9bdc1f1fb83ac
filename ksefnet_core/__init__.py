"""KSeFNet protocol core: KSeF API 2.0 client, crypto, XAdES, FA(3) toolkit, QR codes and a local simulator.

This package is framework-free: it never imports Odoo, so it can be used and tested anywhere.
"""

__version__ = "0.1.0"
