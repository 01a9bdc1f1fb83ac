"""Sending sales documents to KSeF: pick, send (online or batch), poll, fetch UPOs, reconcile.

Each step commits before the next one starts, so a crash loses at most the step in flight, and every step
can be repeated safely:

* a document is marked ``processing`` (with its session) and committed *before* its request leaves; if no
  answer arrives, it stays ``processing`` with ``ksef_ambiguous`` set, and the next poll looks it up in the
  session's invoice list by its SHA-256 (online) or file name (batch) instead of sending it again;
* a document KSeF never received goes to ``error`` and is sent again later; should KSeF have had it after
  all, KSeF answers 440 (duplicate) with the original KSeF number, which is adopted when the original's
  content is the same invoice.
"""

import logging
from collections import defaultdict
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.modules import module as odoo_module

from ksefnet_core.crypto import sha256_b64
from ksefnet_core.errors import (
    KsefBadRequest,
    KsefError,
    KsefRateLimited,
    KsefServerError,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from ksefnet_core.sessions import BatchSession, InvoiceStatus, OnlineSession, prepare_batch
from ksefnet_core.throttle import ThrottleDeferred

from .ksefnet_buffer import THROTTLE_MAX_WAIT
from .ksefnet_document import describe_ksef_error

_logger = logging.getLogger(__name__)

#: an ambiguous document not found in its session after this long was not received by KSeF
RECONCILE_AFTER = timedelta(minutes=5)
#: stop sending in a run after this many answers in a row did not arrive (KSeF is probably down)
MAX_CONSECUTIVE_AMBIGUOUS = 3
#: the per-invoice "not found in session" code used for statuses the buffer records itself
SESSION_UNKNOWN = 21173


def commit(env):
    """Commit a finished step (not inside tests, whose transaction is rolled back at the end)."""
    if not odoo_module.current_test:
        env.cr.commit()


class KsefnetSender(models.AbstractModel):
    _name = "ksefnet.sender"
    _description = "KSeF sending engine"

    @api.model
    def _trigger(self):
        cron = self.env.ref("ksefnet_buffer.ir_cron_ksefnet_send", raise_if_not_found=False)
        if cron:
            cron.sudo()._trigger()

    @api.model
    def _cron_send(self):
        """Scheduled action: send and poll for every buffer; re-triggers itself while work remains."""
        remaining = done = 0
        for buffer in self.env["ksefnet.buffer"].search([("send_enabled", "=", True)]):
            result = self._run_buffer(buffer)
            done += result["done"]
            remaining += result["remaining"]
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return remaining

    @api.model
    def _run_buffer(self, buffer):
        """One sending round for ``buffer``: poll what is in KSeF, send what is due, poll again."""
        result = {"done": 0, "remaining": 0}
        if not buffer._try_lock("send"):
            _logger.info("KSeF sending for buffer %s is already running elsewhere", buffer.nip)
            return result
        try:
            due = self._due_documents(buffer, limit=1)
            processing = self.env["ksefnet.document"].search_count(
                [("buffer_id", "=", buffer.id), ("state", "=", "processing")]
            )
            if not due and not processing:
                return result
            try:
                client = buffer._ksef_client()
            except (KsefError, ValueError) as exc:
                self._fail_due(buffer, exc)
                return result
            try:
                result["done"] += self._poll(buffer, client)
                docs = self._pick(buffer)
                if docs:
                    if len(docs) >= buffer.batch_threshold:
                        self._send_batch(buffer, client, docs)
                    else:
                        self._send_online(buffer, client, docs)
                    result["done"] += self._poll(buffer, client)
            except KsefUnauthorized:
                buffer._forget_clients()  # the next run authenticates again
                raise
            result["remaining"] = len(self._due_documents(buffer)) + self.env[
                "ksefnet.document"
            ].search_count([("buffer_id", "=", buffer.id), ("state", "=", "processing")])
        except ThrottleDeferred as exc:
            _logger.info("KSeF rate limit for buffer %s: %s", buffer.nip, exc)
        except KsefError as exc:
            _logger.warning("KSeF round for buffer %s stopped: %s", buffer.nip, exc)
        finally:
            buffer._unlock("send")
        return result

    # -- picking ------------------------------------------------------------------------------------------
    def _due_domain(self, buffer):
        now = fields.Datetime.now()
        return [
            ("buffer_id", "=", buffer.id),
            ("direction", "=", "sales"),
            "|",
            "&",
            ("state", "=", "waiting"),
            "|",
            ("next_retry_at", "=", False),
            ("next_retry_at", "<=", now),
            "&",
            ("state", "=", "error"),
            "&",
            ("next_retry_at", "!=", False),
            ("next_retry_at", "<=", now),
        ]

    def _due_documents(self, buffer, limit=None):
        return self.env["ksefnet.document"].search(self._due_domain(buffer), order="id", limit=limit)

    def _pick(self, buffer):
        """Lock the due documents (``FOR UPDATE SKIP LOCKED``) so that no other worker takes them."""
        candidates = self._due_documents(buffer, limit=buffer.send_limit)
        if not candidates:
            return candidates
        self.env.cr.execute(
            "SELECT id FROM ksefnet_document WHERE id IN %s ORDER BY id FOR UPDATE SKIP LOCKED",
            [tuple(candidates.ids)],
        )
        return self.env["ksefnet.document"].browse([row[0] for row in self.env.cr.fetchall()])

    def _fail_due(self, buffer, exc):
        """Authentication or configuration failed: the due documents go to ``error`` with the reason."""
        docs = self._pick(buffer)
        if docs:
            docs._mark_error(exc)
            commit(self.env)

    def _open_session(self, docs, open_session, *args):
        """Open a KSeF session for ``docs``; when KSeF or its limits say no, record why and return False."""
        try:
            open_session(*args)
            return True
        except ThrottleDeferred as exc:
            docs._defer(exc)
        except KsefError as exc:
            docs._mark_error(exc)
        commit(self.env)
        return False

    # -- online -------------------------------------------------------------------------------------------
    def _send_online(self, buffer, client, docs):
        session = OnlineSession(client)
        if not self._open_session(docs, session.open):
            return
        ref = session.reference_number
        ambiguous_in_a_row = 0
        try:
            for doc in docs:
                if client.throttle and client.throttle.delay("invoiceSend") > THROTTLE_MAX_WAIT:
                    _logger.info("KSeF send limit reached for buffer %s; the rest waits", buffer.nip)
                    break
                doc._set_state(
                    "processing",
                    message=_("Sending to KSeF in online session %(ref)s.", ref=ref),
                    reference=ref,
                    ksef_session_ref=ref,
                    ksef_invoice_ref=False,
                    ksef_send_mode="online",
                    ksef_ambiguous=True,
                )
                commit(self.env)  # from here on, a crash leaves a document to reconcile, not to re-send
                try:
                    sent = session.send(doc._xml())
                except (KsefTimeoutError, KsefServerError) as exc:
                    ambiguous_in_a_row += 1
                    doc._set_state("processing", message=describe_ksef_error(self.env, exc), reference=ref)
                    commit(self.env)
                    if ambiguous_in_a_row >= MAX_CONSECUTIVE_AMBIGUOUS:
                        break
                    continue
                except (KsefTransportError, KsefRateLimited, KsefBadRequest, ThrottleDeferred) as exc:
                    # Not received by KSeF (or refused before processing): a technical error, retried later.
                    doc._mark_error(exc, reference=ref)
                    commit(self.env)
                    if not isinstance(exc, KsefBadRequest):
                        break
                    continue
                ambiguous_in_a_row = 0
                doc._set_state(
                    "processing",
                    message=_("Received by KSeF as %(inv)s.", inv=sent.reference_number),
                    reference=sent.reference_number,
                    ksef_invoice_ref=sent.reference_number,
                    ksef_ambiguous=False,
                )
                commit(self.env)
        finally:
            try:
                session.close()
            except (KsefError, ThrottleDeferred) as exc:  # KSeF closes idle sessions itself
                _logger.info("closing KSeF session %s failed: %s", ref, exc)
            commit(self.env)

    # -- batch --------------------------------------------------------------------------------------------
    def _send_batch(self, buffer, client, docs):
        files = [(f"{doc.id}.xml", doc._xml()) for doc in docs]
        batch = prepare_batch(files)
        session = BatchSession(client)
        try:
            if not self._open_session(docs, session.open, batch):
                return
            ref = session.reference_number
            docs._set_state(
                "processing",
                message=_("Sending to KSeF in batch session %(ref)s.", ref=ref),
                reference=ref,
                ksef_session_ref=ref,
                ksef_invoice_ref=False,
                ksef_send_mode="batch",
                ksef_ambiguous=True,
            )
            commit(self.env)
            try:
                session.upload(batch)
                session.close()
            except (KsefTimeoutError, KsefServerError) as exc:
                # The session may or may not be complete: its status tells at the next poll.
                docs._set_state("processing", message=describe_ksef_error(self.env, exc), reference=ref)
            except (KsefError, ThrottleDeferred) as exc:
                docs._mark_error(exc, reference=ref)
            commit(self.env)
        finally:
            batch.cleanup()

    # -- polling ------------------------------------------------------------------------------------------
    def _poll(self, buffer, client):
        """Bring every ``processing`` document of the buffer up to date; return how many became final."""
        docs = self.env["ksefnet.document"].search(
            [("buffer_id", "=", buffer.id), ("state", "=", "processing")], order="id"
        )
        by_session = defaultdict(lambda: self.env["ksefnet.document"])
        for doc in docs:
            by_session[doc.ksef_session_ref] |= doc
        finished = 0
        for ref, group in by_session.items():
            finished += self._poll_session(buffer, client, ref, group)
            commit(self.env)
        return finished

    def _poll_session(self, buffer, client, ref, docs):
        session = OnlineSession(client, reference_number=ref)
        try:
            listed = list(session.invoices())
            session_status = session.status()
        except KsefBadRequest as exc:
            if exc.code == SESSION_UNKNOWN:
                docs._mark_error(exc, reference=ref)
                return 0
            raise
        by_ref = {st.reference_number: st for st in listed}
        by_hash = {st.invoice_hash: st for st in listed if st.invoice_hash}
        by_file = {st.invoice_file_name: st for st in listed if st.invoice_file_name}
        session_final = session_status.code >= 200 and session_status.code != 100
        finished = 0
        for doc in docs:
            status = by_ref.get(doc.ksef_invoice_ref) if doc.ksef_invoice_ref else None
            if status is None and doc.ksef_send_mode == "batch":
                status = by_file.get(f"{doc.id}.xml")
            if status is None and doc.ksef_send_mode == "online" and not doc.ksef_invoice_ref:
                status = by_hash.get(doc.xml_sha256)
            if status is None:
                if self._never_received(doc, session_status, session_final):
                    doc._mark_error(
                        KsefError(_("KSeF did not receive the invoice in session %(ref)s.", ref=ref)),
                        reference=ref,
                    )
                continue
            if not doc.ksef_invoice_ref:
                doc._set_state(
                    "processing",
                    message=_("Found in KSeF's session as %(inv)s.", inv=status.reference_number),
                    reference=status.reference_number,
                    ksef_invoice_ref=status.reference_number,
                    ksef_ambiguous=False,
                )
            finished += self._apply_status(client, session, doc, status)
        return finished

    def _never_received(self, doc, session_status, session_final):
        """True when the session shows the document was not received (so it may be sent again)."""
        if doc.ksef_send_mode == "batch":
            return session_status.code >= 300  # the batch failed or was cancelled as a whole
        age = fields.Datetime.now() - (doc.write_date or fields.Datetime.now())
        return session_final or age > RECONCILE_AFTER

    def _apply_status(self, client, session, doc, status: InvoiceStatus):
        """Record one invoice status; return 1 when the document reached a final state."""
        outcome = status.outcome
        if outcome == "processing":
            return 0
        if outcome == "accepted":
            return self._accept(client, session.reference_number, doc, status.ksef_number, status)
        if outcome == "duplicate":
            return self._reconcile_duplicate(client, doc, status)
        if outcome == "rejected":
            doc._set_state(
                "failure",
                code=status.code,
                message=_("KSeF rejected the invoice: %(msg)s", msg=status.message),
                reference=status.reference_number,
            )
            return 1
        # cancelled by KSeF (session error, system): not processed, so it can be sent again
        doc._mark_error(
            KsefError(
                _("KSeF cancelled the invoice (%(code)s): %(msg)s", code=status.code, msg=status.message)
            ),
            reference=status.reference_number,
        )
        return 0

    def _accept(self, client, session_ref, doc, ksef_number, status=None, upo=None):
        vals = {"ksef_number": ksef_number, "ksef_ambiguous": False}
        if status is not None:
            vals["ksef_acquisition_date"] = status.acquisition_date and status.acquisition_date.replace(
                tzinfo=None
            )
            vals["ksef_storage_date"] = (
                status.permanent_storage_date and status.permanent_storage_date.replace(tzinfo=None)
            )
        doc.sudo().with_context(ksefnet_allow_state_write=True).write(vals)
        try:
            if upo is None:
                upo = client.invoice_upo_by_ksef_number(session_ref, ksef_number)
        except (KsefError, ThrottleDeferred) as exc:
            # The number is known (and visible to HiperMarket); the UPO is fetched at the next poll.
            _logger.info("UPO of %s not fetched yet: %s", ksef_number, exc)
            return 0
        doc._store_upo(upo)
        doc._set_state(
            "sent",
            code=status.code if status else 200,
            message=_("KSeF number %(number)s assigned; UPO stored.", number=ksef_number),
            reference=ksef_number,
        )
        return 1

    def _reconcile_duplicate(self, client, doc, status):
        """440: KSeF already holds an invoice with this seller, kind and number.

        When the original has the same content (our own earlier send whose answer was lost), adopt its
        KSeF number and UPO; otherwise it is a different invoice with a reused number: a person must act.
        """
        original = status.original_ksef_number
        if original:
            try:
                same = sha256_b64(client.get_invoice(original)) == doc.xml_sha256
            except (KsefError, ThrottleDeferred) as exc:
                _logger.info("cannot compare duplicate %s yet: %s", original, exc)
                return 0
            if same:
                upo = None
                if status.original_session_reference_number:
                    try:
                        upo = client.invoice_upo_by_ksef_number(
                            status.original_session_reference_number, original
                        )
                    except (KsefError, ThrottleDeferred) as exc:
                        _logger.info("UPO of the original %s not fetched yet: %s", original, exc)
                        return 0
                doc._set_state(
                    "processing",
                    code=status.code,
                    message=_("KSeF already had this invoice as %(number)s: adopting it.", number=original),
                    reference=original,
                    ksef_session_ref=status.original_session_reference_number or doc.ksef_session_ref,
                )
                if upo is not None:
                    return self._accept(client, doc.ksef_session_ref, doc, original, upo=upo)
                return 0
        doc._set_state(
            "failure",
            code=status.code,
            message=_(
                "KSeF already holds a different invoice with this seller, kind and number (%(number)s): "
                "%(msg)s. Give the invoice a new number and resubmit it.",
                number=original or "-",
                msg=status.message,
            ),
            reference=status.reference_number,
        )
        return 1
