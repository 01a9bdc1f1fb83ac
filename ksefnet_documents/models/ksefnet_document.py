"""Documents get a catalog, a shop, tags and a validity result, from the classification rules."""

import logging

from odoo import _, fields, models

from ksefnet_core import fa3
from ksefnet_core.matching import check_addressed_to

from .ksefnet_classification_rule import _facts

_logger = logging.getLogger(__name__)

VALIDITY = [("valid", "Addressed to us"), ("invalid", "Not addressed to us"), ("review", "To review")]


class KsefnetDocument(models.Model):
    _inherit = "ksefnet.document"

    catalog_id = fields.Many2one("ksefnet.catalog", "Catalog", index=True)
    shop_id = fields.Many2one("ksefnet.shop", "Shop", index=True)
    tag_ids = fields.Many2many("ksefnet.tag", string="Tags")
    validity = fields.Selection(VALIDITY, readonly=True, index=True)
    validity_reasons = fields.Text("Validity reasons", readonly=True)
    rule_ids = fields.Many2many("ksefnet.classification.rule", string="Matched rules", readonly=True)
    classification_note = fields.Text("Why", readonly=True)
    classified_at = fields.Datetime(readonly=True)

    def _on_arrival(self, invoices=None):
        result = super()._on_arrival(invoices)
        self.sudo()._classify(invoices)
        return result

    def _parsed_invoice(self):
        self.ensure_one()
        xml = self.sudo().xml_attachment_id.raw
        if not xml:
            return None
        try:
            return fa3.parse(xml)
        except fa3.InvoiceValidationError:
            return None

    def _validity_of(self, invoice):
        """Validity for one document: sales are ours by definition; purchases are checked."""
        self.ensure_one()
        buffer = self.buffer_id
        if self.direction == "sales" or self.own_issued:
            return "valid", _("The company is the seller.")
        if invoice is None:
            return "review", _("The invoice XML cannot be read.")
        checked = check_addressed_to(
            invoice,
            buffer.nip,
            company_name=buffer._company_names(),
            accepted_roles=buffer._accepted_roles(),
        )
        return checked.result, "\n".join(checked.reasons)

    def _classify(self, invoices=None):
        """Run the validity check and the buffer's rules on these documents and store the result.
        ``invoices``: {document id: parsed invoice} already at hand (else each XML is parsed here)."""
        invoices = invoices or {}
        Rule = self.env["ksefnet.classification.rule"].sudo()
        Shop = self.env["ksefnet.shop"].sudo()
        now = fields.Datetime.now()
        always = _("always")  # a rule without conditions
        for buffer in self.buffer_id:
            rules = Rule.search([("buffer_id", "=", buffer.id)])._compile(
                shops := Shop.search([("buffer_id", "=", buffer.id)])
            )
            shop_by_code = {s.code: s.id for s in shops}
            for doc in self.filtered(lambda d, b=buffer: d.buffer_id == b):
                invoice = invoices.get(doc.id) or doc._parsed_invoice()
                validity, reasons = doc._validity_of(invoice)
                facts = _facts(doc, invoice, validity)
                values = {
                    "validity": validity,
                    "validity_reasons": reasons,
                    "catalog_id": False,
                    "shop_id": shop_by_code.get(doc.shop_code, False),
                    "classified_at": now,
                }
                tags, matched, notes = set(), [], []
                for rule in rules:
                    ok, why, found_shop = rule.evaluate(facts)
                    if not ok:
                        continue
                    matched.append(rule.rule_id)
                    because = ", ".join(Rule._reason_text(w) for w in why) or always
                    notes.append(f"{rule.name}: {because}")
                    if rule.catalog_id:
                        values["catalog_id"] = rule.catalog_id
                    if rule.shop_action == "set" and rule.shop_id:
                        values["shop_id"] = rule.shop_id
                    elif rule.shop_action == "matched" and found_shop:
                        values["shop_id"] = found_shop
                    tags.update(rule.tag_ids)
                    if rule.stop:
                        break
                values["rule_ids"] = [(6, 0, matched)]
                values["classification_note"] = "\n".join(notes) or _("No rule matched: Unassigned.")
                if tags:
                    values["tag_ids"] = [(4, t) for t in sorted(tags)]
                doc.write(values)
        return True

    def _user_writable_fields(self):
        # filing by hand: tags, and the catalog and shop (checked in write: the user must be able to handle
        # the document where it goes, not only where it was)
        return super()._user_writable_fields() | {"tag_ids", "catalog_id", "shop_id"}

    def write(self, vals):
        result = super().write(vals)
        if not self.env.su and {"catalog_id", "shop_id"} & set(vals):
            # the record rules checked the write where the documents were; check where they are now
            self.invalidate_recordset()
            self.check_access("write")
        return result

    def action_reclassify(self):
        """Reclassify the selected documents with the current rules (needs the right to handle them)."""
        self.check_access("write")
        self.sudo()._classify()
        filed = len(self.filtered("catalog_id"))
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Reclassified"),
                "message": _(
                    "Documents reclassified: %(count)s; in a catalog: %(filed)s; unassigned: %(rest)s.",
                    count=len(self),
                    filed=filed,
                    rest=len(self) - filed,
                ),
                "type": "success",
                "sticky": False,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }
