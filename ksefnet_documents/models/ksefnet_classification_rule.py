"""Classification rules: ordered, per buffer, conditions combined with AND, then actions.

A rule matches a document when every condition it sets holds. Matching rules apply their actions in order
(a later rule may change the catalog or shop again; tags add up) until a rule with "Stop" matches. The
rules are read once per run into ksefnet_core.rules' plain objects (:meth:`KsefnetClassificationRule._compile`),
whose ``evaluate`` decides one document from the facts read once from it (``ksefnet_core.rules.facts_of``);
``ksefnet.document._classify`` and the rule's Test button both use them.
"""

from odoo import _, fields, models
from odoo.addons.ksefnet_buffer.models.ksefnet_message import Label
from odoo.tools.translate import LazyTranslate

from ksefnet_core import rules as engine

from .ksefnet_shop import _lines, _the_only_buffer

_lt = LazyTranslate(__name__)

#: what a compiled rule is made of (see KsefnetClassificationRule._compile)
COMPILED_FIELDS = (
    "name", "direction", "invoice_kind_ids", "seller_nips", "amount_min", "amount_max", "validity",
    "text_field", "text_value", "address_match", "address_shop_id", "gln_match", "gln_values",
    "delivery_match", "delivery_patterns", "catalog_id", "shop_action", "shop_id", "tag_ids", "stop",
)  # fmt: skip

#: ksefnet_core.rules.TEXT_FIELDS, labelled
_TEXT_LABELS = {
    "invoice_number": "Invoice number",
    "seller_name": "Seller name",
    "buyer_name": "Buyer name",
    "seller_nip": "Seller NIP",
    "buyer_nip": "Buyer NIP",
    "buyer_identifier": "Buyer identifier",
    "shop_code": "Shop code",
    "source": "Source",
}
TEXT_FIELDS = [(name, _TEXT_LABELS[name]) for name in engine.TEXT_FIELDS]


