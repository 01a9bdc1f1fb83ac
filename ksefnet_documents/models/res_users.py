from odoo import models
from odoo.osv import expression


class ResUsers(models.Model):
    _inherit = "res.users"

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
