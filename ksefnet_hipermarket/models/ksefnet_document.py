"""A monotonic change number on HiperMarket's documents, for its change feed."""

import zlib

from odoo import api, fields, models

from .ksefnet_hipermarket_api import DESCRIBED_FIELDS, SOURCE

SEQUENCE = "ksefnet_hm_change_seq"
#: the advisory-lock namespace of the change feed (the second key is the buffer id)
LOCK_NAMESPACE = zlib.crc32(SEQUENCE.encode()) & 0x7FFFFFFF


class KsefnetDocument(models.Model):
    _inherit = "ksefnet.document"

    hm_change_seq = fields.Integer(
        "Change number",
        readonly=True,
        copy=False,
        help="Increases with every status change.",  # its index is the feed's: ksefnet_document_hm_feed_idx
    )
    hm_delivered_at = fields.Datetime("Number delivered to HiperMarket", readonly=True, copy=False)
    hm_delivered_state = fields.Char("Status when delivered", readonly=True, copy=False)

    def init(self):
        super().init()
        # A database sequence: monotonic across transactions and restarts.
        self.env.cr.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS ksefnet_document_hm_feed_idx "
            "ON ksefnet_document (buffer_id, hm_change_seq) WHERE source = 'HiperMarket'"
        )

    @api.model
    def _hm_numbers(self, buffer_ids, count):
        """``count`` next change numbers, in increasing order, for changes of documents of ``buffer_ids``.

        Per buffer, transactions take their numbers under a transaction-level lock on that buffer held until
        commit, so within a buffer's feed numbers become visible in commit order: a reader that has seen
        number N has seen every number of that buffer below N, and the feed never skips a change that commits
        late. Buffers do not wait for each other."""
        cr = self.env.cr
        for buffer_id in sorted(set(buffer_ids)):  # one order for every transaction: no deadlock
            cr.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, buffer_id])
        cr.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [SEQUENCE, count])
        return sorted(row[0] for row in cr.fetchall())

    def _hm_bump(self):
        """Give HiperMarket's documents among these the next change numbers (see :meth:`_hm_numbers`). Only
        what HiperMarket reads is numbered (its own documents, not purchases)."""
        docs = self.filtered(lambda d: d.source == SOURCE)
        if not docs:
            return
        numbers = self._hm_numbers(docs.buffer_id.ids, len(docs))
        self.env.cr.execute(
            "UPDATE ksefnet_document AS d SET hm_change_seq = v.seq "
            "FROM unnest(%s::int[], %s::int[]) AS v(id, seq) WHERE d.id = v.id AND d.id = ANY(%s)",
            [docs.ids, numbers, docs.ids],  # the ids as an index condition too: never a scan of the table
        )
        docs.invalidate_recordset(["hm_change_seq"])

    def _on_engine_change(self):
        result = super()._on_engine_change()
        self._hm_bump()
        return result

    @api.model
    def _read_after_insert(self):
        return (*super()._read_after_insert(), *DESCRIBED_FIELDS)  # the API's answer (_describe)

    @api.model
    def _initial_columns(self, rows, invoices=None):
        # a new HiperMarket document is numbered as it is inserted: its row is written once
        rows = super()._initial_columns(rows, invoices)
        ours = [row for row in rows if row.get("source") == SOURCE]
        if ours:
            numbers = self._hm_numbers([row["buffer_id"] for row in ours], len(ours))
            for row, number in zip(ours, numbers, strict=True):
                row["hm_change_seq"] = number
        return rows
