"""Is KSeF available? The buffer watches Latarnia (KSeF's status service) and its own recent answers.

The state (``ksef_availability``): available, maintenance, failure, total failure (Latarnia's announcements),
or unreachable (KSeF does not answer this buffer although nothing is announced, or nothing answers at all).
The announcements are shown with the state on the Overview and the buffer; their periods feed the deadlines
of the offline invoices still to send (a failure announced meanwhile restarts their count). When KSeF is
available again, the sender is woken at once: the offline invoices go first.
"""

import logging
from datetime import datetime, timedelta, timezone

from odoo import _, api, fields, models
from odoo.tools.translate import LazyTranslate

from ksefnet_core import latarnia
from ksefnet_core.offline import OfflineError, Outage, OutageKind, send_deadline

from .ksefnet_document import _offline_anchor
from .ksefnet_message import message_field, source_field, template_field

_logger = logging.getLogger(__name__)
_lt = LazyTranslate(__name__)

AVAILABILITY = [
    ("available", "Available"),
    ("maintenance", "Maintenance (announced unavailability)"),
    ("failure", "KSeF failure"),
    ("total_failure", "KSeF total failure"),
    ("unreachable", "Unreachable"),
]
#: the buffer's own answers from KSeF count for this long
RECENT = timedelta(minutes=15)
LATARNIA_TIMEOUT = 10.0
#: a Latarnia status -> the offline mode of an invoice issued now, when HiperMarket lets the buffer decide
MODE_FOR_STATE = {
    "maintenance": "unavailability",
    "failure": "failure",
    "total_failure": "total_failure",
    "unreachable": "offline24",
}


class KsefnetBuffer(models.Model):
    _inherit = "ksefnet.buffer"

    latarnia_url = fields.Char(
        "Latarnia address",
        help="KSeF's status service. Empty: the address KSeF publishes for the environment (TEST, PRODUCTION), "
        "or the local simulator's own.",
    )
    ksef_availability = fields.Selection(
        AVAILABILITY, "KSeF availability", readonly=True, copy=False, default="available"
    )
    ksef_messages = fields.Text("KSeF announcements", readonly=True, copy=False)
    latarnia_status = fields.Char("Latarnia status", readonly=True, copy=False)
    latarnia_checked_at = fields.Datetime("Latarnia checked at", readonly=True, copy=False)
    latarnia_problem = message_field("latarnia_problem", "Latarnia problem", fields.Char)
    latarnia_problem_source = source_field("Latarnia problem (as written)", fields.Char)
    latarnia_problem_template = template_field("Latarnia problem (template)")
    ksef_answered_at = fields.Datetime("KSeF last answered at", readonly=True, copy=False)
    ksef_unanswered_at = fields.Datetime("KSeF last failed to answer at", readonly=True, copy=False)

    def _latarnia_base(self):
        """Latarnia's address for this buffer, or False when there is none to ask."""
        self.ensure_one()
        if self.latarnia_url:
            return self.latarnia_url
        if self.environment == "simulator":
            api = self._environment().api_base
            return api[: -len("/v2")] if api.endswith("/v2") else api
        return latarnia.LATARNIA_URLS.get((self.environment or "").upper(), False)

    def _recent_answers(self, now=None):
        """True: KSeF answered lately, False: it did not, None: nothing tried lately."""
        self.ensure_one()
        now = now or fields.Datetime.now()
        answered = (
            self.ksef_answered_at if self.ksef_answered_at and now - self.ksef_answered_at < RECENT else None
        )
        failed = (
            self.ksef_unanswered_at
            if self.ksef_unanswered_at and now - self.ksef_unanswered_at < RECENT
            else None
        )
        if failed and (not answered or failed >= answered):
            return False
        return True if answered else None

    def _availability_state(self, latarnia_status, answers):
        seen = (
            latarnia.LatarniaStatus(latarnia_status)
            if latarnia_status in latarnia.LATARNIA_STATUSES
            else None
        )
        return latarnia.availability(seen, answers)

    def _watch_ksef(self, commit=True):
        """Read Latarnia for each buffer, combine it with the buffer's own answers, record the state and the
        announcements, update the offline deadlines; wake the sender when KSeF is back. ``commit``: each
        buffer's record in a short transaction of its own (the scheduled action); False in a request, which
        Odoo commits (and retries after a concurrent update) itself."""
        for buffer in self:
            base = buffer._latarnia_base()
            status, messages, problem = False, [], False
            if base:
                client = latarnia.LatarniaClient(base, timeout=LATARNIA_TIMEOUT)
                try:
                    status = client.status().status
                    messages = client.messages()
                except latarnia.LatarniaError as exc:
                    # its English detail stays in the log
                    problem = (
                        _lt(
                            "Latarnia, KSeF's status service, cannot be reached; the buffer asks again later."
                        )
                        if exc.unreachable
                        else _lt(
                            "Latarnia, KSeF's status service, answered something the buffer cannot read."
                        )
                    )
                    _logger.info("Latarnia for buffer %s: %s", buffer.nip, exc)
                finally:
                    client.close()
            else:
                problem = _lt("KSeF publishes no Latarnia address for this environment.")
            buffer._record_availability(status, messages, problem, commit=commit)

    def _record_availability(self, status, messages, problem=False, commit=True):
        self.ensure_one()
        before = self.ksef_availability
        answers = self._recent_answers()
        if status == latarnia.AVAILABLE and self.latarnia_status not in (False, latarnia.AVAILABLE):
            answers = None  # the announced outage is over: what KSeF answered during it no longer counts
        state = self._availability_state(status, answers)
        values = {
            "ksef_availability": state,
            "latarnia_status": status or False,
            "latarnia_checked_at": fields.Datetime.now(),
            "latarnia_problem": problem or False,
            "ksef_messages": _describe_messages(messages, status) or False,
        }
        if commit:
            self._row_write("availability", lambda: self.sudo().write(values) and self.env.flush_all())
        else:
            self.sudo().write(values)
        outages = [o for o in (m.outage() for m in messages) if o is not None]
        if outages:
            self.env["ksefnet.document"]._update_offline_deadlines(self, outages)
            if commit:
                self._commit("offline_deadlines")
        if state == "available" and before != "available":
            _logger.info("KSeF is available again for buffer %s: sending", self.nip)
            now = fields.Datetime.now()
            # what failed while KSeF was down is retried now rather than after its growing delay
            retrying = (
                self.env["ksefnet.document"]
                .sudo()
                .search([("buffer_id", "=", self.id), ("state", "=", "error"), ("next_retry_at", ">", now)])
            )
            retrying._engine_write({"next_retry_at": now})
            self.sudo().write({"engine_next_run_at": now})
            if commit:
                self._commit("ksef_back")
            self.env["ksefnet.sender"]._trigger()
        return state

    def _record_answers(self, answered):
        """The sender's experience in a round (True: KSeF answered, False: it did not): the values to write on
        the buffer with its report, including the state it gives."""
        self.ensure_one()
        now = fields.Datetime.now()
        values = {"ksef_answered_at" if answered else "ksef_unanswered_at": now}
        state = self._availability_state(self.latarnia_status, bool(answered))
        if state != self.ksef_availability:
            values["ksef_availability"] = state
        return values

    @api.model
    def _cron_watch_ksef(self):
        buffers = self.search([("active", "=", True)])
        buffers._watch_ksef()
        return len(buffers)

    def action_check_ksef(self):
        self.check_access("write")
        self._watch_ksef(commit=False)
        state = dict(self._fields["ksef_availability"]._description_selection(self.env))
        return self._notify(
            _("KSeF availability"),
            "; ".join(f"{b.name}: {state.get(b.ksef_availability, '')}" for b in self),
            "success" if all(b.ksef_availability == "available" for b in self) else "warning",
        )


