from odoo import api, fields, models
from odoo.osv import expression


class ResUsers(models.Model):
    _inherit = "res.users"

    # the KSeF page of the user form: the shops the user works in, and their permissions
    ksefnet_shop_ids = fields.Many2many(
        "ksefnet.shop",
        string="KSeF shops",
        compute="_compute_ksefnet_shop_ids",
        inverse="_inverse_ksefnet_shop_ids",
        help="The user handles the documents of these shops (through each shop's user group).",
    )
    ksefnet_permission_ids = fields.Many2many(
        "ksefnet.permission",
        "ksefnet_permission_res_users_rel",
        "res_users_id",
        "ksefnet_permission_id",
        string="KSeF permissions",
    )

    def write(self, vals):
        result = super().write(vals)
        if {"ksefnet_permission_ids", "ksefnet_shop_ids"} & set(vals):
            self.env.registry.clear_cache()  # the record rules depend on them
        return result

    @api.depends("groups_id")
    def _compute_ksefnet_shop_ids(self):
        shops = self.env["ksefnet.shop"].sudo().search([("group_id", "!=", False)])
        for person in self:
            groups = person.sudo().groups_id
            person.ksefnet_shop_ids = shops.filtered(lambda s, g=groups: s.group_id in g)

    def _inverse_ksefnet_shop_ids(self):
        shops = self.env["ksefnet.shop"].sudo().search([("group_id", "!=", False)])
        for person in self:
            for shop in shops:
                member = person in shop.group_id.users
                wanted = shop in person.ksefnet_shop_ids
                if member != wanted:
                    shop.user_ids = [(4 if wanted else 3, person.id)]

    def ksefnet_document_domain(self, mode="read"):
        """The KSeF documents this user may see (``read``) or handle (``handle``), as a domain.

        Used by the record rules of ``ksefnet.document`` (so it holds in lists, search, read_group, exports,
        XML-RPC and attachments): the union of the user's permissions (their own and their groups') and of
        the shops whose user group they belong to. Administrators have their own unrestricted rule.
        """
        self.ensure_one()
        user = self.sudo()
        Permission = self.env["ksefnet.permission"].sudo()
        permissions = Permission.search(
            ["|", ("user_ids", "in", user.ids), ("group_ids", "in", user.groups_id.ids)]
        )
        if mode == "handle":
            permissions = permissions.filtered(lambda p: p.access == "handle")
        parts = [p._document_domain() for p in permissions]
        shops = self.env["ksefnet.shop"].sudo().search([("group_id", "in", user.groups_id.ids)])
        if shops:
            parts.append([("shop_id", "in", shops.ids)])
        return expression.OR(parts) if parts else [("id", "=", 0)]
