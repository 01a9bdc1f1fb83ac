"""Why a document went where it went: the note of a classification result, stored once for every document
that has it."""

import hashlib
import json
import logging

import psycopg2
from odoo import api, fields, models

_logger = logging.getLogger(__name__)


class KsefnetClassificationNote(models.Model):
    """One distinct note (a line per matched rule, as English text and as its template for the reader's
    language), shared by the documents whose classification wrote it. A note runs to kilobytes (a line per
    matched rule); stored in each document's row, PostgreSQL compressed and wrote it again for each of them on
    every reclassification (bench_classification.py). Documents show and search it as their own field
    (``ksefnet.document.classification_note``); nobody reads this model directly but administrators."""

    _name = "ksefnet.classification.note"
    _description = "Classification note"
    _log_access = False
    _rec_name = "source"

    key = fields.Char(required=True, readonly=True, index=False)  # unique: see _sql_constraints
    source = fields.Text("Text (as written)", readonly=True)
    template = fields.Json("Template", readonly=True)

    _sql_constraints = [("key_unique", "UNIQUE (key)", "A classification note is stored once.")]

    @api.model
    def _ids_of(self, notes):
        """The ids of ``notes`` (a list of (English text, template or False)), in order, storing the ones not
        stored yet. Each note used is locked against :meth:`_gc_unused` until this transaction ends."""
        # each template's JSON is made once: its canonical text gives the key and is what a new note stores
        templates = [_canonical(template or None) for _source, template in notes]
        keys = [_key(source, text) for (source, _template), text in zip(notes, templates, strict=True)]
        cr = self.env.cr
        ids = {}
        wanted = list(dict.fromkeys(keys))
        cr.execute(
            "SELECT key, id FROM ksefnet_classification_note WHERE key = ANY(%s) FOR KEY SHARE", [wanted]
        )
        ids.update(cr.fetchall())
        missing = {
            key: (source, template if note_template else None)
            for key, (source, note_template), template in zip(keys, notes, templates, strict=True)
            if key not in ids
        }
        if missing:
            cr.execute(
                "INSERT INTO ksefnet_classification_note (key, source, template) "
                "SELECT * FROM unnest(%s::varchar[], %s::text[], %s::jsonb[]) "
                "ON CONFLICT (key) DO NOTHING RETURNING key, id",
                [
                    list(missing),
                    [source or None for source, _template in missing.values()],
                    [template for _source, template in missing.values()],
                ],
            )
            ids.update(cr.fetchall())
            raced = [key for key in missing if key not in ids]  # stored meanwhile by another transaction
            if raced:
                cr.execute(
                    "SELECT key, id FROM ksefnet_classification_note WHERE key = ANY(%s) FOR KEY SHARE",
                    [raced],
                )
                ids.update(cr.fetchall())
        return [ids[key] for key in keys]

    @api.autovacuum
    def _gc_unused(self):
        """Delete the notes no document has any more (their documents were reclassified since). A note that
        a running transaction is putting on a document is locked by it, and skipped."""
        try:
            with self.env.cr.savepoint():
                self.env.cr.execute(
                    """
                    DELETE FROM ksefnet_classification_note WHERE id IN (
                        SELECT n.id FROM ksefnet_classification_note n
                         WHERE NOT EXISTS (SELECT 1 FROM ksefnet_document d WHERE d.classification_note_id = n.id)
                           FOR UPDATE SKIP LOCKED)
                    """
                )
                _logger.info("Deleted %s unused classification notes", self.env.cr.rowcount)
        except psycopg2.errors.ForeignKeyViolation:  # put on a document as this ran: kept, tried next time
            _logger.info("Unused classification notes kept for the next run (one came into use meanwhile)")


def _canonical(value):
    """``value`` as canonical JSON (keys sorted, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _key(source, template_json):
    """The identity of a note: the digest of [text, template] as canonical JSON, the template given as its
    canonical JSON already (:func:`_canonical`, so that it is not encoded again)."""
    data = f"[{_canonical(source or '')},{template_json}]"
    return hashlib.sha256(data.encode()).hexdigest()
