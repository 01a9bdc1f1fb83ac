"""Documents get a catalog, a shop, tags and a validity result, from the classification rules."""

import json
import logging
from types import MappingProxyType

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
from odoo.exceptions import UserError
from odoo.osv.expression import NEGATIVE_TERM_OPERATORS as NEGATIVE_OPERATORS
from odoo.tools import SQL, ormcache, split_every
from odoo.tools.translate import LazyTranslate

from ksefnet_core import fa3
from ksefnet_core.matching import check_addressed_to
from ksefnet_core.rules import TEXT_FIELDS, apply_rules, facts_of

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

#: the stored fields classification reads of a document (the rules' facts, its validity, its XML)
CLASSIFIED_FIELDS = tuple(
    dict.fromkeys(
        ("id", "direction", "own_issued", "shop_code", "invoice_kind", "amount_gross", "xml_attachment_id",
         *TEXT_FIELDS)
    )
)  # fmt: skip

#: distinct validity reasons and rule lines a classification keeps at hand for the next documents
MEMO_SIZE = 5000

VALIDITY = [("valid", "Addressed to us"), ("invalid", "Not addressed to us"), ("review", "To review")]
SELLER_REASON = _lt("The company is the seller.")
UNREADABLE_REASON = _lt("The invoice XML cannot be read.")


