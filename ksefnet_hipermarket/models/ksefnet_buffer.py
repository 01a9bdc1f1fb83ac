from odoo import api, models


class KsefnetBuffer(models.Model):
    _inherit = "ksefnet.buffer"

    # the API finds a buffer by its NIP from the registry's cache (ksefnet.hipermarket.api._buffer_id_of)
    @api.model_create_multi
    def create(self, vals_list):
        buffers = super().create(vals_list)
        self.env.registry.clear_cache()
        return buffers

    def write(self, vals):
        result = super().write(vals)
        if {"nip", "active"} & set(vals):
            self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result
