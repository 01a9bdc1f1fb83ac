"""The KSeF document, its five statuses, the allowed transitions and the retry policy, in one place.

Statuses (one meaning each):

* ``waiting``: accepted into the buffer, validated, queued for KSeF;
* ``processing``: handed to KSeF, final status not known yet;
* ``sent``: KSeF accepted the invoice and its number is known (the UPO, KSeF's receipt, is a separate step
  with its own status, ``upo_state``: it usually arrives seconds later);
* ``failure``: KSeF rejected the invoice: a person must correct and resubmit it;
* ``error``: a technical problem (network, KSeF unavailable, authentication, rate limit); retried automatically
  with growing delays, then left for a person.

Only :meth:`KsefnetDocument._set_state` (one change for many documents) and
:meth:`KsefnetDocument._set_states` (a change with values of its own per document) change ``state``; they
check :data:`TRANSITIONS`, append the events to the documents' log in the same transaction and call
:meth:`KsefnetDocument._on_engine_change`, the one hook for "something HiperMarket reads has changed".
"""

import logging
import random
from datetime import timedelta

from markupsafe import Markup
from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools.translate import LazyTranslate

from ksefnet_core import fa3, visualise
from ksefnet_core.certificates import CredentialError
from ksefnet_core.errors import (
    KsefApiError,
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefError,
    KsefForbidden,
    KsefGone,
    KsefOperationFailed,
    KsefProtocolError,
    KsefRateLimited,
    KsefServerError,
    KsefStillInProgress,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from ksefnet_core.throttle import ThrottleDeferred

from .ksefnet_bulk import (
    compress_fast,
    drop_outdated_indexes,
    insert_records,
    keep_statistics,
    reserve_many,
    update_records,
)
from .ksefnet_errors import FORBIDDEN_REASONS, credential_reason, invoice_issues_part, issues_reason
from .ksefnet_message import Label, message_field, render, source_field, template_field, user_error

_logger = logging.getLogger(__name__)
_lt = LazyTranslate(__name__)

STATES = [
    ("waiting", "Waiting"),
    ("processing", "Processing"),
    ("sent", "Sent"),
    ("failure", "Failure"),
    ("error", "Error"),
]
#: allowed transitions: from -> to
TRANSITIONS = {
    False: {"waiting", "sent"},  # creation: submitted (waiting) or downloaded from KSeF (sent)
    "waiting": {"processing", "error"},
    "processing": {"sent", "failure", "error"},
    "error": {"waiting", "processing"},
    "failure": {"waiting"},
    "sent": set(),
}
UPO_STATES = [("pending", "Awaiting UPO"), ("stored", "UPO stored")]
#: the offline modes of tryby-offline.md (ksefnet_core.offline.OfflineMode)
OFFLINE_MODES = [
    ("offline24", "Offline24 (the seller's choice)"),
    ("unavailability", "Announced KSeF unavailability"),
    ("failure", "Announced KSeF failure"),
    ("total_failure", "Total KSeF failure"),
]
#: a deadline this close counts as approaching (the Overview, the filter, the sender's order)
DEADLINE_WARNING = timedelta(hours=24)
#: what a person may change on a document (other addons add theirs in _user_writable_fields); everything else
#: (status, KSeF number, hashes, references, UPO, retry fields, amounts) changes only through the buffer's own
#: methods, which write as superuser. A context flag would not do: RPC callers set the context themselves.
USER_WRITABLE_FIELDS = frozenset({"active"})
INVOICE_KINDS = [
    ("VAT", "VAT"),
    ("KOR", "KOR (correction)"),
    ("ZAL", "ZAL (advance)"),
    ("ROZ", "ROZ (settlement)"),
    ("UPR", "UPR (simplified)"),
    ("KOR_ZAL", "KOR_ZAL"),
    ("KOR_ROZ", "KOR_ROZ"),
]
#: retry delays after technical errors: 1, 2, 4 ... minutes, at most 6 hours, with +-20 % jitter
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=6)


def retry_delay(attempt, retry_after=None):
    """Delay before the next automatic attempt: KSeF's Retry-After when given, else exponential backoff."""
    if retry_after:
        return timedelta(seconds=float(retry_after))
    delay = min(RETRY_BASE * (2 ** max(0, attempt - 1)), RETRY_MAX)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


