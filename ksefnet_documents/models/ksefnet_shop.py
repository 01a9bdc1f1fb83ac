import re

from odoo import _, api, fields, models

from ksefnet_core.matching import ShopAddress


def _lines(text):
    """Non-empty lines (or comma-separated items) of a free-text field."""
    return [item.strip() for item in re.split(r"[\n,;]", text or "") if item.strip()]


class KsefnetShop(models.Model):
    """A shop of the chain: how invoices name it (address, GLN, delivery ids) and who works there.

    Each shop has its own user group: a user in it sees the shop's documents (see ksefnet.permission).
    """

    _name = "ksefnet.shop"
    _description = "Shop"
    _order = "code, name"

    name = fields.Char(required=True)
    code = fields.Char(required=True, help="The shop's code in HiperMarket.")
    buffer_id = fields.Many2one("ksefnet.buffer", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="buffer_id.company_id", store=True, index=True)
    active = fields.Boolean(default=True)
    street = fields.Char(help="Street and building number, e.g. ul. Handlowa 7 lok. 2")
    postal_code = fields.Char()
    city = fields.Char()
    address_lines = fields.Text(
        "Address as printed",
        help="Free address lines exactly as suppliers print them on invoices, one per line.",
    )
    gln_numbers = fields.Text("GLN numbers", help="The shop's GLN numbers, one per line.")
    delivery_patterns = fields.Text(
        "Delivery identifiers",
        help="Patterns of WZ delivery-note numbers, order numbers or customer numbers of this shop, one per "
        "line: a prefix with * (WZ/12/*), an exact value, or a regular expression after re:",
    )
    group_id = fields.Many2one("res.groups", "User group", readonly=True, ondelete="restrict", copy=False)
    user_ids = fields.Many2many(related="group_id.users", readonly=False, string="Users")

    _sql_constraints = [("code_unique", "UNIQUE(buffer_id, code)", "Shop codes are unique per buffer.")]

    @api.model_create_multi
    def create(self, vals_list):
        shops = super().create(vals_list)
        # a category of their own: the KSeF category stays a chain (user < administrator), which the
        # user form shows as one choice without developer mode
        category = self.env.ref("ksefnet_documents.module_category_ksefnet_shops")
        for shop in shops:
            shop.group_id = (
                self.env["res.groups"]
                .sudo()
                .create(
                    {
                        "name": _("Shop %(code)s: %(name)s", code=shop.code, name=shop.name),
                        "category_id": category.id,
                        "implied_ids": [(4, self.env.ref("ksefnet_buffer.group_ksef_user").id)],
                    }
                )
            )
        return shops

    def write(self, vals):
        result = super().write(vals)
        if {"name", "code"} & set(vals):
            for shop in self.filtered("group_id"):
                shop.group_id.sudo().name = _("Shop %(code)s: %(name)s", code=shop.code, name=shop.name)
        if "user_ids" in vals or "active" in vals:
            self.env.registry.clear_cache()  # record rules depend on shop membership
        return result

    def unlink(self):
        groups = self.group_id
        result = super().unlink()
        groups.sudo().unlink()
        self.env.registry.clear_cache()
        return result

    # -- matching -------------------------------------------------------------------------------------------
    def _address(self):
        self.ensure_one()
        return ShopAddress(
            street=self.street or "",
            postal_code=self.postal_code or "",
            city=self.city or "",
            lines=tuple(_lines(self.address_lines and self.address_lines.replace(",", " "))),
        )

    def _glns(self):
        return set(_lines(self.gln_numbers))

    def _delivery_patterns(self):
        return _lines(self.delivery_patterns)