class KsefnetDocument(models.Model):
    _inherit = "ksefnet.document"

    catalog_id = fields.Many2one("ksefnet.catalog", "Catalog", index=True)
    shop_id = fields.Many2one("ksefnet.shop", "Shop", index=True)
    tag_ids = fields.Many2many("ksefnet.tag", string="Tags")
    validity = fields.Selection(VALIDITY, readonly=True, index=True)
    validity_reasons = message_field("validity_reasons", "Validity reasons")
    validity_reasons_source = source_field("Validity reasons (as written)")
    validity_reasons_template = template_field("Validity reasons (template)")
    # The rules a classification matched, in their order, stored with the result it belongs to (one jsonb
    # value in the document's row, written by the same UPDATE). A link table cost a row per matched rule
    # and document, two foreign-key checks each: with rules that match many documents it took longer than
    # running the rules (bench_classification.py). Shown and searched as the rules themselves.
    rule_match = fields.Json("Matched rule ids", readonly=True, copy=False)
    rule_ids = fields.Many2many(
        "ksefnet.classification.rule",
        string="Matched rules",
        compute="_compute_rule_ids",
        search="_search_rule_ids",
    )
    # The note is shared: documents classified for the same reasons have the same one, stored once
    # (ksefnet.classification.note); it reads and searches as the document's own message field.
    classification_note_id = fields.Many2one(
        "ksefnet.classification.note",
        "Why (stored note)",
        readonly=True,
        copy=False,
        ondelete="restrict",
        groups="ksefnet_buffer.group_ksef_admin",  # the others read the note as "Why", not as a record
    )
    classification_note = fields.Text(
        "Why", compute="_compute_ksefnet_messages", search="_search_classification_note", readonly=True
    )
    classification_note_source = fields.Text(
        "Why (as written)", related="classification_note_id.source", readonly=True
    )
    classification_note_template = fields.Json(
        "Why (template)", related="classification_note_id.template", readonly=True
    )
    classified_at = fields.Datetime(readonly=True)
    reclassify_pending = fields.Boolean(
        "Waiting to be reclassified",
        readonly=True,
        copy=False,
        help="Queued for reclassification in the background (many documents are reclassified in chunks).",
    )

    @api.depends("rule_match")
    def _compute_rule_ids(self):
        """The matched rules that still exist, as the reader may see them (archived ones and rules the
        record rules hide are left out, as a many2many shows them)."""
        wanted = {rule_id for doc in self for rule_id in doc.rule_match or ()}
        Rule = self.env["ksefnet.classification.rule"]
        visible = set(Rule.search([("id", "in", list(wanted))]).ids) if wanted else set()
        for doc in self:
            doc.rule_ids = Rule.browse([r for r in doc.rule_match or () if r in visible])

    def _search_rule_ids(self, operator, value):
        """Documents by matched rule: ``in``/``=`` a rule id or a list of ids (``not in``/``!=``: the others),
        ``= False``: matched none, ``ilike`` a text: a rule of that name."""
        if operator in ("ilike", "like", "=ilike", "=like") and isinstance(value, str):
            rules = self.env["ksefnet.classification.rule"].with_context(active_test=False)
            ids, positive = list(rules._search([("name", operator, value)])), True
        elif operator in ("in", "not in", "=", "!="):
            positive = operator in ("in", "=")
            if value is False:  # matched no rule (= False), or some (!= False)
                empty = [("rule_match", "=", False)]
                return empty if positive else ["!", *empty]
            ids = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if not ids:  # one of no rules: none; none of no rules: all
                return [("id", "in", [])] if positive else []
        else:
            raise UserError(_("Matched rules can be searched by rule or by a rule's name only."))
        self.env.cr.execute(
            "SELECT id FROM ksefnet_document WHERE rule_match @> ANY(%s::jsonb[])",
            [[json.dumps([int(i)]) for i in ids]],
        )
        found = [row[0] for row in self.env.cr.fetchall()]
        return [("id", "in" if positive else "not in", found)]

    def _search_classification_note(self, operator, value):
        """Documents by the text of their note (the stored English text, as every message field)."""
        notes = self.env["ksefnet.classification.note"].sudo()._search([("source", operator, value)])
        domain = [("classification_note_id", "in", notes)]
        # a document without a note matches as an empty text would: "= False", "not ilike x", not "!= False"
        if (operator in NEGATIVE_OPERATORS) != (value is False):
            domain = ["|", ("classification_note_id", "=", False), *domain]
        # the note's link is the administrators' field: the documents found through it, by a subquery whose
        # rows the reader's own record rules then filter
        return [("id", "in", self.sudo().with_context(active_test=False)._search(domain))]

    @api.model
    def _message_vals(self, vals):
        """The note is stored once (see classification_note_id): its columns become the id of its row."""
        return self._with_note_ids([super()._message_vals(vals)])[0]

    @api.model
    def _result_columns(self, values_list):
        """The stored columns of classification results (see :meth:`_classification`): each converted once,
        their notes looked up at once."""
        return self._with_note_ids(self._message_vals_many(values_list))

    @api.model
    def _with_note_ids(self, vals_list):
        """``vals_list`` with each classification note (its text and template columns) replaced by the id of
        its stored note: all of them looked up (and the new ones stored) at once."""
        names = ("classification_note_source", "classification_note_template")
        having = [vals for vals in vals_list if names[0] in vals or names[1] in vals]
        if not having:
            return vals_list
        notes = [(vals.get(names[0]) or False, vals.get(names[1]) or False) for vals in having]
        stored = [n for n in notes if n[0] or n[1]]
        ids = iter(self.env["ksefnet.classification.note"].sudo()._ids_of(stored) if stored else ())
        converted = {}
        for vals, note in zip(having, notes, strict=True):
            new = {k: v for k, v in vals.items() if k not in names}
            new["classification_note_id"] = next(ids) if note[0] or note[1] else False
            converted[id(vals)] = new
        return [converted.get(id(vals), vals) for vals in vals_list]

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
        if new and docs:  # most were classified as they were inserted (_initial_columns): the others now
            # what the insert put into the cache (_read_after_insert) tells; for the rest, their time of
            # classification only is read, not every column of the new rows
            field, cache = docs._fields["classified_at"], docs.env.cache
            known = {doc.id for doc in docs if cache.get(doc, field, None)}
            unknown = [doc_id for doc_id in docs._ids if doc_id not in known]
            if unknown:
                docs.flush_recordset(["classified_at"])
                self.env.cr.execute(
                    "SELECT id FROM ksefnet_document WHERE id = ANY(%s) AND classified_at IS NULL", [unknown]
                )
                docs = docs.browse([row[0] for row in self.env.cr.fetchall()])
            else:
                docs = docs.browse()
        if docs:
            docs._classify(invoices, new=new)
        return result

    @api.model
    def _read_after_insert(self):
        return (*super()._read_after_insert(), "classified_at")  # by _on_arrival

    @api.model
    def _initial_columns(self, rows, invoices=None):
        """New documents whose invoices are at hand are classified before they are inserted: their results go
        into the INSERT (matched rules included), their tag links right after it, and no row is written twice."""
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
            groups, tags_of = self._classification(items, rules, shop_by_code)
            converted = self._result_columns([values for values, _ids in groups.values()])  # once each
            for columns, (_values, ids) in zip(converted, groups.values(), strict=True):
                for doc_id in ids:
                    by_id[doc_id].update(columns)
            for doc_id, tags in tags_of.items():  # this buffer's rows
                by_id[doc_id]["tag_ids"] = tags
        return rows

    def _parsed_invoice(self):
        self.ensure_one()
        return _parse(self.sudo().xml_attachment_id.raw)

    @api.model
    def _validity_of(self, doc, invoice, memo=None):
        """Validity for one document (a record, or a row about to be inserted): sales are ours by definition;
        purchases are checked. ``memo``: a dict that keeps each buffer's names and roles for the next, and
        the reasons already made: documents with the same reasons get the same object (grouped by it)."""
        if doc.direction == "sales" or doc.own_issued:
            return "valid", SELLER_REASON
        if invoice is None:
            return "review", UNREADABLE_REASON
        memo = {} if memo is None else memo
        buffer = doc.buffer_id
        if buffer.id not in memo:
            memo[buffer.id] = (buffer.nip, buffer._company_names(), buffer._accepted_roles(), {})
        nip, names, roles, made = memo[buffer.id]
        checked = check_addressed_to(invoice, nip, company_name=names, accepted_roles=roles)
        key = (checked.result, repr(checked.items))  # plain values: repr in C, not the parts' own reprs
        if key not in made:
            if len(made) > MEMO_SIZE:  # names differ per invoice ("buyer-name"): keep the memo bounded
                made.clear()
            made[key] = Join("\n", [_validity_reason(k, params) for k, params in checked.items])
        return checked.result, made[key]

    def _classify(self, invoices=None, new=False):
        """Run the validity check and the buffer's rules on these documents and store the result.
        ``invoices``: {document id: parsed invoice} already at hand (else each XML is parsed here). ``new``:
        documents just created, with no result and no links stored yet (nothing to compare with).

        The rules of a buffer are compiled once; its documents go in chunks of CLASSIFY_CHUNK: each chunk's
        XML read at once, its results written by one UPDATE per distinct result, then the chunk leaves the
        cache, so memory stays flat however many documents are reclassified."""
        invoices = invoices or {}
        if not self:
            return True
        # the documents of each buffer by one small query: reading buffer_id through the ORM would read (and
        # cache) every column of every document first
        self.flush_recordset(["buffer_id"])
        self.env.cr.execute(
            "SELECT buffer_id, array_agg(id) FROM ksefnet_document WHERE id = ANY(%s) GROUP BY buffer_id",
            [self.ids],
        )
        Buffer = self.env["ksefnet.buffer"]
        for buffer_id, ids in self.env.cr.fetchall():
            buffer = Buffer.browse(buffer_id)
            rules, shop_by_code = self._compiled_rules(buffer)
            memo = {}  # what the chunks share (_classification)
            for chunk in split_every(CLASSIFY_CHUNK, ids, self.browse):
                chunk._classify_chunk(buffer, rules, shop_by_code, invoices, new, memo)
                if len(ids) > CLASSIFY_CHUNK:  # many: let what was read go before the next chunk (their XML
                    chunk.invalidate_recordset()  # was read by SQL, never cached)
        return True

    @api.model
    def _compiled_rules(self, buffer):
        """(the buffer's rules compiled, {shop code: shop id}): the active rules and shops only, whatever the
        caller's context (the intake stores its documents with archived ones in view, active_test=False, and
        an archived rule must not file them). Kept in the registry's cache (:meth:`_compiled_rules_of`)."""
        return self._compiled_rules_of(buffer.id)

    @api.model
    @ormcache("buffer_id")
    def _compiled_rules_of(self, buffer_id):
        """:meth:`_compiled_rules`, compiled once and kept in the registry's cache: every HiperMarket call, a
        downloaded batch or a classification run would otherwise search the rules and shops and compile them
        again (7 ms for 200 rules and 100 shops). Plain values only (ids, codes, patterns), no records. The
        cache is cleared by every change of what they are made of (rules and invoice kinds are ksefnet.cache.source
        records; shops changed, catalogs, tags and buffers deleted call :meth:`_forget_compiled_rules`), and Odoo tells the other workers at
        commit; a rolled back change clears it again."""
        env = self.with_context(active_test=True).sudo().env
        shops = env["ksefnet.shop"].search([("buffer_id", "=", buffer_id)])
        rules = env["ksefnet.classification.rule"].search([("buffer_id", "=", buffer_id)])
        return tuple(rules._compile(shops)), MappingProxyType({s.code: s.id for s in shops})

    @api.model
    def _forget_compiled_rules(self):
        """What compiled rules are made of changed (a rule, a shop or an invoice kind; a catalog, tag or buffer
        deleted): they are compiled again at their next use, in this worker and, once the change is
        committed, in the others (Odoo signals a cleared registry cache). A cached rule must never file a
        document into a catalog that is gone."""
        self.env.registry.clear_cache()

    @api.model
    def _classification(self, items, rules, shop_by_code, now=None, memo=None):
        """The results of ``items`` ((document, parsed invoice or None): a record, or a row about to be
        inserted) under one buffer's compiled ``rules``: ({key: (stored values, [document ids])} (identical
        results share one dict; the matched rules are among the values), {document id: [tag ids]}).
        ``memo``: a dict kept from one call to the next (chunks of one classification) for what they share:
        the lines of the notes, each buffer's names and the validity reasons made."""
        Rule = self.env["ksefnet.classification.rule"].sudo()
        now = now or fields.Datetime.now()
        always = _lt("always")  # a rule without conditions
        unassigned = _lt("No rule matched: Unassigned.")  # one object: converted once (_result_columns)
        groups = {}  # identical results share their converted messages
        memo = {} if memo is None else memo
        lines = memo.setdefault("lines", {})  # (rule id, reasons): the prepared line of the note
        buffers = memo.setdefault("buffers", {})

        def line_of(rule, why):
            """A rule's line of the note, made once and shared by every note that has it."""
            key = (rule.rule_id, repr(why))
            if key not in lines:
                if len(lines) > MEMO_SIZE:  # a delivery id is in its line: one per invoice, kept bounded
                    lines.clear()
                reasons = Join(", ", [Rule._reason_part(w) for w in why]) if why else always
                lines[key] = prepare(self.env, Join(": ", [rule.name, reasons]))
            return lines[key]

        tags_of = {}
        for doc, invoice in items:
            validity, reasons = self._validity_of(doc, invoice, buffers)
            outcome = apply_rules(
                rules, facts_of(doc, invoice, validity), shop_by_code.get(doc.shop_code, False)
            )
            catalog, shop, hits = outcome.catalog_id, outcome.shop_id, outcome.hits
            matched = outcome.rule_ids
            tags_of[doc.id] = outcome.tag_ids
            # what decides the stored result: the messages are built once per distinct result. The reasons
            # are one object per distinct text (_validity_of), each kept alive by the group it starts
            key = (validity, id(reasons), catalog, shop, tuple(matched), repr([why for _r, why in hits]))
            group = groups.get(key)
            if group is None:
                values = {
                    "validity": validity,
                    "validity_reasons": reasons,
                    "catalog_id": catalog,
                    "shop_id": shop,
                    "rule_match": list(matched) or False,
                    "classified_at": now,
                    "reclassify_pending": False,
                }
                if hits:
                    notes = [line_of(rule, why) for rule, why in hits]
                    values.update(joined_columns("classification_note", "\n", notes))
                else:
                    values["classification_note"] = unassigned
                group = groups[key] = (values, [])
            group[1].append(doc.id)
        return groups, tags_of

    def _classified_values(self):
        """What classification reads of these documents (CLASSIFIED_FIELDS), as plain rows in their order:
        one query, not an ORM read of each field of each document."""
        self.flush_recordset(list(CLASSIFIED_FIELDS))
        columns = [
            SQL("%s::float8", SQL.identifier(n)) if self._fields[n].type == "float" else SQL.identifier(n)
            for n in CLASSIFIED_FIELDS
        ]
        self.env.cr.execute(
            SQL("SELECT %s FROM ksefnet_document WHERE id = ANY(%s)", SQL(", ").join(columns), self.ids)
        )
        rows = {row[0]: dict(zip(CLASSIFIED_FIELDS, row, strict=True)) for row in self.env.cr.fetchall()}
        return [rows[doc_id] for doc_id in self.ids]

    def _classify_chunk(self, buffer, rules, shop_by_code, invoices, new=False, memo=None):
        """:meth:`_classify` for documents of one ``buffer``, with its compiled ``rules``."""
        now = fields.Datetime.now()
        rows = self._classified_values()
        unparsed = [row["xml_attachment_id"] for row in rows if row["id"] not in invoices]
        raw = self._xml_of_attachments([a for a in unparsed if a]) if unparsed else {}  # all at once
        items = [
            (_NewDocument(row, buffer), invoices.get(row["id"]) or _parse(raw.get(row["xml_attachment_id"])))
            for row in rows
        ]
        groups, tags_of = self._classification(items, rules, shop_by_code, now, memo)
        Documents = self.sudo()
        touched = {
            "classified_at": now,
            "reclassify_pending": False,
        }  # sent once for all that stay as they were
        converted = self._result_columns([values for values, _ids in groups.values()])  # once each
        results = [(columns, ids) for columns, (_values, ids) in zip(converted, groups.values(), strict=True)]
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
        Documents.invalidate_recordset(
            [
                "validity_reasons",
                "classification_note",
                "classification_note_source",
                "classification_note_template",
            ]
        )
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