def describe_ksef_error(env, exc):
    """What went wrong, for a person, as a message part shown in the reader's language (never secrets).

    The core's exception texts are English: each exception class (and KSeF's 403 reason code, a certificate
    problem's code) has a translatable template here instead; what KSeF itself said (its descriptions are
    Polish) goes in as it is. Render the part with :func:`~.ksefnet_message.render` where text is needed."""
    own = getattr(exc, "ksefnet_message", None)  # an error the addons raised with a template (user_error)
    if own is not None:
        return own
    if isinstance(exc, ThrottleDeferred):
        return _lt(
            "KSeF's request limit is reached for now; the buffer continues in %(s)s seconds.", s=int(exc.wait)
        )
    if isinstance(exc, CredentialError):
        return _lt("The certificate cannot be used: %(reason)s.", reason=credential_reason(exc))
    if not isinstance(exc, KsefError):
        if isinstance(exc, UserError | ValidationError):
            return exc.args[0] if exc.args else str(exc)  # raised in the language of whoever raised it
        if isinstance(exc, ValueError):
            _logger.warning("KSeF settings cannot be used: %s", exc)
            return _lt("The buffer's KSeF settings cannot be used; the details are in the server log.")
        return _lt(
            "An unexpected problem (%(kind)s) stopped the step; the details are in the server log.",
            kind=type(exc).__name__,
        )
    said = ksef_said(exc)
    if isinstance(exc, KsefRateLimited):
        return _lt(
            "KSeF refused the request because of its request limits; retrying after %(s)s seconds.",
            s=int(exc.retry_after or 0),
        )
    if isinstance(exc, KsefAuthenticationFailed):
        return _lt(
            "KSeF refused the authentication (code %(code)s): %(text)s. Check the buffer's token or "
            "certificate and the permissions granted in KSeF.",
            code=exc.status_code,
            text=said or NO_DESCRIPTION,
        )
    if isinstance(exc, KsefUnauthorized):
        return _lt("KSeF did not accept the buffer's session (HTTP 401); the buffer will authenticate again.")
    if isinstance(exc, KsefForbidden):
        reason = FORBIDDEN_REASONS.get(exc.reason_code) or said or exc.reason_code or NO_DESCRIPTION
        return _lt(
            "KSeF says the buffer lacks permissions for this operation (%(reason)s). Grant them in KSeF to "
            "the token or certificate used by the buffer.",
            reason=reason,
        )
    if isinstance(exc, KsefTimeoutError):
        return _lt(
            "KSeF did not answer in time; the buffer will check what KSeF received before sending again."
        )
    if isinstance(exc, KsefTransportError):
        return _lt("KSeF cannot be reached (network problem). The buffer will retry.")
    if isinstance(exc, KsefServerError):
        return _lt(
            "KSeF is unavailable or failed (HTTP %(status)s). The buffer will retry.", status=exc.http_status
        )
    if isinstance(exc, KsefProtocolError):
        return _lt("KSeF's answer could not be read; the buffer will retry.")
    if isinstance(exc, KsefBadRequest):
        return _lt("KSeF refused the request: %(text)s", text=said or _lt("HTTP %(status)s", status=400))
    if isinstance(exc, KsefGone):
        return _lt("KSeF no longer keeps the status of this operation (HTTP 410).")
    if isinstance(exc, KsefStillInProgress):
        return _lt(
            "KSeF is still processing the operation %(ref)s; the buffer will check again later.",
            ref=exc.reference_number or "-",
        )
    if isinstance(exc, KsefOperationFailed):
        return _lt(
            "KSeF ended the operation %(ref)s with status %(code)s: %(text)s",
            ref=exc.reference_number or "-",
            code=exc.status_code,
            text=said or NO_DESCRIPTION,
        )
    if isinstance(exc, KsefApiError):
        return _lt(
            "KSeF answered with HTTP %(status)s: %(text)s",
            status=exc.http_status,
            text=said or NO_DESCRIPTION,
        )
    # the client's own refusals (no access token, no open session): nothing KSeF said
    return _lt(
        "The connection to KSeF was not ready (authentication or session); the buffer starts it again."
    )


NO_DESCRIPTION = _lt("no description")


def ksef_said(exc):
    """What KSeF itself said about ``exc`` (codes with its descriptions, else its text), or "" when nothing."""
    if exc.errors:
        return "; ".join(
            (f"{e.code}: {e.description}" if e.code is not None else e.description)
            + (f" ({', '.join(e.details)})" if e.details else "")
            for e in exc.errors
        )
    return exc.ksef_text or ""