class KsefnetDocument(models.Model):
    _inherit = "ksefnet.document"

    @api.model
    def _update_offline_deadlines(self, buffer, outages):
        """Recompute the deadlines of ``buffer``'s offline invoices not yet in KSeF from the announced
        ``outages`` (Latarnia's messages): a failure announced before a deadline passed moves it, a total
        failure lifts it. The outage an unavailability or failure invoice was issued in, when not announced,
        is taken to end at once (the earliest deadline), as when it was submitted."""
        docs = self.sudo().search(
            [
                ("buffer_id", "=", buffer.id),
                ("offline_mode", "in", ("offline24", "unavailability", "failure")),
                ("state", "!=", "sent"),
            ]
        )
        now = fields.Datetime.now().replace(tzinfo=timezone.utc)
        for doc in docs:
            issued = _offline_anchor(
                (doc.offline_issued_at or doc.create_date).replace(tzinfo=timezone.utc), doc.issue_date
            )
            known = list(outages)
            if doc.offline_mode != "offline24":
                kind = OutageKind(doc.offline_mode)
                if not any(o.kind is kind and o.covers(issued) for o in known):
                    known.append(Outage(kind, issued, issued))
            try:
                deadline = send_deadline(doc.offline_mode, issued, known, now=now)
            except OfflineError as exc:
                _logger.warning("offline deadline of document %s not updated: %s", doc.id, exc)
                continue
            until = deadline.until.replace(tzinfo=None) if deadline.until else False
            if until != doc.offline_deadline:
                doc._engine_write({"offline_deadline": until})


def _describe_messages(messages, status):
    """The open announcements (newest first) as lines a person reads; at most 10."""
    lines = []
    for message in sorted(messages, key=lambda m: m.published or m.start or m.end or _EPOCH, reverse=True):
        if message.end and status == latarnia.AVAILABLE:
            continue
        when = ""
        if message.start:
            when = message.start.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
            if message.end:
                when += " - " + message.end.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
            when = f" ({when} UTC)"
        text = f"{message.title}{when}"
        if message.text:
            text += f": {message.text}"
        lines.append(text)
    return "\n".join(lines[:10])


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
