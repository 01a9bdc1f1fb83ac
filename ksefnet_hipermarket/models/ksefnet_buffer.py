from odoo import models


class KsefnetBuffer(models.Model):
    # the API finds a buffer by its NIP from the registry's cache (ksefnet.hipermarket.api._buffer_id_of)
    _name = "ksefnet.buffer"
    _inherit = ["ksefnet.buffer", "ksefnet.cache.source"]
    _cache_fields = ("nip", "active")
