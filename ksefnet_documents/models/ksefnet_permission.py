from odoo import fields, models
from odoo.osv import expression


class KsefnetPermission(models.Model):
    """Access of users or user groups to chosen catalogs (with their sub-catalogs) and document types.

    Permissions -> Add / Edit. Read-only shows the documents; handling also allows retrying, reclassifying
    and tagging them. Enforced by record rules (see res.users.ksefnet_document_domain).
    """

    _name = "ksefnet.permission"
    _inherit = ["ksefnet.cache.source"]  # record rules are cached: a change must be seen at once
    _description = "KSeF document permission"
    _order = "name"

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    user_ids = fields.Many2many("res.users", string="Users")
    group_ids = fields.Many2many("res.groups", string="User groups")
    buffer_ids = fields.Many2many("ksefnet.buffer", string="Buffers", help="Empty: every buffer.")
    catalog_ids = fields.Many2many(
        "ksefnet.catalog", string="Catalogs", help="With their sub-catalogs. Empty: every catalog."
    )
    include_unassigned = fields.Boolean(
        "Unassigned documents", help="Also the documents that no rule put into a catalog."
    )
    direction = fields.Selection(
        [("all", "Sales and purchases"), ("sales", "Sales"), ("purchase", "Purchases")],
        default="all",
        required=True,
    )
    invoice_kind_ids = fields.Many2many(
        "ksefnet.invoice.kind", string="Invoice kinds", help="Empty: every kind."
    )
    access = fields.Selection(
        [("read", "Read only"), ("handle", "Read and handle")],
        default="read",
        required=True,
        help="Handling: retry, reclassify and tag documents.",
    )

    def _document_domain(self):
        self.ensure_one()
        parts = []
        if self.buffer_ids:
            parts.append([("buffer_id", "in", self.buffer_ids.ids)])
        if self.catalog_ids or self.include_unassigned:
            catalogs = []
            if self.catalog_ids:
                catalogs.append([("catalog_id", "child_of", self.catalog_ids.ids)])
            if self.include_unassigned:
                catalogs.append([("catalog_id", "=", False)])
            parts.append(expression.OR(catalogs))
        if self.direction != "all":
            parts.append([("direction", "=", self.direction)])
        if self.invoice_kind_ids:
            parts.append([("invoice_kind", "in", self.invoice_kind_ids.mapped("code"))])
        return expression.AND(parts) if parts else []
