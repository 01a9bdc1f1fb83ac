"""A monotonic change number on HiperMarket's documents, for its change feed."""

import zlib

from odoo import api, fields, models

from .ksefnet_hipermarket_api import SOURCE

SEQUENCE = "ksefnet_hm_change_seq"
#: the advisory-lock namespace of the change feed (the second key is the buffer id)
LOCK_NAMESPACE = zlib.crc32(SEQUENCE.encode()) & 0x7FFFFFFF


class KsefnetDocument(models.Model):
    _inherit = "ksefnet.document"

    hm_change_seq = fields.Integer(
        "Change number", readonly=True, index=True, copy=False, help="Increases with every status change."
    )
    hm_delivered_at = fields.Datetime("Number delivered to HiperMarket", readonly=True, copy=False)
    hm_delivered_state = fields.Char("Status when delivered", readonly=True, copy=False)

    def init(self):
        # A database sequence: monotonic across transactions and restarts.
        self.env.cr.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS ksefnet_document_hm_feed_idx "
            "ON ksefnet_document (buffer_id, hm_change_seq) WHERE source = 'HiperMarket'"
        )

    def _hm_bump(self):
        """Give HiperMarket's documents among these the next change numbers.

        Only what HiperMarket reads is numbered (its own documents, not purchases). Per buffer, transactions
        take their numbers under a transaction-level lock on that buffer held until commit, so within a
        buffer's feed numbers become visible in commit order: a reader that has seen number N has seen every
        number of that buffer below N, and the feed never skips a change that commits late. Buffers do not
        wait for each other.
        """
        docs = self.filtered(lambda d: d.source == SOURCE)
        if not docs:
            return
        cr = self.env.cr
        for buffer_id in sorted(set(docs.buffer_id.ids)):  # one order for every transaction: no deadlock
            cr.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, buffer_id])
        cr.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [SEQUENCE, len(docs)])
        numbers = sorted(row[0] for row in cr.fetchall())
        cr.execute(
            "UPDATE ksefnet_document AS d SET hm_change_seq = v.seq "
            "FROM unnest(%s::int[], %s::int[]) AS v(id, seq) WHERE d.id = v.id",
            [docs.ids, numbers],
        )
        docs.invalidate_recordset(["hm_change_seq"])

    def _on_engine_change(self):
        result = super()._on_engine_change()
        self._hm_bump()
        return result

    @api.model
    def _create_in_state(self, vals, state, message, reference=None):
        doc = super()._create_in_state(vals, state, message, reference=reference)
        doc._hm_bump()
        return doc
