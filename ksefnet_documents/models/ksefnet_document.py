"""Documents get a catalog, a shop, tags and a validity result, from the classification rules."""

import logging

from odoo import _, fields, models
from odoo.addons.ksefnet_buffer.models.ksefnet_bulk import set_links, update_records
from odoo.addons.ksefnet_buffer.models.ksefnet_message import (
    Join,
    message_field,
    source_field,
    template_field,
)
from odoo.tools.translate import LazyTranslate

from ksefnet_core import fa3
from ksefnet_core.matching import check_addressed_to

from .ksefnet_classification_rule import _facts

_logger = logging.getLogger(__name__)
_lt = LazyTranslate(__name__)

#: why a purchase invoice is (or is not) addressed to the company (ksefnet_core.matching's Validity.items)
VALIDITY_REASONS = {
    "buyer-is-company": _lt("the buyer's NIP %(nip)s is the company's"),
    "third-party": _lt("the company is a third party with role %(role)s"),
    "buyer-nip": _lt("the buyer's NIP is %(nip)s"),
    "third-party-not-recipient": _lt(
        "the company is a third party only with role %(role)s, not as a recipient"
    ),
    "other-buyer": _lt("addressed to NIP %(buyer)s, not to %(nip)s"),
    "no-polish-nip": _lt("the buyer has no Polish NIP (%(kind)s %(value)s)"),
    "buyer-name": _lt("the buyer's name '%(name)s' is none of the company's names (%(names)s)"),
}
#: the kinds of buyer identifiers KSeF's metadata names (Party.identifier)
IDENTIFIER_KINDS = {
    "VatUe": _lt("EU VAT number"),
    "Other": _lt("other identifier"),
    "InternalId": _lt("internal identifier"),
    "None": _lt("no identifier"),
}

VALIDITY = [("valid", "Addressed to us"), ("invalid", "Not addressed to us"), ("review", "To review")]


class KsefnetDocument(models.Model):
    _inherit = "ksefnet.document"

    catalog_id = fields.Many2one("ksefnet.catalog", "Catalog", index=True)
    shop_id = fields.Many2one("ksefnet.shop", "Shop", index=True)
    tag_ids = fields.Many2many("ksefnet.tag", string="Tags")
    validity = fields.Selection(VALIDITY, readonly=True, index=True)
    validity_reasons = message_field("validity_reasons", "Validity reasons")
    validity_reasons_source = source_field("Validity reasons (as written)")
    validity_reasons_template = template_field("Validity reasons (template)")
    rule_ids = fields.Many2many("ksefnet.classification.rule", string="Matched rules", readonly=True)
    classification_note = message_field("classification_note", "Why")
    classification_note_source = source_field("Why (as written)")
    classification_note_template = template_field("Why (template)")
    classified_at = fields.Datetime(readonly=True)

    def _on_arrival(self, invoices=None):
        result = super()._on_arrival(invoices)
        self.sudo()._classify(invoices)
        return result

    def _parsed_invoice(self):
        self.ensure_one()
        return _parse(self.sudo().xml_attachment_id.raw)

    def _validity_of(self, invoice):
        """Validity for one document: sales are ours by definition; purchases are checked."""
        self.ensure_one()
        buffer = self.buffer_id
        if self.direction == "sales" or self.own_issued:
            return "valid", _lt("The company is the seller.")
        if invoice is None:
            return "review", _lt("The invoice XML cannot be read.")
        checked = check_addressed_to(
            invoice,
            buffer.nip,
            company_name=buffer._company_names(),
            accepted_roles=buffer._accepted_roles(),
        )
        return checked.result, Join("\n", [_validity_reason(key, params) for key, params in checked.items])

    def _classify(self, invoices=None):
        """Run the validity check and the buffer's rules on these documents and store the result.
        ``invoices``: {document id: parsed invoice} already at hand (else each XML is parsed here)."""
        invoices = invoices or {}
        Rule = self.env["ksefnet.classification.rule"].sudo()
        Shop = self.env["ksefnet.shop"].sudo()
        now = fields.Datetime.now()
        always = _lt("always")  # a rule without conditions
        for buffer in self.buffer_id:
            rules = Rule.search([("buffer_id", "=", buffer.id)])._compile(
                shops := Shop.search([("buffer_id", "=", buffer.id)])
            )
            shop_by_code = {s.code: s.id for s in shops}
            docs = self.filtered(lambda d, b=buffer: d.buffer_id == b)
            groups = {}  # identical results share their converted messages
            rules_of, tags_of = {}, {}
            unparsed = docs.filtered(lambda d: d.id not in invoices)
            raw = {a.id: a.raw for a in unparsed.sudo().xml_attachment_id}  # the XML of all, read at once
            for doc in docs:
                invoice = invoices.get(doc.id) or _parse(raw.get(doc.xml_attachment_id.id))
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
                    because = Join(", ", [Rule._reason_part(w) for w in why]) if why else always
                    notes.append(Join(": ", [rule.name, because]))
                    if rule.catalog_id:
                        values["catalog_id"] = rule.catalog_id
                    if rule.shop_action == "set" and rule.shop_id:
                        values["shop_id"] = rule.shop_id
                    elif rule.shop_action == "matched" and found_shop:
                        values["shop_id"] = found_shop
                    tags.update(rule.tag_ids)
                    if rule.stop:
                        break
                values["classification_note"] = (
                    Join("\n", notes) if notes else _lt("No rule matched: Unassigned.")
                )
                rules_of[doc.id], tags_of[doc.id] = matched, sorted(tags)
                key = tuple(sorted((k, repr(v)) for k, v in values.items()))
                groups.setdefault(key, (values, []))[1].append(doc.id)
            table = []
            for values, ids in groups.values():  # messages converted once per distinct result
                columns = self._message_vals(values)
                table += [(doc_id, columns) for doc_id in ids]
            Documents = self.sudo()
            update_records(Documents, table)
            Documents.browse([row[0] for row in table]).invalidate_recordset(
                ["validity_reasons", "classification_note"]
            )
            set_links(Documents, "rule_ids", rules_of, replace=True)
            set_links(Documents, "tag_ids", {k: v for k, v in tags_of.items() if v}, replace=False)
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
        filed = len(self.sudo().filtered("catalog_id"))  # where they went, even where this user cannot see
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


def _parse(xml):
    """The parsed invoice, or None when there is no XML or it cannot be read."""
    if not xml:
        return None
    try:
        return fa3.parse(xml)
    except fa3.InvoiceValidationError:
        return None


def _validity_reason(key, params):
    template = VALIDITY_REASONS.get(key)
    if template is None:  # a reason this addon does not know yet: its key, never a wrong sentence
        return key
    if key == "no-polish-nip":
        params = dict(params, kind=IDENTIFIER_KINDS.get(params.get("kind"), params.get("kind")))
    return type(template)(template._source, **params, _module=template._module)
