from odoo import api, fields, models
from odoo.tools import ormcache


class ResUsers(models.Model):
    _inherit = "res.users"

    ksefnet_hm_buffer_ids = fields.Many2many(
        "ksefnet.buffer",
        "ksefnet_hm_user_buffer_rel",
        "user_id",
        "buffer_id",
        string="HiperMarket buffers",
        help="The buffers this HiperMarket integration user may submit to and read from.",
    )
    ksefnet_hm_shop_codes = fields.Char(
        "HiperMarket shops",
        help="Shop codes (comma-separated) this integration user may submit for; empty: every shop.",
    )

    def write(self, vals):
        result = super().write(vals)
        if {"ksefnet_hm_buffer_ids", "ksefnet_hm_shop_codes"} & set(vals):
            # Odoo caches each user's record rules (ir.rule), and these decide the integration user's: a
            # buffer or shop taken away must be gone from its next call, not from the next restart (and so
            # must the copy of _ksefnet_hm_rights)
            self.env.registry.clear_cache()
        return result

    @api.model
    @ormcache("uid")
    def _ksefnet_hm_rights(self, uid):
        """(ids of the HiperMarket buffers, HiperMarket shop codes) of user ``uid``, which every call of the
        API checks: kept in the registry's cache (cleared by :meth:`write` when they change), not read from
        the user's row and its buffers' links at every call."""
        user = self.sudo().with_context(active_test=False).browse(uid)  # its links as stored, whatever the
        # caller's context (an archived buffer is refused by its NIP's lookup, not here)
        return frozenset(user.ksefnet_hm_buffer_ids.ids), frozenset(user._ksefnet_hm_shops())

    def _ksefnet_hm_shops(self):
        return {c.strip() for c in (self.ksefnet_hm_shop_codes or "").split(",") if c.strip()}

    def ksefnet_hm_document_domain(self):
        """The documents this integration user may read through the API: HiperMarket's documents in its
        buffers, and of its shops when it is restricted to some (used by the record rule)."""
        self.ensure_one()
        user = self.sudo()
        domain = [("buffer_id", "in", user.ksefnet_hm_buffer_ids.ids), ("source", "=", "HiperMarket")]
        shops = user._ksefnet_hm_shops()
        if shops:
            domain.append(("shop_code", "in", sorted(shops)))
        return domain
