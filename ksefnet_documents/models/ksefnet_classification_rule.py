"""Classification rules: ordered, per buffer, conditions combined with AND, then actions.

A rule matches a document when every condition it sets holds. Matching rules apply their actions in order
(a later rule may change the catalog or shop again; tags add up) until a rule with "Stop" matches. The
evaluation itself lives in :meth:`KsefnetClassificationRule._evaluate`; the documents call it in
``ksefnet.document._classify``.
"""

from odoo import _, fields, models

from ksefnet_core.matching import (
    any_pattern_matches,
    delivery_identifiers,
    invoice_addresses,
    invoice_glns,
)

from .ksefnet_shop import _lines

TEXT_FIELDS = [
    ("invoice_number", "Invoice number"),
    ("seller_name", "Seller name"),
    ("buyer_name", "Buyer name"),
    ("seller_nip", "Seller NIP"),
    ("buyer_nip", "Buyer NIP"),
    ("buyer_identifier", "Buyer identifier"),
    ("shop_code", "Shop code"),
    ("source", "Source"),
]


class KsefnetClassificationRule(models.Model):
    _name = "ksefnet.classification.rule"
    _description = "KSeF classification rule"
    _order = "buffer_id, sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    buffer_id = fields.Many2one("ksefnet.buffer", required=True, ondelete="cascade", index=True)
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
    def _evaluate(self, doc, invoice, validity, shops):
        """(matched, reasons, shop found) for one document. ``invoice`` is the parsed FA(3) (or None)."""
        self.ensure_one()
        reasons, found_shop = [], None
        if self.direction != "any":
            if doc.direction != self.direction:
                return False, [], None
            reasons.append(_("direction %(d)s", d=doc.direction))
        if self.invoice_kind_ids:
            if doc.invoice_kind not in self.invoice_kind_ids.mapped("code"):
                return False, [], None
            reasons.append(_("kind %(k)s", k=doc.invoice_kind))
        if self.seller_nips:
            if (doc.seller_nip or "") not in set(_lines(self.seller_nips)):
                return False, [], None
            reasons.append(_("seller NIP %(nip)s", nip=doc.seller_nip))
        if self.amount_min and doc.amount_gross < self.amount_min:
            return False, [], None
        if self.amount_max and doc.amount_gross > self.amount_max:
            return False, [], None
        if self.amount_min or self.amount_max:
            reasons.append(_("gross %(amount)s", amount=doc.amount_gross))
        if self.validity != "any":
            if validity != self.validity:
                return False, [], None
            reasons.append(_("validity %(v)s", v=validity))
        if self.text_field and self.text_value:
            if self.text_value.lower() not in (doc[self.text_field] or "").lower():
                return False, [], None
            reasons.append(_("%(field)s contains %(text)s", field=self.text_field, text=self.text_value))
        needs_invoice = any(m != "none" for m in (self.address_match, self.gln_match, self.delivery_match))
        if needs_invoice and invoice is None:
            return False, [], None
        if self.address_match != "none":
            candidates = self.address_shop_id if self.address_match == "shop" else shops
            addresses = invoice_addresses(invoice)
            shop = next((s for s in candidates if any(s._address().matches(a) for a in addresses)), None)
            if not shop:
                return False, [], None
            found_shop = shop
            reasons.append(_("address of shop %(code)s", code=shop.code))
        if self.gln_match != "none":
            glns = invoice_glns(invoice)
            if self.gln_match == "value":
                hit = next((g for g in glns if g in set(_lines(self.gln_values))), None)
                if not hit:
                    return False, [], None
            else:
                shop = next((s for s in shops if s._glns() & set(glns)), None)
                if not shop:
                    return False, [], None
                found_shop = found_shop or shop
                hit = next(iter(shop._glns() & set(glns)))
            reasons.append(_("GLN %(gln)s", gln=hit))
        if self.delivery_match != "none":
            identifiers = delivery_identifiers(invoice)
            if self.delivery_match == "pattern":
                hit = any_pattern_matches(_lines(self.delivery_patterns), identifiers)
            else:
                hit = None
                for shop in shops:
                    hit = any_pattern_matches(shop._delivery_patterns(), identifiers)
                    if hit:
                        found_shop = found_shop or shop
                        break
            if not hit:
                return False, [], None
            reasons.append(_("delivery id %(id)s", id=hit))
        return True, reasons, found_shop

    # -- user actions ----------------------------------------------------------------------------------------
    def action_test_rule(self):
        """Show which existing documents of the buffer this rule would match (nothing is changed)."""
        self.ensure_one()
        docs = self.env["ksefnet.document"].search(
            [("buffer_id", "=", self.buffer_id.id)], limit=5000, order="id desc"
        )
        shops = self.env["ksefnet.shop"].search([("buffer_id", "=", self.buffer_id.id)])
        matched = [
            d.id for d in docs if self._evaluate(d, d._parsed_invoice(), d.validity or "review", shops)[0]
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
        docs = self.env["ksefnet.document"].search([("buffer_id", "in", self.buffer_id.ids)])
        docs.action_reclassify()
        return True