#: where the matched rules were kept up to 18.0.0.5.0 (a link table of the stored many2many)
OLD_RULE_LINKS = "ksefnet_classification_rule_ksefnet_document_rel"


def move_rule_links(cr):
    """18.0.0.6.0: the matched rules of each document go from the old link table into ``rule_match``, in the
    rules' order, and the table is dropped (nothing reads it any more)."""
    cr.execute("SELECT to_regclass(%s)", [OLD_RULE_LINKS])
    if not cr.fetchone()[0]:
        return
    cr.execute(
        f"""
        UPDATE ksefnet_document d SET rule_match = m.ids
          FROM (SELECT l.ksefnet_document_id AS doc,
                       jsonb_agg(r.id ORDER BY r.buffer_id, r.sequence, r.id) AS ids
                  FROM {OLD_RULE_LINKS} l
                  JOIN ksefnet_classification_rule r ON r.id = l.ksefnet_classification_rule_id
                 GROUP BY l.ksefnet_document_id) m
         WHERE d.id = m.doc
        """  # noqa: S608 - a constant
    )
    cr.execute(f"DROP TABLE {OLD_RULE_LINKS}")  # noqa: S608 - a constant
    cr.execute("DELETE FROM ir_model_relation WHERE name = %s", [OLD_RULE_LINKS])