class KsefnetDocument(models.Model):
    _name = "ksefnet.document"
    _inherit = ["ksefnet.message.mixin"]
    _description = "KSeF document"
    _order = "id desc"
    _rec_name = "display_name"
    #: what a user's quick search (name_search, many2one fields) looks in: indexed columns only
    _rec_names_search = ["invoice_number", "ksef_number", "external_ref"]
    _check_company_auto = True

    # not indexed on its own: the unique (buffer, KSeF number) and (buffer, source, reference) indexes lead
    # with it and serve every search by buffer; one index less to maintain on each INSERT and UPDATE
    buffer_id = fields.Many2one("ksefnet.buffer", required=True, ondelete="restrict", check_company=True)
    company_id = fields.Many2one(related="buffer_id.company_id", store=True, index=True)
    direction = fields.Selection(
        [("sales", "Sales"), ("purchase", "Purchase")],
        "Direction",
        required=True,
        default="sales",  # not indexed: two values, always asked for with the buffer or the state
    )
    origin = fields.Selection(
        [("submitted", "Submitted to the buffer"), ("downloaded", "Downloaded from KSeF")],
        "Origin",
        required=True,
        default="submitted",
    )
    own_issued = fields.Boolean(
        "Own-issued", compute="_compute_own_issued", store=True, help="The buffer's own NIP is the seller."
    )
    state = fields.Selection(STATES, "Status", required=True, readonly=True, index=True, copy=False)
    active = fields.Boolean(default=True, help="Archived documents are kept, only hidden from the lists.")

    # the invoice itself
    xml_attachment_id = fields.Many2one("ir.attachment", string="Invoice XML", readonly=True, copy=False)
    xml_sha256 = fields.Char("XML SHA-256 (Base64)", readonly=True, copy=False)  # compared, never searched
    xml_size = fields.Integer("XML size (bytes)", readonly=True)
    form_code = fields.Char("Form", readonly=True)
    invoice_kind = fields.Selection(INVOICE_KINDS, "Invoice kind", readonly=True)
    invoice_number = fields.Char("Invoice number", readonly=True, index="trigram")
    issue_date = fields.Date("Issue date", readonly=True)
    seller_nip = fields.Char("Seller NIP", readonly=True, index=True)
    seller_name = fields.Char("Seller", readonly=True)
    buyer_nip = fields.Char("Buyer NIP", readonly=True, index=True)
    buyer_identifier = fields.Char(
        "Buyer identifier", readonly=True, help="Buyer identifier other than a Polish NIP."
    )
    buyer_name = fields.Char("Buyer", readonly=True)
    currency_code = fields.Char("Currency", readonly=True, size=3)
    amount_net = fields.Float("Net", readonly=True, digits=(16, 2))
    amount_vat = fields.Float("VAT", readonly=True, digits=(16, 2))
    amount_gross = fields.Float("Gross", readonly=True, digits=(16, 2))

    # KSeF
    ksef_number = fields.Char("KSeF number", readonly=True, index="trigram", copy=False)
    ksef_session_ref = fields.Char("KSeF session", readonly=True, copy=False)
    ksef_invoice_ref = fields.Char("KSeF invoice reference", readonly=True, copy=False)
    ksef_acquisition_date = fields.Datetime("KSeF number assigned on", readonly=True, copy=False)
    ksef_storage_date = fields.Datetime("Stored in KSeF on", readonly=True, copy=False)
    ksef_send_mode = fields.Selection(
        [("online", "Online session"), ("batch", "Batch session")], "Sending mode", readonly=True
    )
    ksef_ambiguous = fields.Boolean(
        "Awaiting reconciliation",
        readonly=True,
        copy=False,
        help="The invoice was sent but KSeF's answer did not arrive: the buffer checks what KSeF received "
        "before it sends anything again.",
    )
    upo_attachment_id = fields.Many2one("ir.attachment", string="UPO", readonly=True, copy=False)
    upo_available = fields.Boolean(compute="_compute_upo_available")
    upo_state = fields.Selection(
        UPO_STATES,
        "UPO status",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="KSeF's official receipt (UPO) of a sent invoice is fetched after its KSeF number is known.",
    )
    upo_attempts = fields.Integer("UPO attempts", readonly=True, copy=False)
    upo_next_try_at = fields.Datetime("Next UPO attempt", readonly=True, copy=False)
    upo_last_error = message_field("upo_last_error", "Last UPO problem")
    upo_last_error_source = source_field("Last UPO problem (as written)")
    upo_last_error_template = template_field("Last UPO problem (template)")
    last_code = fields.Integer("Last KSeF code", readonly=True, copy=False)
    last_message = message_field("last_message", "Last message")
    last_message_source = source_field("Last message (as written)")
    last_message_template = template_field("Last message (template)")
    retry_count = fields.Integer("Automatic retries so far", readonly=True, copy=False)
    next_retry_at = fields.Datetime("Next automatic retry", readonly=True, copy=False, index="btree_not_null")
    needs_attention = fields.Boolean(
        "Needs attention",
        readonly=True,
        copy=False,
        help="Automatic retries are exhausted: a person should look at it.",
    )

    # issued offline (tryby-offline.md): sent with offlineMode true by the deadline
    offline_mode = fields.Selection(
        OFFLINE_MODES, "Offline mode", readonly=True, copy=False, index="btree_not_null"
    )
    offline_reason = fields.Char("Offline reason", readonly=True, copy=False)
    offline_issued_at = fields.Datetime("Issued offline at", readonly=True, copy=False)
    offline_deadline = fields.Datetime(
        "Send to KSeF before",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="The end of the last day on which the offline invoice may reach KSeF (Polish working days). Empty "
        "for a total failure: no obligation to send.",
    )
    offline_problem = message_field(
        "offline_problem",
        "Offline problem",
        help="Why the offline invoice lacks something it should have, e.g. KOD II when the Offline certificate "
        "has expired.",
    )
    offline_problem_source = source_field("Offline problem (as written)")
    offline_problem_template = template_field("Offline problem (template)")
    offline_deadline_near = fields.Boolean(
        "Deadline near or passed",
        compute="_compute_offline_deadline_near",
        search="_search_offline_deadline_near",
        help="An offline invoice not yet in KSeF whose deadline is less than a day away or has passed.",
    )

    # where it came from
    external_ref = fields.Char("External reference", readonly=True, index="trigram", copy=False)
    source = fields.Char(
        "Source", readonly=True, help="The system that submitted the invoice, e.g. HiperMarket."
    )
    shop_code = fields.Char("Shop code", readonly=True, index=True)

    event_ids = fields.One2many("ksefnet.document.event", "document_id", string="History", readonly=True)

    # what a person reads: rendered from the XML each time (never stored), for those who may read the document
    invoice_html = fields.Html(
        "Readable invoice",
        compute="_compute_invoice_html",
        help="The invoice as a person reads it (with its KSeF verification QR code), rendered from its XML.",
    )
    upo_html = fields.Html(
        "Readable UPO", compute="_compute_upo_html", help="KSeF's receipt (UPO) as a person reads it."
    )

    _sql_constraints = [
        (
            "ksef_number_unique",
            "unique(buffer_id, ksef_number)",
            "This KSeF number is already in the buffer: a document is stored once.",
        ),
        (
            "external_ref_unique",
            "unique(buffer_id, source, external_ref)",
            "A document with this external reference already exists in the buffer.",
        ),
    ]

    def init(self):
        super().init()
        drop_outdated_indexes(self)  # an upgrade leaves an index a field no longer asks for
        compress_fast(self)  # the messages of every row (and the addons' columns: init runs again for them)

    @api.depends("invoice_number", "ksef_number", "direction")
    def _compute_display_name(self):
        for doc in self:
            doc.display_name = doc.invoice_number or doc.ksef_number or _("Document %(id)s", id=doc.id)

    @api.depends("seller_nip", "buffer_id.nip")
    def _compute_own_issued(self):
        for doc in self:
            doc.own_issued = _own_issued(doc.seller_nip, doc.buffer_id)

    @api.depends("offline_deadline", "state")
    def _compute_offline_deadline_near(self):
        limit = fields.Datetime.now() + DEADLINE_WARNING
        for doc in self:
            doc.offline_deadline_near = bool(
                doc.offline_deadline and doc.state != "sent" and doc.offline_deadline <= limit
            )

    def _search_offline_deadline_near(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(_("This filter supports only 'is set' and 'is not set'."))
        near = [
            ("offline_deadline", "!=", False),
            ("offline_deadline", "<=", fields.Datetime.now() + DEADLINE_WARNING),
            ("state", "!=", "sent"),
        ]
        return near if (operator == "=") == value else ["!", "&", "&", *near]

    def _compute_upo_available(self):
        for doc in self:
            doc.upo_available = bool(doc.upo_attachment_id)

    @api.depends(
        "xml_attachment_id", "ksef_number", "offline_mode", "buffer_id.environment", "buffer_id.api_url"
    )
    @api.depends_context("lang", "uid")  # per user: the rendering is only computed for those who may read it
    def _compute_invoice_html(self):
        self.check_access("read")  # the rendering is the document's content: the same rights and rules
        for doc in self:
            xml = doc._xml() if doc.xml_attachment_id else None
            if not xml:
                doc.invoice_html = False
                continue
            try:
                environment = doc.buffer_id._environment()
            except ValueError:  # a custom environment without a usable URL: no QR code, the rest is shown
                environment = None
            try:
                # Markup: every value from the XML is escaped by the renderer (ksefnet_core/tests/test_visualise.py)
                doc.invoice_html = Markup(  # noqa: S704
                    visualise.invoice_html(
                        xml,
                        ksef_number=doc.ksef_number or None,
                        environment=environment,
                        certificate_url=doc._kod2_url(xml, environment),
                    )
                )
            except visualise.VisualisationError as exc:
                reason = render(self.env, issues_reason(exc.issues))
                doc.invoice_html = _cannot_show(
                    _("The invoice cannot be displayed: %(reason)s", reason=reason)
                )

    def _kod2_url(self, xml, environment):
        """KOD II of an offline invoice, when the buffer can sign it (else None: the reason is on the document
        as its offline problem once HiperMarket asked for the codes)."""
        self.ensure_one()
        if not self.offline_mode or self.offline_mode == "total_failure" or environment is None:
            return None
        from ksefnet_core.offline import kod2_url

        try:
            credential = self.buffer_id._offline_credential()
        except UserError:
            return None
        return kod2_url(environment, self.buffer_id.nip, xml, credential)

    @api.depends("upo_attachment_id")
    @api.depends_context("lang", "uid")  # per user: the rendering is only computed for those who may read it
    def _compute_upo_html(self):
        self.check_access("read")
        for doc in self:
            upo = doc.sudo().upo_attachment_id.raw if doc.upo_attachment_id else None
            if not upo:
                doc.upo_html = False
                continue
            try:
                doc.upo_html = Markup(visualise.upo_html(upo))  # noqa: S704 - escaped by the renderer
            except visualise.VisualisationError as exc:
                reason = render(self.env, issues_reason(exc.issues))
                doc.upo_html = _cannot_show(_("The UPO cannot be displayed: %(reason)s", reason=reason))

    # -- the one place where state changes ------------------------------------------------------------------
    def _set_state(self, new_state, *, code=None, message=None, reference=None, **values):
        """Move to ``new_state`` (checked against TRANSITIONS) and log the event; extra ``values`` are written.

        Writing the same state again only logs the event (e.g. a retry that failed the same way).
        """
        if not self:
            return True
        self._check_transition(new_state)
        vals = dict(values, state=new_state)
        if code is not None:
            vals["last_code"] = code
        if message is not None:
            vals["last_message"] = message
        if new_state != "error":
            vals.setdefault("next_retry_at", False)
            vals.setdefault("needs_attention", False)
        before = {doc.id: doc.state for doc in self}
        super(KsefnetDocument, self.sudo()).write(vals)
        self._log_events([(doc.id, before[doc.id], new_state, code, message, reference) for doc in self])
        self._on_engine_change()
        return True

    def _set_states(self, new_state, rows):
        """Move many documents to ``new_state`` at once, each with values of its own.

        ``rows``: {document id: {"code", "message", "reference", and stored column values}}; every row has the
        same keys. One UPDATE and one INSERT of events whatever the count: the engine records thousands of
        KSeF answers per step.
        """
        docs = self.browse(list(rows))
        if not docs:
            return True
        docs._check_transition(new_state)
        before = {doc.id: doc.state for doc in docs}
        table = []
        for doc_id, row in rows.items():
            record = {k: v for k, v in row.items() if k not in ("code", "message", "reference")}
            record.update(state=new_state, last_code=row.get("code") or 0)
            record.update(self._message_columns("last_message", row.get("message")))
            if new_state != "error":
                record.setdefault("next_retry_at", None)
                record.setdefault("needs_attention", False)
            table.append((doc_id, record))
        update_records(self.sudo(), table)
        docs.invalidate_recordset(["last_message"])  # shown from the columns just written
        self._log_events(
            [
                (doc_id, before[doc_id], new_state, row.get("code"), row.get("message"), row.get("reference"))
                for doc_id, row in rows.items()
            ]
        )
        docs._on_engine_change()
        return True

    def _check_transition(self, new_state):
        for doc in self:
            old = doc.state
            if old != new_state and new_state not in TRANSITIONS.get(old, set()):
                raise ValidationError(
                    _(
                        "A document cannot go from %(old)s to %(new)s.",
                        old=doc._state_label(old),
                        new=doc._state_label(new_state),
                    )
                )

    @api.model
    def _log_events(self, entries, companies=None, ids=None):
        """Append (document id, from state, to state, KSeF code, message, reference) entries to the log.

        A message is a message part (``_lt(...)``, see ksefnet_message.py): stored as its template and
        parameters, it reads in each reader's language. One INSERT for all entries (the engine logs thousands
        at a time); a message given for many entries is stored once in memory, not converted per entry.
        ``companies``: {document id: company id} when the caller knows them (else they are read); ``ids``: the
        events' ids when reserved already (ksefnet_bulk.reserve_many), one per entry."""
        if not entries:
            return
        Event = self.env["ksefnet.document.event"].sudo()
        if companies is None:
            companies = {doc.id: doc.company_id.id for doc in self.sudo().browse({e[0] for e in entries})}
        columns = {}
        now = fields.Datetime.now()
        rows = []
        for doc_id, old, new, code, message, reference in entries:
            key = id(message)
            if key not in columns:
                columns[key] = (
                    message,
                    Event._message_columns("message", message),
                )  # keeps ``message`` alive
            rows.append(
                {
                    "document_id": doc_id,
                    "company_id": companies[doc_id],
                    "date": now,
                    "user_id": self.env.uid,
                    "from_state": old or False,
                    "to_state": new,
                    "ksef_code": code or 0,
                    "reference": reference or False,
                    **columns[key][1],
                }
            )
        if ids is not None:
            for row, event_id in zip(rows, ids, strict=True):
                row["id"] = event_id
        insert_records(Event, rows)

    def _on_engine_change(self):
        """Hook: the engine changed what an integration reads of these documents (status, KSeF number,
        UPO). The HiperMarket addon numbers them for its change feed here."""
        return True

    def _engine_write(self, vals):
        """Write fields that only the engine owns (KSeF number, references, UPO, retry fields)."""
        return self.sudo().write(vals)

    def _state_label(self, state):
        """A status in the user's language (selection labels are translated, the STATES constant is not)."""
        return dict(self._fields["state"]._description_selection(self.env)).get(state, state or "-")

    @api.model
    def _create_in_state(self, vals, state, message, reference=None, xmls=None, invoices=None):
        """Create documents (``vals``: one dict or a list of stored values, with ``buffer_id``) in an initial
        state allowed by TRANSITIONS and log their first event. ``xmls``: the invoices' XML, one (bytes, file
        name) per document, stored as their attachments. ``invoices``: the parsed invoices, one per document
        (None: unreadable), for :meth:`_initial_columns`. One INSERT per table whatever the count, and each
        document row written once (ksefnet_bulk): the intake stores thousands a minute."""
        if state not in TRANSITIONS[False]:
            raise ValidationError(_("A document cannot start as %(state)s.", state=state))
        vals_list = vals if isinstance(vals, list) else [vals]
        buffers = {
            b.id: b for b in self.env["ksefnet.buffer"].sudo().browse({v["buffer_id"] for v in vals_list})
        }
        rows = []
        for v in vals_list:
            buffer = buffers[v["buffer_id"]]
            row = self._message_vals(dict(v, state=state))
            row.setdefault("company_id", buffer.company_id.id)
            row.setdefault("own_issued", _own_issued(row.get("seller_nip"), buffer))
            rows.append(row)
        event_ids = None
        if xmls:  # the ids of the documents, their attachments and first events at once
            ids, attachment_ids, event_ids = reserve_many(
                [
                    (self, len(rows)),
                    (self.env["ir.attachment"], len(rows)),
                    (self.env["ksefnet.document.event"], len(rows)),
                ]
            )
            attachments = self._insert_attachments(
                ids, [r["company_id"] for r in rows], [x[0] for x in xmls], [x[1] for x in xmls],
                ids=attachment_ids,
            )  # fmt: skip
            for row, doc_id, attachment in zip(rows, ids, attachments, strict=True):
                row.update(id=doc_id, xml_attachment_id=attachment.id)
        self._initial_columns(rows, invoices)
        docs = insert_records(self.sudo(), rows, cached=self._read_after_insert())
        keep_statistics(self, len(rows))  # see _known_refs: a first bulk load would otherwise slow down
        self._log_events(
            [(doc.id, False, state, None, message, reference) for doc in docs],
            companies={doc.id: row["company_id"] for doc, row in zip(docs, rows, strict=True)},
            ids=event_ids,
        )
        return docs

    @api.model
    def _initial_columns(self, rows, invoices=None):
        """Hook: add stored values to the rows of new documents before they are inserted (other addons set
        their own columns here rather than updating the rows afterwards). ``invoices``: the parsed invoice of
        each row (None: unreadable), or None when the caller has not parsed them."""
        return rows

    @api.model
    def _read_after_insert(self):
        """Hook: fields of new documents that are read right after they are inserted (by ``_on_arrival``, or
        by a channel answering its caller): their values as written are put into the cache instead of being
        read back by a query (ksefnet_bulk.insert_records' ``cached``)."""
        return ("state",)

    def _user_writable_fields(self):
        """The fields a user (not the buffer itself) may write, if the record rules let them write at all."""
        return set(USER_WRITABLE_FIELDS)

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            raise AccessError(
                _("KSeF documents are created by submitting an invoice or by downloading it from KSeF.")
            )
        return super().create(vals_list)

    def write(self, vals):
        if (
            "active" in vals
            and not vals["active"]
            and any(d.state in ("waiting", "processing") for d in self)
        ):
            raise UserError(_("A document on its way to KSeF (waiting or processing) cannot be archived."))
        if not self.env.su:
            protected = sorted(set(vals) - self._user_writable_fields())
            if protected:
                labels = ", ".join(self._fields[f].get_description(self.env)["string"] if f in self._fields
                                   else f for f in protected)  # fmt: skip
                raise AccessError(
                    _(
                        "These fields of a KSeF document change only through the buffer: %(fields)s.",
                        fields=labels,
                    )
                )
        return super().write(vals)

    def unlink(self):
        """A document KSeF knows (numbered, sent, or downloaded) never disappears: archive it instead."""
        self.check_access("unlink")  # who may not delete at all hears that first
        kept = self.filtered(lambda d: d.ksef_number or d.ksef_session_ref or d.origin == "downloaded")
        if kept:
            raise UserError(
                _(
                    "%(name)s is known to KSeF and cannot be deleted; archive it instead.",
                    name=kept[0].display_name,
                )
            )
        return super().unlink()

    # -- policy: what a failure means -------------------------------------------------------------------
    def _mark_error(self, exc, *, reference=None, attention=False, message=None):
        """A technical problem: ``error``, retried automatically later (KSeF's Retry-After, else backoff).

        ``attention``: no automatic retry helps (KSeF refused the credentials or the whole request): the
        documents wait for a person, who queues them again once the cause is fixed. ``message``: what to
        record (a message part), when not the description of ``exc``."""
        now = fields.Datetime.now()
        message = message or describe_ksef_error(self.env, exc)
        retry_after = getattr(exc, "retry_after", None) or getattr(exc, "wait", None)
        code = getattr(exc, "code", None) or getattr(exc, "http_status", None)
        for doc in self:
            attempt = doc.retry_count + 1
            exhausted = attention or attempt > doc.buffer_id.max_retries
            doc._set_state(
                "error",
                code=code if isinstance(code, int) else 0,
                message=message,
                reference=reference,
                retry_count=attempt,
                next_retry_at=False if exhausted else now + retry_delay(attempt, retry_after),
                needs_attention=exhausted,
            )

    def _defer(self, exc):
        """Rate limits reached on our side: keep the document where it is and come back later."""
        wait = timedelta(seconds=getattr(exc, "retry_after", None) or getattr(exc, "wait", None) or 60)
        self._engine_write({"next_retry_at": fields.Datetime.now() + wait})

    # -- creating documents -----------------------------------------------------------------------------
    @api.model
    def _values_from_invoice(self, invoice):
        return fa3.document_fields(invoice)

    @api.model
    def _attach_many(self, docs, datas, names, mimetype="application/xml"):
        """One attachment per document (in order), created at once."""
        return self._insert_attachments(docs.ids, [d.company_id.id for d in docs], datas, names, mimetype)

    @api.model
    def _insert_attachments(self, doc_ids, company_ids, datas, names, mimetype="application/xml", ids=None):
        """Attachments of documents ``doc_ids`` (in order) in one INSERT: each content is stored where Odoo
        stores attachments (filestore or database, by ir.attachment's own methods). ``ids``: the attachments'
        ids when reserved already (ksefnet_bulk.reserve_many)."""
        Attachment = self.env["ir.attachment"].sudo()
        if not doc_ids:
            return Attachment
        # Before any file is written: the filestore's garbage collector (ir.attachment._gc_file_store, in the
        # daily auto-vacuum) deletes files it finds in its checklist that no attachment row refers to, under
        # a SHARE lock on ir_attachment. A file written before this transaction holds a lock that conflicts
        # with it (ROW EXCLUSIVE, as the INSERT below takes anyway) could be deleted before its row exists,
        # and the invoice sent as an empty file. With the lock, the collector waits for this commit.
        self.env.cr.execute("LOCK TABLE ir_attachment IN ROW EXCLUSIVE MODE")
        # what ir.attachment's create decides of a content type (e.g. XML kept as plain text for whoever may
        # not edit views), decided once for the batch
        mimetype = Attachment._check_contents({"mimetype": mimetype, "name": names[0]})["mimetype"]
        rows = []
        for doc_id, company_id, data, name in zip(doc_ids, company_ids, datas, names, strict=True):
            values = Attachment._get_datas_related_values(data, mimetype)
            values.update(
                name=name,
                mimetype=mimetype,
                type="binary",
                res_model=self._name,
                res_id=doc_id,
                company_id=company_id,
            )
            rows.append(values)
        if ids is not None:
            for row, attachment_id in zip(rows, ids, strict=True):
                row["id"] = attachment_id
        return insert_records(Attachment, rows)

    # -- the one submission service (HiperMarket's API and any other channel are adapters of it) -----------
    @api.model
    def _known_refs(self, buffer, source, refs):
        """{external reference: document} of these references in ``buffer`` for ``source`` (archived too),
        in one query."""
        refs = list(dict.fromkeys(refs))
        if not refs:
            return {}
        self.flush_model(["buffer_id", "source", "external_ref"])
        # One lookup of the unique index per reference: asked for "external_ref IN (...)", the planner
        # prefers the trigram index (for searching by reference, slow for equality: 100 references of 3 000
        # documents took 190 ms). Until the table is analysed it also believes every index finds one row and
        # may scan the whole buffer instead, so _create_in_state keeps the statistics (keep_statistics):
        # otherwise each batch of a first bulk load would cost more than the one before.
        self.env.cr.execute(
            """
            SELECT d.id, d.external_ref
              FROM unnest(%s::varchar[]) AS r(ref)
              JOIN LATERAL (
                   SELECT id, external_ref FROM ksefnet_document
                    WHERE buffer_id = %s AND source = %s AND external_ref = r.ref
                    LIMIT 1  -- (unique anyway) keeps the subquery a lookup per reference, not a join
                   ) d ON true
            """,
            [refs, buffer.id, source],
        )
        found = dict(self.env.cr.fetchall())
        Document = self.sudo().with_context(active_test=False)
        ids = tuple(found)  # read together when one of them is read
        return {ref: Document.browse(doc_id).with_prefetch(ids) for doc_id, ref in found.items()}

    @api.model
    def _submit(self, buffer, xml, *, external_ref, source, shop_code=None, existing=None, offline=None):
        """Submit one sales invoice under an external reference, idempotently: (document, outcome).

        ``outcome``: "created" (new), "same" (the same content again: the existing document), "replaced"
        (different content while nothing was sent to KSeF), "corrected" (a rejected invoice resubmitted).
        An invoice already sent raises :class:`AlreadySent`; invalid XML raises ValidationError; nothing is
        stored then. ``existing``: the document of the reference when the caller already looked it up.
        ``offline``: the values of :meth:`_offline_values` of a new invoice issued offline (a document that
        exists keeps the mode it was first submitted with).
        """
        existing = (
            existing
            if existing is not None
            else self._known_refs(buffer, source, [external_ref]).get(external_ref)
        )
        if not existing:
            return self._create_submitted(
                buffer, xml, external_ref=external_ref, source=source, shop_code=shop_code, offline=offline
            ), "created"
        existing = existing.sudo()
        self.env.cr.execute("SELECT id FROM ksefnet_document WHERE id = %s FOR UPDATE", [existing.id])
        existing.invalidate_recordset()
        if existing._xml() == xml:
            return existing, "same"
        if existing.state == "failure":
            existing.action_correct(xml)
            outcome = "corrected"
        elif existing._never_sent():
            existing._replace_xml(xml)
            outcome = "replaced"
        else:
            raise AlreadySent(existing)
        if shop_code and existing.shop_code != shop_code:
            existing.write({"shop_code": shop_code})
        return existing, outcome

    def _never_sent(self):
        """KSeF has not received this document (waiting, or an error before any send): it may be replaced."""
        self.ensure_one()
        return self.state == "waiting" or (self.state == "error" and not self.ksef_session_ref)

    @api.model
    def _create_submitted(self, buffer, xml, *, external_ref=None, source=None, shop_code=None, offline=None):
        """Validate a sales invoice and queue it (``waiting``). Invalid input raises ValidationError and
        creates nothing. ``offline``: the values of :meth:`_offline_values` for an invoice issued offline."""
        xml, invoice = self._validate_sales_xml(buffer, xml)
        return self._queue_submitted(buffer, [(xml, invoice, external_ref, source, shop_code, offline or {})])

    @api.model
    def _offline_for_invoice(self, values, invoice):
        """The offline ``values`` of a submission, with the deadline counted from the invoice's P_1 when that
        is an earlier day than the moment given."""
        if not values.get("offline_mode") or not invoice.issue_date:
            return values
        from datetime import timezone

        from ksefnet_core.offline import warsaw_date

        issued = values["offline_issued_at"].replace(tzinfo=timezone.utc)
        if invoice.issue_date >= warsaw_date(issued):
            return values
        return self._offline_values(
            values["offline_mode"],
            issued,
            values.get("offline_reason") or None,
            issue_date=invoice.issue_date,
        )

    @api.model
    def _offline_values(self, mode, issued_at=None, reason=None, issue_date=None):
        """The stored values of an invoice issued offline in ``mode`` at ``issued_at`` (an aware date-time,
        default now): its deadline by ksefnet_core.offline. KSeF's own outage (unavailability, failure) is
        taken to end now, which gives the earliest deadline it can have: the buffer sends as soon as KSeF
        answers anyway. ``issue_date``: the invoice's P_1, KSeF's date of issue: when it is an earlier day, the
        deadline counts from it. ValidationError for an unknown mode or a moment without a time zone."""
        from datetime import timezone

        from ksefnet_core import offline

        now = fields.Datetime.now().replace(tzinfo=timezone.utc)
        issued_at = (issued_at or now).replace(microsecond=0)
        anchor = _offline_anchor(issued_at, issue_date)
        try:
            outages = []
            if mode in ("unavailability", "failure"):
                outages.append(offline.Outage(offline.OutageKind(mode), min(anchor, now)))
            deadline = offline.send_deadline(mode, anchor, outages, now=max(now, anchor))
        except offline.OfflineError as exc:
            raise ValidationError(str(exc)) from None
        return {
            "offline_mode": deadline.mode.value,
            "offline_reason": (reason or "")[:500] or False,
            "offline_issued_at": issued_at.astimezone(timezone.utc).replace(tzinfo=None),
            "offline_deadline": deadline.until.replace(tzinfo=None) if deadline.until else False,
        }

    @api.model
    def _queue_submitted(self, buffer, entries):
        """Queue validated sales invoices (``waiting``) at once: ``entries`` are (XML bytes, parsed invoice,
        external reference, source, shop code[, engine values]), see :meth:`_validate_sales_xml`; the optional
        engine values are stored fields only the engine writes (the offline mode, its deadline). The
        documents, in order."""
        vals_list = [
            dict(
                self._values_from_invoice(invoice),
                buffer_id=buffer.id,
                direction="sales",
                origin="submitted",
                external_ref=external_ref,
                source=source,
                shop_code=shop_code,
                **self._offline_for_invoice(extra[0] if extra else {}, invoice),
            )
            for _xml, invoice, external_ref, source, shop_code, *extra in entries
        ]
        docs = self._create_in_state(
            vals_list,
            "waiting",
            _lt("Validated and queued for KSeF."),
            xmls=[(e[0], f"{_safe_name(e[1].number)}.xml") for e in entries],
            invoices=[e[1] for e in entries],  # parsed once: validation's reading goes on to classification
        )
        # documents not classified as they were inserted get the parsed invoices here
        docs._on_arrival({doc.id: entry[1] for doc, entry in zip(docs, entries, strict=True)}, new=True)
        if not self.env.context.get("ksefnet_defer_trigger"):  # a caller submitting many triggers once
            self.env["ksefnet.sender"]._trigger()  # send now rather than at the next scheduled run
        return docs.with_env(self.env)

    @api.model
    def _create_downloaded(self, buffer, downloaded, subject_type):
        """Store an invoice downloaded from KSeF (``sent``: it has its KSeF number). Returns the document,
        or an empty recordset when the buffer already holds this KSeF number."""
        existing = (
            self.sudo()
            .with_context(active_test=False)
            .search(  # archived ones count: stored once
                [("buffer_id", "=", buffer.id), ("ksef_number", "=", downloaded.ksef_number)], limit=1
            )
        )
        if existing:
            return self.browse()
        meta = downloaded.metadata
        try:
            invoice = fa3.parse(downloaded.xml)
            vals = self._values_from_invoice(invoice)
        except (fa3.InvoiceValidationError, ValueError) as exc:
            invoice = None
            # Keep what KSeF says about it, so nothing is lost even if the XML cannot be read here.
            _logger.warning("KSeF invoice %s could not be parsed: %s", downloaded.ksef_number, exc)
            vals = {
                "invoice_number": meta.get("invoiceNumber"),
                "seller_nip": (meta.get("seller") or {}).get("nip"),
                "xml_sha256": meta.get("invoiceHash"),
            }
        vals.update(
            buffer_id=buffer.id,
            direction="sales" if subject_type == "Subject1" else "purchase",
            origin="downloaded",
            ksef_number=downloaded.ksef_number,
            ksef_acquisition_date=_naive(meta.get("acquisitionDate")),
            ksef_storage_date=_naive(meta.get("permanentStorageDate")),
        )
        return self._create_in_state(
            vals,
            "sent",
            _lt(
                "Downloaded from KSeF (%(subject)s).",
                subject=Label("ksefnet.buffer.sync", "subject_type", subject_type),
            ),
            reference=downloaded.ksef_number,
            xmls=[(downloaded.xml, f"{downloaded.ksef_number}.xml")],
            invoices=[invoice],
        )

    def _on_arrival(self, invoices=None, new=False):
        """Hook called once documents are stored (submitted or downloaded, or given a new XML); other addons
        classify here. ``invoices``: {document id: the parsed invoice} when the caller has parsed them already.
        ``new``: the documents were just created (nothing was stored about them before)."""
        return True

    def _store_upos(self, upos):
        """Store KSeF's UPOs ({document id: UPO XML bytes}) at once: attachments, status, log, change feed."""
        docs = self.browse(list(upos))
        if not docs:
            return docs
        attachments = self._attach_many(
            docs, [upos[d.id] for d in docs], [f"UPO-{d.ksef_number}.xml" for d in docs]
        )
        cleared = {"upo_last_error_source": False, "upo_last_error_template": False, "upo_next_try_at": False}
        update_records(
            self.sudo(),
            [
                (doc.id, dict(cleared, upo_attachment_id=attachment.id, upo_state="stored"))
                for doc, attachment in zip(docs, attachments, strict=True)
            ],
        )
        docs.invalidate_recordset(["upo_last_error", "upo_available"])
        message = _lt("UPO (KSeF's receipt) stored.")
        self._log_events([(d.id, "sent", "sent", 200, message, d.ksef_number) for d in docs])
        docs._on_engine_change()
        return docs

    def _upo_failed(self, message):
        """The UPO could not be fetched now: try again later with growing delays (the document stays sent).
        ``message``: why, a message part (see ksefnet_message.py)."""
        now = fields.Datetime.now()
        for attempts, docs in self.grouped("upo_attempts").items():
            docs._engine_write(
                {
                    "upo_attempts": attempts + 1,
                    "upo_next_try_at": now + retry_delay(attempts + 1),
                    "upo_last_error": message,
                }
            )

    def _xml(self):
        self.ensure_one()
        return self.sudo().xml_attachment_id.raw

    @api.model
    def _xml_of_attachments(self, attachment_ids):
        """{attachment id: content} of many XML attachments, read as ir.attachment reads one (its database
        column or its file in the filestore) without loading them as records: one query for all."""
        Attachment = self.env["ir.attachment"].sudo()
        Attachment.browse(attachment_ids).flush_recordset(["store_fname", "db_datas"])
        self.env.cr.execute(
            "SELECT id, store_fname, db_datas FROM ir_attachment WHERE id = ANY(%s)", [list(attachment_ids)]
        )
        return {
            row_id: Attachment._file_read(fname) if fname else (bytes(data) if data is not None else False)
            for row_id, fname, data in self.env.cr.fetchall()
        }

    # -- user actions -----------------------------------------------------------------------------------
    def action_retry(self):
        """Queue again: a technical error now, or a corrected rejected invoice."""
        self.check_access("write")  # handling a document needs write access to it, not only read
        for doc in self:
            if doc.state not in ("error", "failure"):
                raise UserError(_("Only documents in error or failure can be retried."))
            doc._set_state(
                "waiting", message=_lt("Queued again by %(user)s.", user=self.env.user.name), retry_count=0
            )
        self.env["ksefnet.sender"]._trigger()
        return True

    def action_open_correction(self):
        """The form to upload the corrected XML of a rejected invoice."""
        self.ensure_one()
        self.check_access("write")
        return {
            "type": "ir.actions.act_window",
            "name": _("Corrected invoice"),
            "res_model": "ksefnet.correction.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_document_id": self.id},
        }

    def action_download_upo(self):
        self.ensure_one()
        self.check_access("read")
        if not self.upo_attachment_id:
            raise UserError(_("KSeF has not issued the UPO for this document yet."))
        return {
            "type": "ir.actions.act_url",
            "url": f"/web/content/{self.upo_attachment_id.id}?download=true",
            "target": "self",
        }

    def action_download_xml(self):
        self.ensure_one()
        self.check_access("read")
        return {
            "type": "ir.actions.act_url",
            "url": f"/web/content/{self.xml_attachment_id.id}?download=true",
            "target": "self",
        }

    def _replace_xml(self, xml):
        """Replace the XML of a document that KSeF has not received (waiting, or error before any send)."""
        self.ensure_one()
        self.check_access("write")
        if not self._never_sent():
            raise UserError(_("Only a document that was not sent to KSeF can be replaced."))
        self._swap_xml(xml, _lt("Replaced by a new version before sending."))
        return True

    def action_correct(self, xml):
        """Replace the XML of a rejected (failure) document with a corrected one and queue it again."""
        self.ensure_one()
        self.check_access("write")  # replacing the invoice is handling it, not reading it
        if self.state != "failure":
            raise UserError(_("Only a rejected invoice (failure) can be corrected."))
        self._swap_xml(
            xml,
            _lt("Corrected invoice queued."),
            ksef_session_ref=False,
            ksef_invoice_ref=False,
            ksef_ambiguous=False,
        )
        return True

    @api.model
    def _validate_sales_xml(self, buffer, xml):
        """(XML bytes, parsed invoice) of a sales invoice for ``buffer``; ValidationError says what is wrong."""
        if isinstance(xml, str):
            xml = xml.encode("utf-8")
        try:
            invoice = fa3.validate(xml)
        except fa3.InvoiceValidationError as exc:
            raise user_error(self.env, invoice_issues_part(exc), ValidationError) from None
        if invoice.seller.nip != buffer.nip:
            raise ValidationError(
                _(
                    "The seller's NIP in the invoice (%(seller)s) is not the buffer's NIP (%(nip)s).",
                    seller=invoice.seller.nip or "-",
                    nip=buffer.nip,
                )
            )
        return xml, invoice

    def _swap_xml(self, xml, message, **values):
        """Put a new, validated version of the invoice on this document and queue it again."""
        self.ensure_one()
        xml, invoice = self._validate_sales_xml(self.buffer_id, xml)
        self.sudo().write(dict(self._values_from_invoice(invoice), **values))
        self.xml_attachment_id.sudo().write({"raw": xml})
        self._set_state("waiting", message=message, retry_count=0)
        self._on_arrival()


