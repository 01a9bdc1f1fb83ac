import re

from odoo import api, fields, models
from odoo.addons.ksefnet_buffer.models.ksefnet_message import render
from odoo.tools.translate import LazyTranslate

from ksefnet_core.matching import ShopAddress

_lt = LazyTranslate(__name__)
GROUP_NAME = _lt("Shop %(code)s: %(name)s")


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
    buffer_id = fields.Many2one(
        "ksefnet.buffer",
        required=True,
        ondelete="cascade",
        index=True,
        default=lambda self: _the_only_buffer(self.env),
    )
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
                .with_context(lang="en_US")
                .create(
                    {
                        "name": shop._group_names()["en_US"],
                        "category_id": category.id,
                        "implied_ids": [(4, self.env.ref("ksefnet_buffer.group_ksef_user").id)],
                    }
                )
            )
        shops._name_groups()
        self.env["ksefnet.document"]._forget_compiled_rules()  # the rules know the buffer's shops
        return shops

    def write(self, vals):
        result = super().write(vals)
        if {"name", "code"} & set(vals):
            self._name_groups()
        # the record rules depend on shop membership, the compiled classification rules on every shop's code,
        # address, GLNs and delivery patterns
        self.env["ksefnet.document"]._forget_compiled_rules()
        return result

    def unlink(self):
        groups = self.group_id
        result = super().unlink()
        groups.sudo().unlink()
        self.env["ksefnet.document"]._forget_compiled_rules()  # and the record rules
        return result

    def _group_names(self, langs=None):
        """{language: the shop's group name in it}, for ``langs`` (default: every installed language)."""
        self.ensure_one()
        langs = langs or [code for code, _name in self.env["res.lang"].get_installed()]
        part = type(GROUP_NAME)(
            GROUP_NAME._source, code=self.code, name=self.name, _module=GROUP_NAME._module
        )
        return {lang: render(self.env, part, lang) for lang in {"en_US", *langs}}

    def _name_groups(self, langs=None):
        """Name the shops' groups in every installed language (res.groups.name is translatable): a Polish
        administrator reads "Sklep SKLEP02: ...", an English one "Shop SKLEP02: ..."."""
        for shop in self.sudo().with_context(active_test=False).filtered("group_id"):
            shop.group_id.update_field_translations("name", shop._group_names(langs))

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


def _the_only_buffer(env):
    """The buffer to preselect: the only one there is (none when there are several)."""
    buffers = env["ksefnet.buffer"].search([], limit=2)
    return buffers.id if len(buffers) == 1 else False
