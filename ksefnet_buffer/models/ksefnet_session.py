"""A KSeF session the buffer opened (online or batch): what KSeF said of it, and when to ask again.

The sending engine polls a session by its status first (``GET /sessions/{ref}``, group sessionMisc) and lists
its invoices (``GET /sessions/{ref}/invoices``, group sessionInvoiceList, the scarcer one) only when the
status shows something new: the number of invoices KSeF finished (``successfulInvoiceCount`` +
``failedInvoiceCount``) grew, the session became final, or a document of it awaits reconciliation.
"""

from datetime import timedelta

from odoo import api, fields, models

#: polling delays while KSeF processes a session: first after 1 s, then growing by half, at most 60 s
POLL_FIRST = 1.0
POLL_GROWTH = 1.5
POLL_MAX = 60.0


class KsefnetSession(models.Model):
    _name = "ksefnet.session"
    _description = "KSeF session"
    _order = "id desc"
    _rec_name = "reference"

    buffer_id = fields.Many2one("ksefnet.buffer", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="buffer_id.company_id", store=True)
    reference = fields.Char("KSeF session", required=True, readonly=True, index=True)
    mode = fields.Selection(
        [("online", "Online session"), ("batch", "Batch session")], required=True, readonly=True
    )
    opened_at = fields.Datetime("Opened on", readonly=True, default=fields.Datetime.now)
    closed = fields.Boolean(
        "Closed", readonly=True, help="The buffer closed the session (no more invoices go in)."
    )
    status_code = fields.Integer("KSeF status", readonly=True)
    status_text = fields.Char("KSeF status description", readonly=True)
    invoice_count = fields.Integer("Invoices", readonly=True)
    finished_count = fields.Integer(
        "Invoices finished by KSeF", readonly=True, help="Accepted or refused, at the last listing."
    )
    next_poll_at = fields.Datetime("Next status check", readonly=True, index=True)
    poll_delay = fields.Float("Seconds between status checks", readonly=True, default=POLL_FIRST)
    poll_count = fields.Integer("Status checks", readonly=True)

    _sql_constraints = [
        ("reference_unique", "unique(buffer_id, reference)", "A KSeF session is recorded once per buffer.")
    ]

    @api.model
    def _record(self, buffer, reference, mode):
        """The record of a session the buffer has just opened (polled at once once it is closed)."""
        session = self.search([("buffer_id", "=", buffer.id), ("reference", "=", reference)], limit=1)
        if session:
            return session
        return self.sudo().create(
            {
                "buffer_id": buffer.id,
                "reference": reference,
                "mode": mode,
                "next_poll_at": fields.Datetime.now(),
            }
        )

    @api.model
    def _for(self, buffer, references):
        """Records of these session references ({reference: session}), created for sessions the buffer knows
        only from its documents (e.g. from before sessions were recorded)."""
        domain = [("buffer_id", "=", buffer.id), ("reference", "in", list(references))]
        found = {s.reference: s for s in self.search(domain)}
        for ref in set(references) - set(found):
            found[ref] = self.sudo().create({"buffer_id": buffer.id, "reference": ref, "mode": "online"})
        return found

    def _is_final(self):
        self.ensure_one()
        return self.status_code == 200 or self.status_code >= 300

    def _polled(self, status, something_new):
        """Record a status answer; poll again soon after news, later and later while nothing changes."""
        self.ensure_one()
        delay = POLL_FIRST if something_new else min(self.poll_delay * POLL_GROWTH, POLL_MAX)
        self.sudo().write(
            {
                "status_code": status.code,
                "status_text": status.description,
                "invoice_count": status.invoice_count or 0,
                "poll_count": self.poll_count + 1,
                "poll_delay": delay,
                "next_poll_at": fields.Datetime.now() + timedelta(seconds=delay),
            }
        )