def _own_issued(seller_nip, buffer):
    """The buffer's own NIP is the seller: an invoice the company issued itself."""
    return bool(seller_nip) and seller_nip == buffer.nip


def _offline_anchor(issued_at, issue_date):
    """The moment an offline deadline counts from: ``issued_at``, or midday of the invoice's P_1 in Warsaw
    when that is an earlier day (KSeF takes P_1 as the date of issue)."""
    from datetime import datetime, time

    from ksefnet_core.offline import WARSAW, warsaw_date

    if issue_date and issue_date < warsaw_date(issued_at):
        return datetime.combine(issue_date, time(12), WARSAW)
    return issued_at


def _cannot_show(message):
    """A warning in place of a rendering (``message`` is escaped)."""
    return Markup('<div class="alert alert-warning" role="alert">%s</div>') % message


def _safe_name(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in (text or "invoice"))[:100]


def _naive(value):
    """KSeF date-time text -> naive UTC datetime for Odoo."""
    if not value:
        return False
    from ksefnet_core.crypto import parse_datetime

    return parse_datetime(value).replace(tzinfo=None)


class AlreadySent(UserError):
    """The invoice was already sent to KSeF: it cannot be replaced (a correction is a new invoice)."""

    def __init__(self, document):
        self.document = document
        super().__init__(
            document.env._(
                "The invoice was already sent to KSeF (status %(state)s); it cannot be replaced. Issue a correction "
                "(KOR) as a new document.",
                state=document._state_label(document.state),
            )
        )