def move_notes(env):
    """18.0.0.7.0: each distinct classification note goes from the documents' rows (the columns
    ``classification_note_source`` and ``classification_note_template``) into ksefnet.classification.note,
    once, and the documents point at it; the columns are dropped."""
    cr = env.cr
    cr.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ksefnet_document' "
        "AND column_name IN ('classification_note_source', 'classification_note_template')"
    )
    if cr.fetchone()[0] != 2:
        return
    cr.execute(
        "SELECT DISTINCT classification_note_source, classification_note_template::text FROM ksefnet_document "
        "WHERE classification_note_source IS NOT NULL OR classification_note_template IS NOT NULL"
    )
    notes = [
        (source or False, json.loads(template) if template else False) for source, template in cr.fetchall()
    ]
    ids = env["ksefnet.classification.note"].sudo()._ids_of(notes) if notes else []
    # joined by equality (coalesced), so that PostgreSQL can hash the notes once, however many documents
    cr.execute(
        """
        UPDATE ksefnet_document d SET classification_note_id = m.id
          FROM unnest(%s::text[], %s::jsonb[], %s::int4[]) AS m(source, template, id)
         WHERE coalesce(d.classification_note_source, '') = coalesce(m.source, '')
           AND coalesce(d.classification_note_template, 'null'::jsonb) = coalesce(m.template, 'null'::jsonb)
           AND (d.classification_note_source IS NOT NULL OR d.classification_note_template IS NOT NULL)
        """,
        [
            [source or None for source, _template in notes],
            [json.dumps(template) if template else None for _source, template in notes],
            ids,
        ],
    )
    cr.execute(
        "ALTER TABLE ksefnet_document DROP COLUMN classification_note_source, "
        "DROP COLUMN classification_note_template"
    )


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
    """A document as classification reads it, a row about to be inserted or a stored document's values
    (:meth:`_classified_values`): its values as attributes and items (False when not given), ``buffer_id``
    as the buffer record."""

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