class KsefnetClassificationRule(models.Model):
    _name = "ksefnet.classification.rule"
    # the compiled rules are cached (ksefnet.document._compiled_rules_of): every change is seen at once
    _inherit = ["ksefnet.cache.source"]
    _description = "KSeF classification rule"
    _order = "buffer_id, sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    buffer_id = fields.Many2one(
        "ksefnet.buffer",
        required=True,
        ondelete="cascade",
        index=True,
        default=lambda self: _the_only_buffer(self.env),
    )
    company_id = fields.Many2one(related="buffer_id.company_id", store=True, index=True)
    # -- conditions (all that are set must hold) ------------------------------------------------------------
    direction = fields.Selection(
        [("any", "Sales and purchases"), ("sales", "Sales"), ("purchase", "Purchases")],
        default="any",
        required=True,
    )
    invoice_kind_ids = fields.Many2many(
        "ksefnet.invoice.kind", string="Invoice kinds", help="Empty: any kind."
    )
    seller_nips = fields.Text("Seller NIPs", help="The seller's NIP is one of these (one per line).")
    address_match = fields.Selection(
        [("none", "Not checked"), ("any_shop", "Any shop's address"), ("shop", "This shop's address")],
        "Buyer or delivery address",
        default="none",
        required=True,
    )
    address_shop_id = fields.Many2one("ksefnet.shop", "Address of shop")
    gln_match = fields.Selection(
        [("none", "Not checked"), ("any_shop", "Any shop's GLN"), ("value", "One of these GLNs")],
        "GLN",
        default="none",
        required=True,
    )
    gln_values = fields.Text("GLN numbers")
    delivery_match = fields.Selection(
        [("none", "Not checked"), ("any_shop", "Any shop's identifiers"), ("pattern", "These patterns")],
        "Delivery identifier",
        default="none",
        required=True,
        help="WZ numbers, order numbers and customer numbers of the invoice.",
    )
    delivery_patterns = fields.Text(help="One per line: WZ/12/*, an exact value, or re:<regular expression>")
    amount_min = fields.Float("Gross from", digits=(16, 2))
    amount_max = fields.Float("Gross up to", digits=(16, 2), help="0: no upper limit.")
    validity = fields.Selection(
        [
            ("any", "Any"),
            ("valid", "Addressed to us"),
            ("invalid", "Not addressed to us"),
            ("review", "To review"),
        ],
        "Validity",
        default="any",
        required=True,
    )
    text_field = fields.Selection(TEXT_FIELDS, "Text in field")
    text_value = fields.Char("Contains")
    # -- actions -------------------------------------------------------------------------------------------
    catalog_id = fields.Many2one("ksefnet.catalog", "Put into catalog")
    shop_action = fields.Selection(
        [("none", "Leave"), ("matched", "The shop found by the conditions"), ("set", "This shop")],
        "Set shop",
        default="none",
        required=True,
    )
    shop_id = fields.Many2one("ksefnet.shop", "Shop")
    tag_ids = fields.Many2many("ksefnet.tag", string="Add tags")
    stop = fields.Boolean("Stop here", help="Do not evaluate the rules after this one when it matches.")

    # -- evaluation ----------------------------------------------------------------------------------------
    def _compile(self, shops):
        """Plain-Python form of the rules (read from the database once per classification run, and once per
        call of the HiperMarket API). Their columns are read at once and taken from the cache as plain values
        (ids for relations): through a record attribute per rule and field, 200 rules took 12-14 ms."""
        compiled_shops = [
            engine.Shop(s.id, s.code, s._address(), frozenset(s._glns()), tuple(s._delivery_patterns()))
            for s in shops
        ]
        by_id = {s.shop_id: s for s in compiled_shops}
        self.fetch(COMPILED_FIELDS)
        codes = {kind.id: kind.code for kind in self.invoice_kind_ids}  # every rule's kinds, read at once
        compiled = []
        for rule in self._plain_rows(COMPILED_FIELDS):
            address_shops = None
            if rule["address_match"] == "shop":
                shop_id = rule["address_shop_id"]
                address_shops = [by_id[shop_id]] if shop_id in by_id else []
            elif rule["address_match"] != "none":
                address_shops = compiled_shops
            compiled.append(
                engine.Rule(
                    rule_id=rule["id"],
                    name=rule["name"],
                    direction=rule["direction"],
                    kinds=frozenset(codes[kind_id] for kind_id in rule["invoice_kind_ids"]),
                    seller_nips=frozenset(_lines(rule["seller_nips"])),
                    amount_min=rule["amount_min"],
                    amount_max=rule["amount_max"],
                    validity=rule["validity"],
                    text_field=rule["text_field"] if rule["text_value"] else False,
                    text_value=(rule["text_value"] or "").lower(),
                    address_shops=address_shops,
                    gln_match=rule["gln_match"],
                    gln_values=frozenset(_lines(rule["gln_values"])),
                    delivery_match=rule["delivery_match"],
                    delivery_patterns=tuple(_lines(rule["delivery_patterns"])),
                    shops=compiled_shops,
                    catalog_id=rule["catalog_id"],
                    shop_action=rule["shop_action"],
                    shop_id=rule["shop_id"],
                    tag_ids=tuple(rule["tag_ids"]),
                    stop=rule["stop"],
                )
            )
        return compiled

    def _plain_rows(self, names):
        """{field: value} of each rule, in order, from the cache (after :meth:`fetch`; a value missing from
        it is an error, not a silent gap): False where the ORM gives False, ids for a many2one (False when
        empty), tuples of ids for a many2many."""
        columns = {"id": list(self._ids)}
        for name in names:
            field = self._fields[name]
            values = list(self.env.cache.get_until_miss(self, field))
            if field.type == "many2many":
                columns[name] = [tuple(v or ()) for v in values]
            else:
                columns[name] = [False if v is None else v for v in values]
        return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]

    def _reason_part(self, reason):
        """A matched condition, as a message part (shown in the reader's language)."""
        key, params = reason
        parts = {
            "direction": lambda: _lt(
                "direction %(d)s", d=Label("ksefnet.document", "direction", params["d"])
            ),
            "kind": lambda: _lt("kind %(k)s", k=Label("ksefnet.document", "invoice_kind", params["k"])),
            "seller": lambda: _lt("seller NIP %(nip)s", **params),
            "gross": lambda: _lt("gross %(amount)s", **params),
            "validity": lambda: _lt("validity %(v)s", v=Label("ksefnet.document", "validity", params["v"])),
            "text": lambda: _lt(
                "%(field)s contains %(text)s",
                field=Label("ksefnet.classification.rule", "text_field", params["field"]),
                text=params["text"],
            ),
            "address": lambda: _lt("address of shop %(code)s", **params),
            "gln": lambda: _lt("GLN %(gln)s", **params),
            "delivery": lambda: _lt("delivery id %(id)s", **params),
        }
        return parts[key]()

    # -- user actions ----------------------------------------------------------------------------------------
    def action_test_rule(self):
        """Show which existing documents of the buffer this rule would match (nothing is changed)."""
        self.ensure_one()
        docs = self.env["ksefnet.document"].search(
            [("buffer_id", "=", self.buffer_id.id)], limit=5000, order="id desc"
        )
        shops = self.env["ksefnet.shop"].search([("buffer_id", "=", self.buffer_id.id)])
        (rule,) = self._compile(shops)  # once, not per document
        matched = [
            d.id
            for d in docs
            if rule.evaluate(engine.facts_of(d, d._parsed_invoice(), d.validity or "review"))[0]
        ]
        return {
            "type": "ir.actions.act_window",
            "name": _("Documents matched by %(rule)s", rule=self.name),
            "res_model": "ksefnet.document",
            "view_mode": "list,form",
            "domain": [("id", "in", matched)],
            "context": {"create": False},
        }

    def action_apply_to_existing(self):
        """Reclassify every document of the rule's buffers with the current rules."""
        self.check_access("write")  # the rules' administrators
        docs = self.env["ksefnet.document"].search([("buffer_id", "in", self.buffer_id.ids)])
        return docs.action_reclassify()
