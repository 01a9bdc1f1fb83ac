"""A monotonic change sequence on documents, for HiperMarket's change feed."""

from odoo import api, fields, models

SEQUENCE = "ksefnet_hm_change_seq"


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

    def _hm_bump(self):
        """Give these documents the next change numbers.

        Transactions take their numbers under a transaction-level lock held until commit, so numbers become
        visible in commit order: a reader that has seen number N has seen
        every number below N, and the change feed never skips a change that commits late.
        """
        if not self:
            return
        cr = self.env.cr
        cr.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [SEQUENCE])
        cr.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [SEQUENCE, len(self)])
        numbers = sorted(row[0] for row in cr.fetchall())
        cr.execute(
            "UPDATE ksefnet_document AS d SET hm_change_seq = v.seq FROM unnest(%s::int[], %s::int[]) AS v(id, seq) "
            "WHERE d.id = v.id",
            [self.ids, numbers],
        )
        self.invalidate_recordset(["hm_change_seq"])

    def _set_state(self, new_state, **kwargs):
        result = super()._set_state(new_state, **kwargs)
        self._hm_bump()
        return result

    @api.model
    def _create_in_state(self, vals, state, message, reference=None):
        doc = super()._create_in_state(vals, state, message, reference=reference)
        doc._hm_bump()
        return doc
