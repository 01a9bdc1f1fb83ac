"""Documents get a catalog, a shop, tags and a validity result, from the classification rules."""

import json
import logging

from odoo import _, api, fields, models
from odoo.addons.ksefnet_buffer.models.ksefnet_bulk import reserve_ids, set_links, update_records
from odoo.addons.ksefnet_buffer.models.ksefnet_message import (
    Join,
    joined_columns,
    message_field,
    prepare,
    source_field,
    template_field,
)
from odoo.tools import SQL, split_every
from odoo.tools.translate import LazyTranslate

from ksefnet_core import fa3
from ksefnet_core.matching import check_addressed_to
from ksefnet_core.rules import apply_rules, facts_of

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

#: documents classified together: their XML read at once, their results written in one UPDATE
CLASSIFY_CHUNK = 500

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
    reclassify_pending = fields.Boolean(
        "Waiting to be reclassified",
        readonly=True,
        copy=False,
        help="Queued for reclassification in the background (many documents are reclassified in chunks).",
    )

    def init(self):
        super().init()
        # the background reclassification finds its queue by this partial index, however large the table
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS ksefnet_document_reclassify_pending_idx "
            "ON ksefnet_document (buffer_id, id) WHERE reclassify_pending"
        )

    def _on_arrival(self, invoices=None, new=False):
        result = super()._on_arrival(invoices, new=new)
        docs = self.sudo()
        if new:  # most were classified as they were inserted (_initial_columns): the others now
            docs = docs.filtered(lambda d: not d.classified_at)
        docs._classify(invoices, new=new)
        return result

    @api.model
    def _initial_columns(self, rows, invoices=None):
        """New documents whose invoices are at hand are classified before they are inserted: their results go
        into the INSERT, their rule and tag links right after it, and no row is written twice."""
        rows = super()._initial_columns(rows, invoices)
        if invoices is None:
            return rows  # classified on arrival instead
        unnumbered = [row for row in rows if not row.get("id")]
        if unnumbered:  # links need the ids before the insert
            for row, doc_id in zip(unnumbered, reserve_ids(self, len(unnumbered)), strict=True):
                row["id"] = doc_id
        Buffer = self.env["ksefnet.buffer"].sudo()
        by_id = {row["id"]: row for row in rows}
        for buffer_id in {row["buffer_id"] for row in rows}:
            buffer = Buffer.browse(buffer_id)
            rules, shop_by_code = self._compiled_rules(buffer)
            items = [
                (_NewDocument(row, buffer), invoice)
                for row, invoice in zip(rows, invoices, strict=True)
                if row["buffer_id"] == buffer_id
            ]
            groups, rules_of, tags_of = self._classification(items, rules, shop_by_code)
            for values, ids in groups.values():
                columns = self._message_vals(values)  # converted once per distinct result
                for doc_id in ids:
                    by_id[doc_id].update(columns)
            for doc_id, matched in rules_of.items():  # this buffer's rows
                by_id[doc_id].update(rule_ids=matched, tag_ids=tags_of[doc_id])
        return rows

    def _parsed_invoice(self):
        self.ensure_one()
        return _parse(self.sudo().xml_attachment_id.raw)

    @api.model
    def _validity_of(self, doc, invoice):
        """Validity for one document (a record, or a row about to be inserted): sales are ours by definition;
        purchases are checked."""
        buffer = doc.buffer_id
        if doc.direction == "sales" or doc.own_issued:
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

    def _classify(self, invoices=None, new=False):
        """Run the validity check and the buffer's rules on these documents and store the result.
        ``invoices``: {document id: parsed invoice} already at hand (else each XML is parsed here). ``new``:
        documents just created, with no result and no links stored yet (nothing to compare with).

        The rules of a buffer are compiled once; its documents go in chunks of CLASSIFY_CHUNK: each chunk's
        XML read at once, its results written by one UPDATE per distinct result, then the chunk leaves the
        cache, so memory stays flat however many documents are reclassified."""
        invoices = invoices or {}
        for buffer in self.buffer_id:
            rules, shop_by_code = self._compiled_rules(buffer)
            ids = self.filtered(lambda d, b=buffer: d.buffer_id == b).ids
            for chunk in split_every(CLASSIFY_CHUNK, ids, self.browse):
                chunk._classify_chunk(rules, shop_by_code, invoices, new)
                if len(ids) > CLASSIFY_CHUNK:  # many: let what was read go before the next chunk
                    chunk.xml_attachment_id.invalidate_recordset(["raw", "datas", "db_datas"])
                    chunk.invalidate_recordset()
        return True

    @api.model
    def _compiled_rules(self, buffer):
        """(the buffer's rules compiled, {shop code: shop id}). A caller that stores documents one by one
        (the downloader, per batch; a HiperMarket call) puts a dict under ``ksefnet_rules_memo`` in the
        context: the rules are then compiled once for all of them."""
        memo = self.env.context.get("ksefnet_rules_memo")
        if memo is not None and buffer.id in memo:
            return memo[buffer.id]
        shops = self.env["ksefnet.shop"].sudo().search([("buffer_id", "=", buffer.id)])
        rules = self.env["ksefnet.classification.rule"].sudo().search([("buffer_id", "=", buffer.id)])
        compiled = rules._compile(shops), {s.code: s.id for s in shops}
        if memo is not None:
            memo[buffer.id] = compiled
        return compiled

    @api.model
    def _classification(self, items, rules, shop_by_code, now=None):
        """The results of ``items`` ((document, parsed invoice or None): a record, or a row about to be
        inserted) under one buffer's compiled ``rules``: ({key: (stored values, [document ids])} (identical
        results share one dict), {document id: [rule ids]}, {document id: [tag ids]})."""
        Rule = self.env["ksefnet.classification.rule"].sudo()
        now = now or fields.Datetime.now()
        always = _lt("always")  # a rule without conditions
        groups = {}  # identical results share their converted messages
        lines = {}  # (rule id, reasons): the prepared line of the note

        def line_of(rule, why):
            """A rule's line of the note, made once and shared by every note that has it."""
            key = (rule.rule_id, repr(why))
            if key not in lines:
                reasons = Join(", ", [Rule._reason_part(w) for w in why]) if why else always
                lines[key] = prepare(self.env, Join(": ", [rule.name, reasons]))
            return lines[key]

        rules_of, tags_of = {}, {}
        for doc, invoice in items:
            validity, reasons = self._validity_of(doc, invoice)
            outcome = apply_rules(
                rules, facts_of(doc, invoice, validity), shop_by_code.get(doc.shop_code, False)
            )
            catalog, shop, hits = outcome.catalog_id, outcome.shop_id, outcome.hits
            matched = outcome.rule_ids
            rules_of[doc.id], tags_of[doc.id] = matched, outcome.tag_ids
            # what decides the stored result, in plain values: the messages are built once per distinct result
            key = (validity, repr(reasons), catalog, shop, tuple(matched), repr([why for _r, why in hits]))
            group = groups.get(key)
            if group is None:
                values = {
                    "validity": validity,
                    "validity_reasons": reasons,
                    "catalog_id": catalog,
                    "shop_id": shop,
                    "classified_at": now,
                    "reclassify_pending": False,
                }
                if hits:
                    notes = [line_of(rule, why) for rule, why in hits]
                    values.update(joined_columns("classification_note", "\n", notes))
                else:
                    values["classification_note"] = _lt("No rule matched: Unassigned.")
                group = groups[key] = (values, [])
            group[1].append(doc.id)
        return groups, rules_of, tags_of

    def _classify_chunk(self, rules, shop_by_code, invoices, new=False):
        """:meth:`_classify` for documents of one buffer, with its compiled ``rules``."""
        now = fields.Datetime.now()
        unparsed = self.filtered(lambda d: d.id not in invoices)
        raw = {a.id: a.raw for a in unparsed.sudo().xml_attachment_id}  # the XML of all, read at once
        items = [(doc, invoices.get(doc.id) or _parse(raw.get(doc.xml_attachment_id.id))) for doc in self]
        groups, rules_of, tags_of = self._classification(items, rules, shop_by_code, now)
        Documents = self.sudo()
        touched = {
            "classified_at": now,
            "reclassify_pending": False,
        }  # sent once for all that stay as they were
        results = [
            (self._message_vals(values), ids) for values, ids in groups.values()
        ]  # converted once each
        names = sorted(n for n in results[0][0] if n not in touched) if results else []
        stored = {}
        if not new:
            Documents.flush_recordset(names)
            # the messages' JSON comes as text and each distinct text is decoded once: documents put in the
            # same place for the same reasons share it
            is_json = [self._fields[n].type == "json" for n in names]
            self.env.cr.execute(
                SQL(
                    "SELECT id, %s FROM ksefnet_document WHERE id = ANY(%s)",
                    SQL(", ").join(
                        SQL("%s::text", SQL.identifier(n)) if j else SQL.identifier(n)
                        for n, j in zip(names, is_json, strict=True)
                    ),
                    self.ids,
                )
            )
            decoded = {None: None}
            for row_id, *values in self.env.cr.fetchall():
                for i, j in enumerate(is_json):
                    if j:
                        text = values[i]
                        if text not in decoded:
                            decoded[text] = json.loads(text)
                        values[i] = decoded[text]
                stored[row_id] = tuple(values)
        changed, unchanged = [], []
        for columns, ids in results:
            wanted = tuple(None if columns[n] is False else columns[n] for n in names)
            for doc_id in ids:
                if stored.get(doc_id) == wanted:
                    unchanged.append((doc_id, touched))
                else:
                    changed.append((doc_id, columns))
        update_records(Documents, changed)  # only what changed is rewritten with its indexed columns
        update_records(Documents, unchanged)
        Documents.invalidate_recordset(["validity_reasons", "classification_note"])
        set_links(Documents, "rule_ids", rules_of, replace=True, new=new)
        set_links(Documents, "tag_ids", {k: v for k, v in tags_of.items() if v}, replace=False, new=new)

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
        """Reclassify the selected documents with the current rules (needs the right to handle them).

        Up to CLASSIFY_CHUNK documents are reclassified at once; more are queued and reclassified in the
        background, a chunk per transaction, with their progress on the buffer."""
        self.check_access("write")
        if len(self) > CLASSIFY_CHUNK:
            self.sudo()._queue_reclassification()
            return _notification(
                _("Reclassification queued"),
                _(
                    "%(count)s documents will be reclassified in the background, %(chunk)s at a time; the "
                    "buffer shows how many are left.",
                    count=len(self),
                    chunk=CLASSIFY_CHUNK,
                ),
                "info",
            )
        self.sudo()._classify()
        filed = len(self.sudo().filtered("catalog_id"))  # where they went, even where this user cannot see
        return _notification(
            _("Reclassified"),
            _(
                "Documents reclassified: %(count)s; in a catalog: %(filed)s; unassigned: %(rest)s.",
                count=len(self),
                filed=filed,
                rest=len(self) - filed,
            ),
            "success",
        )

    def _queue_reclassification(self):
        """Mark these documents for the background reclassification and wake it up."""
        update_records(self, [(doc_id, {"reclassify_pending": True}) for doc_id in self.ids])
        cron = self.env.ref("ksefnet_documents.ir_cron_ksefnet_reclassify", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger()

    @api.model
    def _cron_reclassify(self):
        """One chunk of the queued reclassification per call, in its own transaction: Odoo's scheduler calls
        again at once while ``remaining`` is reported (ir.cron's progress), so a crash or a restart loses at
        most one chunk, which stays queued. Chunks locked by another worker are skipped."""
        self.env.cr.execute(
            "SELECT id FROM ksefnet_document WHERE reclassify_pending ORDER BY buffer_id, id LIMIT %s "
            "FOR UPDATE SKIP LOCKED",
            [CLASSIFY_CHUNK],
        )
        chunk = self.sudo().browse([row[0] for row in self.env.cr.fetchall()])
        if chunk:
            chunk._classify()
        remaining = self.sudo().search_count([("reclassify_pending", "=", True)])
        self.env["ir.cron"]._notify_progress(done=len(chunk), remaining=remaining)
        return len(chunk)


def _notification(title, message, kind):
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {
            "title": title,
            "message": message,
            "type": kind,
            "sticky": False,
            "next": {"type": "ir.actions.client", "tag": "soft_reload"},
        },
    }


class _NewDocument:
    """A document row about to be inserted, read as classification reads a document: its values as
    attributes and items (False when not given), ``buffer_id`` as the buffer record."""

    __slots__ = ("_row", "buffer_id")

    def __init__(self, row, buffer):
        self._row = row
        self.buffer_id = buffer

    def __getattr__(self, name):
        return self._row.get(name, False)

    def __getitem__(self, name):
        return self._row.get(name, False)


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
