"""Sending sales documents to KSeF: one scheduler per buffer, working within KSeF's rate limits.

KSeF counts requests per group (``GET /rate-limits``) in sliding windows; the scarce groups are the
invoice sends of online sessions (180 an hour), opening and closing batch sessions, and the session lists.
A round of a buffer does whatever can be done *now* and never lets one throttled group hold up work that
needs another:

1. **poll**: sessions whose next poll is due are asked for their status (``GET /sessions/{ref}``); their
   invoices are listed (``GET /sessions/{ref}/invoices``, up to 1 000 a page) only when the status shows news.
   An accepted invoice is ``sent`` at once with its KSeF number (logged, and published to the HiperMarket
   change feed); the listing also brings each invoice's pre-signed UPO link;
2. **send**: due documents go into a batch session (up to 10 000 invoices for two requests) or an online
   session (one request per invoice), chosen by the budgets left in each group. When KSeF says an online
   session takes no more invoices (21184 "session temporarily unavailable" of API 2.8, an expired or full
   session), the invoices it did not accept go on at once in a new session;
3. **poll** the sessions just closed, then **UPO**: pending UPOs are downloaded from their pre-signed links
   (not rate-limited, in parallel); only where no link can be had does the buffer use the per-invoice UPO
   endpoint, within what is left of its group.

Each step commits before the next one starts, so a crash loses at most the step in flight, and every step
can be repeated safely: a document is marked ``processing`` (with its session) and committed *before* its
request leaves; if no answer arrives, it stays ``processing`` with ``ksef_ambiguous`` set, and the next poll
looks it up in the session's invoice list (by SHA-256 online, by file name in a batch) instead of sending it
again. What every KSeF answer means is decided in one table, :mod:`ksefnet_core.outcomes`.

The scheduled action runs the buffers' rounds interleaved (each in its own transaction), so several NIPs
progress together, one buffer's failure never stops the others, and a lease on the buffer (which expires by
itself) keeps each buffer to one worker across threads, processes and hosts. Between rounds it waits for
the earliest moment at which a buffer has something to do, and it writes on the buffer why it waits and
until when.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools.translate import LazyTranslate

from ksefnet_core import outcomes
from ksefnet_core.crypto import sha256_b64
from ksefnet_core.errors import KsefError, KsefServerError, KsefTransportError
from ksefnet_core.sessions import BatchSession, InvoiceStatus, OnlineSession, prepare_batch
from ksefnet_core.throttle import ThrottleDeferred

from .ksefnet_document import describe_ksef_error, ksef_said

_logger = logging.getLogger(__name__)
_lt = LazyTranslate(__name__)

#: an ambiguous document not found in its session after this long was not received by KSeF
RECONCILE_AFTER = timedelta(minutes=5)
#: stop sending in a run after this many answers in a row did not arrive (KSeF is probably down)
MAX_CONSECUTIVE_AMBIGUOUS = 3
#: the longest one buffer's round goes on sending or fetching before the other buffers get their turn
ROUND_SECONDS = 20.0
#: parallel downloads of pre-signed UPO links (storage links are not rate-limited)
UPO_THREADS = 8
#: UPOs stored (and committed) together
UPO_CHUNK = 1000
#: list a session again for its UPO links when this many of its UPOs lack one (else per-invoice endpoint)
RELIST_FROM = 10
#: requests of the sessionMisc group kept for status polls when fetching UPOs one by one
STATUS_RESERVE = 10
#: new online sessions one send step opens when KSeF says a session takes no more invoices (21184 etc.)
MAX_SESSION_REOPENS = 3
#: rate-limit groups of opening and closing sessions (KSeF API 2.8 counts closing on its own)
ONLINE_GROUPS = ("onlineSession", "onlineSessionClose")
BATCH_GROUPS = ("batchSession", "batchSessionClose")
UNLIMITED = 10**9
#: the scheduled actions that run rounds (several: several buffers at once with several cron threads)
SEND_CRONS = ("ksefnet_buffer.ir_cron_ksefnet_send", "ksefnet_buffer.ir_cron_ksefnet_send_2")


class Round:
    """What one round of a buffer did, and what it waits for (for the log and the buffer's form)."""

    def __init__(self):
        self.done = 0
        self.busy = False
        self.more_now = False  # work left that could go on at once (the round's time slice ended)
        self.waits = {}  # what -> (seconds, sentence)
        self.problems = []
        self.ksef_answered = None  # True: KSeF answered this round, False: it did not (down, unreachable)

    def saw(self, exc):
        """Note what a KSeF error tells about KSeF's availability (network, timeout, 5xx: it did not answer)."""
        if _unanswered(exc):
            self.ksef_answered = False

    def wait(self, what, seconds, sentence):
        """Wait ``seconds`` for ``what``; ``sentence`` (a message part) says why on the buffer."""
        old = self.waits.get(what)
        if old is None or seconds > old[0]:
            self.waits[what] = (max(0.0, float(seconds)), sentence)


def _unanswered(exc):
    """KSeF did not answer (network, timeout, 5xx): what tells the buffer that KSeF is down or unreachable."""
    return isinstance(exc, (KsefTransportError, KsefServerError))


class KsefnetSender(models.AbstractModel):
    _name = "ksefnet.sender"
    _description = "KSeF sending engine"

    @api.model
    def _trigger(self, at=None):
        """Have the sending crons run now (or at ``at``).

        Each cron gets its trigger, unless one is due already (it runs once for all, then deletes every
        trigger that was due), and the cron workers are woken (NOTIFY, which Odoo sends after the commit
        over a new connection to the ``postgres`` database) once, and only when no trigger of these crons
        is already due: one notification wakes every cron thread, and a thread runs every job that is due
        before it sleeps again, so a due trigger means they are awake already. A steady flow of HiperMarket
        calls thus costs one query a call, with no trigger written and no connection opened per call."""
        Cron = self.env["ir.cron"].sudo()
        ids = [self.env["ir.model.data"]._xmlid_to_res_id(xmlid) for xmlid in SEND_CRONS]  # cached lookups
        ids = [cron_id for cron_id in ids if cron_id]
        if not ids:
            return
        if at is not None:
            for cron in Cron.browse(ids).exists().filtered("active"):
                cron._trigger(at)
            return
        now = fields.Datetime.now()
        Cron.flush_model(["active"])
        self.env["ir.cron.trigger"].flush_model()
        self.env.cr.execute(  # this transaction's own triggers count too: their notification is on its way
            """
            SELECT c.id, EXISTS (SELECT 1 FROM ir_cron_trigger t WHERE t.cron_id = c.id AND t.call_at <= %s)
              FROM ir_cron c
             WHERE c.id = ANY(%s) AND c.active
             ORDER BY array_position(%s, c.id)
            """,
            [now, ids, ids],
        )
        due = dict(self.env.cr.fetchall())
        idle = [cron_id for cron_id, has_due in due.items() if not has_due]
        if idle and not any(due.values()):
            Cron.browse(idle[0])._trigger()  # its trigger, and the notification after the commit
            idle = idle[1:]
        if idle:
            self.env["ir.cron.trigger"].sudo().create(
                [{"cron_id": cron_id, "call_at": now} for cron_id in idle]
            )

    @api.model
    def _cron_send(self):
        """Scheduled action: rounds of every buffer that has work, interleaved, each in its own transaction."""
        return self.env["ksefnet.buffer"]._run_engine_jobs("ksefnet.sender", "send_enabled")

    # -- one round ------------------------------------------------------------------------------------------
    @api.model
    def _run_buffer(self, buffer):
        """One round for ``buffer`` under its lease: poll, send, poll, fetch UPOs; return the Round."""
        rnd = Round()
        lease = buffer._take_lease("send")
        if not lease:
            rnd.busy = True
            _logger.info("KSeF sending for buffer %s is already running elsewhere", buffer.nip)
            return rnd
        try:
            self._round(buffer, rnd)
        except Exception:
            buffer._rollback()  # before the lease is given back: the release must not commit half a step
            raise
        finally:
            buffer._end_lease("send", lease)
        return rnd

    def _round(self, buffer, rnd):
        if not self._has_work(buffer):
            buffer._engine_report(rnd, False)
            return
        try:
            client = buffer._ksef_client()
        except (KsefError, UserError, ValueError) as exc:
            self._fail_due(buffer, exc)
            outcome = outcomes.classify(exc)
            rnd.saw(exc)
            if outcome.kind == outcomes.THROTTLED:
                rnd.wait("auth", outcome.delay, describe_ksef_error(self.env, exc))
            rnd.problems.append(describe_ksef_error(self.env, exc))
            buffer._engine_report(rnd, self._next_time(buffer, rnd))
            return
        deadline = time.monotonic() + ROUND_SECONDS
        links = {}
        self._step(buffer, rnd, self._poll, client, rnd, links)
        self._step(buffer, rnd, self._send, client, rnd, deadline)
        self._step(buffer, rnd, self._poll, client, rnd, links)
        self._step(buffer, rnd, self._fetch_upos, client, rnd, links, deadline)
        if rnd.ksef_answered is None:
            rnd.ksef_answered = True  # the steps talked to KSeF and it answered
        buffer._engine_report(rnd, self._next_time(buffer, rnd))

    def _step(self, buffer, rnd, step, client, *args):
        """Run one step; what escapes it (a throttled group, KSeF down) is recorded, the next step runs."""
        try:
            step(buffer, client, *args)
        except (KsefError, ThrottleDeferred) as exc:
            outcome = outcomes.classify(exc)
            text = describe_ksef_error(self.env, exc)
            rnd.saw(exc)
            if outcome.kind == outcomes.THROTTLED:
                rnd.wait(getattr(exc, "group", None) or step.__name__, outcome.delay or 60, text)
            else:
                if outcome.kind == outcomes.AUTH:
                    buffer._forget_clients()  # the next round authenticates again
                rnd.problems.append(text)
                _logger.warning(
                    "KSeF %s for buffer %s stopped: %s", step.__name__.strip("_"), buffer.nip, exc
                )
        buffer._commit(step.__name__)

    def _has_work(self, buffer):
        Document = self.env["ksefnet.document"]
        return bool(
            Document.search_count(self._due_domain(buffer), limit=1)
            or Document.search_count([("buffer_id", "=", buffer.id), ("state", "=", "processing")], limit=1)
            or Document.search_count(self._upo_domain(buffer), limit=1)
        )

    def _next_time(self, buffer, rnd):
        """The earliest moment this buffer has something to do (False: nothing), given what it waits for."""
        now = fields.Datetime.now()
        Document = self.env["ksefnet.document"]
        candidates = []
        if rnd.more_now:
            candidates.append(now)
        processing = Document.search([("buffer_id", "=", buffer.id), ("state", "=", "processing")])
        if processing:
            sessions = self.env["ksefnet.session"].search(
                [
                    ("buffer_id", "=", buffer.id),
                    ("reference", "in", list(set(processing.mapped("ksef_session_ref")))),
                ]
            )
            candidates += [s.next_poll_at or now for s in sessions] or [now]
        waiting = Document.search(
            [
                ("buffer_id", "=", buffer.id),
                ("direction", "=", "sales"),
                "|",
                ("state", "=", "waiting"),
                "&",
                ("state", "=", "error"),
                ("next_retry_at", "!=", False),
            ],
            order="next_retry_at asc nulls first",
            limit=1,
        )
        if waiting:
            candidates.append(max(now, waiting.next_retry_at or now))
        upo = Document.search(
            [("buffer_id", "=", buffer.id), ("state", "=", "sent"), ("upo_state", "=", "pending")],
            order="upo_next_try_at asc nulls first",
            limit=1,
        )
        if upo:
            candidates.append(max(now, upo.upo_next_try_at or now))
        if not candidates:
            return False
        when = min(candidates)
        if when <= now and rnd.waits and not rnd.more_now:
            # what is due now is held by a throttled group: come back when the first window opens
            when = now + timedelta(seconds=min(seconds for seconds, _text in rnd.waits.values()))
        return when

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
        """Due documents, offline invoices first, the nearest deadline first (tryby-offline.md), then in order."""
        return self.env["ksefnet.document"].search(
            self._due_domain(buffer), order="offline_deadline asc nulls last, id", limit=limit
        )

    def _pick(self, buffer, limit):
        """Lock the due documents (``FOR UPDATE SKIP LOCKED``) so that no other worker takes them."""
        candidates = self._due_documents(buffer, limit=limit)
        if not candidates:
            return candidates
        self.env.cr.execute(
            "SELECT id FROM ksefnet_document WHERE id IN %s ORDER BY id FOR UPDATE SKIP LOCKED",
            [tuple(candidates.ids)],
        )
        locked = {row[0] for row in self.env.cr.fetchall()}
        return candidates.filtered(lambda d: d.id in locked)  # in the candidates' order: deadlines first

    def _fail_due(self, buffer, exc):
        """Authentication or configuration failed: the due documents go to ``error`` with the reason."""
        docs = self._pick(buffer, buffer.send_limit)
        if docs:
            docs._mark_error(exc)
            buffer._commit("fail_due")

    # -- choosing online or batch by the budgets left ----------------------------------------------------------
    @staticmethod
    def _room(client, group):
        throttle = client.throttle
        if throttle is None:
            return UNLIMITED
        room = throttle.capacity(group)
        return UNLIMITED if room is None else room

    def _session_room(self, client, groups):
        """How many sessions can be opened and closed now (one group for both before KSeF API 2.8)."""
        open_group, close_group = groups
        known = client.throttle is not None and close_group in client.throttle.limits
        if known:
            return min(self._room(client, open_group), self._room(client, close_group))
        return self._room(client, open_group) // 2

    def _choose_mode(self, buffer, client, due):
        """("online" | "batch", how many to pick) for ``due`` documents, or (None, seconds to wait)."""
        batches = self._session_room(client, BATCH_GROUPS)
        onlines = self._session_room(client, ONLINE_GROUPS)
        sends = self._room(client, "invoiceSend") if onlines else 0
        if (due >= buffer.batch_threshold or sends < due) and batches:
            return "batch", buffer.send_limit
        if sends:
            return "online", min(sends, due, buffer.send_limit)
        if batches:
            return "batch", buffer.send_limit
        throttle = client.throttle
        wait = min(
            throttle.delay(g) for g in (*BATCH_GROUPS, *ONLINE_GROUPS, "invoiceSend") if g in throttle.limits
        )
        return None, max(wait, 1.0)

    # -- sending ------------------------------------------------------------------------------------------------
    def _send(self, buffer, client, rnd, deadline):
        while True:
            due = self.env["ksefnet.document"].search_count(self._due_domain(buffer))
            if not due:
                return
            if time.monotonic() > deadline:
                rnd.more_now = True
                return
            mode, amount = self._choose_mode(buffer, client, due)
            if mode is None:
                rnd.wait(
                    "send",
                    amount,
                    _lt(
                        "%(count)s invoices wait for KSeF's limits on sessions and sends; the next can go in "
                        "%(s)s seconds.",
                        count=due,
                        s=int(amount),
                    ),
                )
                return
            docs = self._pick(buffer, amount)
            if not docs:
                return
            if mode == "batch":
                # offlineMode is declared per batch session: offline invoices go in sessions of their own
                offline = docs.filtered("offline_mode")
                sent = all(
                    self._send_batch(buffer, client, group, rnd)
                    for group in (offline, docs - offline)
                    if group
                )
            else:
                sent = self._send_online(buffer, client, docs, rnd)
            if not sent:
                return

    def _open_session(self, buffer, docs, rnd, open_session, *args):
        """Open a KSeF session for ``docs``; when KSeF or its limits say no, record why and return False."""
        try:
            open_session(*args)
            return True
        except (KsefError, ThrottleDeferred) as exc:
            rnd.saw(exc)
            outcome = outcomes.classify(exc)
            if outcome.kind == outcomes.THROTTLED:
                docs._defer(exc)
                rnd.wait("open", outcome.delay or 60, describe_ksef_error(self.env, exc))
            else:
                docs._mark_error(exc, attention=outcome.kind in (outcomes.PERMANENT, outcomes.AUTH))
                rnd.problems.append(describe_ksef_error(self.env, exc))
                if outcome.kind == outcomes.AUTH:
                    buffer._forget_clients()
        buffer._commit("open_session")
        return False

    def _send_online(self, buffer, client, docs, rnd, reopens=MAX_SESSION_REOPENS):
        session = OnlineSession(client)
        if not self._open_session(buffer, docs, rnd, session.open):
            return False
        ref = session.reference_number
        record = self.env["ksefnet.session"]._record(buffer, ref, "online")
        ambiguous_in_a_row = 0
        rest = None  # the documents to go on with in a new session
        try:
            for index, doc in enumerate(docs):
                doc._set_state(
                    "processing",
                    message=_lt("Sending to KSeF in online session %(ref)s.", ref=ref),
                    reference=ref,
                    ksef_session_ref=ref,
                    ksef_invoice_ref=False,
                    ksef_send_mode="online",
                    ksef_ambiguous=True,
                )
                buffer._commit("online_mark")  # from here on, a crash leaves a document to reconcile
                try:
                    sent = session.send(doc._xml(), offline_mode=bool(doc.offline_mode))
                except (KsefError, ThrottleDeferred) as exc:
                    rnd.saw(exc)
                    outcome = outcomes.classify(exc, outcomes.SEND)
                    if outcome.kind == outcomes.AMBIGUOUS:
                        ambiguous_in_a_row += 1
                        doc._set_state(
                            "processing", message=describe_ksef_error(self.env, exc), reference=ref
                        )
                        buffer._commit("online_ambiguous")
                        if ambiguous_in_a_row >= MAX_CONSECUTIVE_AMBIGUOUS:
                            rnd.problems.append(describe_ksef_error(self.env, exc))
                            break
                        continue
                    if outcome.kind == outcomes.SESSION and reopens > 0:
                        # The session cannot take more (21184 "temporarily unavailable", expired, full) and
                        # KSeF accepted nothing: this document and the rest go on in a new session.
                        doc._set_state(
                            "error",
                            code=exc.code if isinstance(exc, KsefError) and exc.code else 0,
                            message=_lt(
                                "KSeF session %(ref)s takes no more invoices (%(msg)s); sending in a new "
                                "session.",
                                ref=ref,
                                msg=isinstance(exc, KsefError)
                                and ksef_said(exc)
                                or describe_ksef_error(self.env, exc),
                            ),
                            reference=ref,
                            ksef_ambiguous=False,
                            next_retry_at=fields.Datetime.now(),
                        )
                        buffer._commit("online_session_lost")
                        rest = docs[index:]
                        break
                    if outcome.kind == outcomes.PERMANENT:
                        # KSeF refused this invoice's request for what it is: a person must correct it
                        doc._set_state(
                            "failure",
                            code=exc.code if isinstance(exc, KsefError) and exc.code else 400,
                            message=_lt(
                                "KSeF refused the invoice: %(msg)s",
                                msg=isinstance(exc, KsefError)
                                and ksef_said(exc)
                                or describe_ksef_error(self.env, exc),
                            ),
                            reference=ref,
                        )
                        buffer._commit("online_refused")
                        continue
                    # not received by KSeF: a technical error, retried (a new session for a session problem)
                    doc._mark_error(exc, reference=ref, attention=outcome.kind == outcomes.AUTH)
                    buffer._commit("online_error")
                    if outcome.kind == outcomes.THROTTLED:
                        rnd.wait("invoiceSend", outcome.delay or 60, describe_ksef_error(self.env, exc))
                    else:
                        rnd.problems.append(describe_ksef_error(self.env, exc))
                    break
                ambiguous_in_a_row = 0
                doc._set_state(
                    "processing",
                    message=_lt("Received by KSeF as %(inv)s.", inv=sent.reference_number),
                    reference=sent.reference_number,
                    ksef_invoice_ref=sent.reference_number,
                    ksef_ambiguous=False,
                )
                buffer._commit("online_received")
        finally:
            self._close(session, record)
            buffer._commit("online_close")
        if rest:
            _logger.info(
                "KSeF session %s of buffer %s takes no more invoices; %s go on in a new session",
                ref,
                buffer.nip,
                len(rest),
            )
            return self._send_online(buffer, client, rest, rnd, reopens - 1)
        return ambiguous_in_a_row < MAX_CONSECUTIVE_AMBIGUOUS

    def _close(self, session, record):
        """Close a session; when that fails (throttled, KSeF down) the poll step closes it later."""
        try:
            session.close()
        except (KsefError, ThrottleDeferred) as exc:
            outcome = outcomes.classify(exc)
            if outcome.kind != outcomes.SESSION:  # a session KSeF closed itself is closed
                _logger.info("closing KSeF session %s failed, retried later: %s", record.reference, exc)
                return False
        record.sudo().write({"closed": True, "next_poll_at": fields.Datetime.now()})
        return True

    def _send_batch(self, buffer, client, docs, rnd):
        files = [(f"{doc.id}.xml", doc._xml()) for doc in docs]
        batch = prepare_batch(files)
        offline = {bool(d.offline_mode) for d in docs}
        assert len(offline) == 1, "a batch session is offline or not as a whole"
        session = BatchSession(client, offline_mode=offline.pop())
        try:
            if not self._open_session(buffer, docs, rnd, session.open, batch):
                return False
            ref = session.reference_number
            record = self.env["ksefnet.session"]._record(buffer, ref, "batch")
            docs._set_state(
                "processing",
                message=_lt("Sending to KSeF in batch session %(ref)s.", ref=ref),
                reference=ref,
                ksef_session_ref=ref,
                ksef_invoice_ref=False,
                ksef_send_mode="batch",
                ksef_ambiguous=True,
            )
            buffer._commit("batch_mark")
            try:
                session.upload(batch)
            except (KsefError, ThrottleDeferred) as exc:
                rnd.saw(exc)
                # Not closed, so KSeF never processes this session: the invoices can go again.
                docs._mark_error(exc, reference=ref)
                record.sudo().write({"closed": True, "status_code": 440})
                rnd.problems.append(describe_ksef_error(self.env, exc))
                buffer._commit("batch_upload_failed")
                return False
            self._close(session, record)
            buffer._commit("batch_closed")
            return True
        finally:
            batch.cleanup()

    # -- polling ------------------------------------------------------------------------------------------
    def _poll(self, buffer, client, rnd, links):
        """Bring the due sessions of the buffer's ``processing`` documents up to date."""
        processing = (
            self.env["ksefnet.document"]
            .with_context(active_test=False)
            .search([("buffer_id", "=", buffer.id), ("state", "=", "processing")], order="id")
        )
        if not processing:
            return
        groups = processing.grouped("ksef_session_ref")
        sessions = self.env["ksefnet.session"]._for(buffer, [ref for ref in groups if ref])
        now = fields.Datetime.now()
        for ref, docs in groups.items():
            session = sessions.get(ref)
            if session is None:  # processing without a session: never sent
                never = _lt("The invoice was not sent in any KSeF session.")
                docs._mark_error(KsefError(never._source), message=never)
                continue
            if session.next_poll_at and session.next_poll_at > now:
                continue
            rnd.done += self._poll_session(buffer, client, session, docs, links)
            buffer._commit("poll")

    def _poll_session(self, buffer, client, record, docs, links):
        ref = record.reference
        session = OnlineSession(client, reference_number=ref)
        if not record.closed and record.status_code < 200:  # the closing failed earlier: close it now
            kind = BatchSession if record.mode == "batch" else OnlineSession
            self._close(kind(client, reference_number=ref), record)
        try:
            status = session.status()
        except KsefError as exc:
            if outcomes.classify(exc).kind == outcomes.SESSION:
                docs._mark_error(exc, reference=ref)
                record.sudo().write({"closed": True, "status_code": 440})
                return 0
            raise
        finished = (status.successful_invoice_count or 0) + (status.failed_invoice_count or 0)
        final = status.code == 200 or status.code >= 300
        # A batch is listed once, when final (10 000 invoices are 10 pages of the scarce list group); an
        # online session whenever KSeF finished more of its invoices.
        grew = record.mode == "online" and finished > record.finished_count
        if not (final or grew or self._overdue(docs)):
            record._polled(status, something_new=False)
            return 0
        listed = list(session.invoices())
        record.sudo().write({"finished_count": finished})
        record._polled(status, something_new=True)
        return self._apply(client, record, status, docs, listed, links)

    def _overdue(self, docs):
        """Ambiguous documents old enough to settle whether KSeF received them."""
        limit = fields.Datetime.now() - RECONCILE_AFTER
        return any(d.ksef_ambiguous and d.write_date and d.write_date < limit for d in docs)

    def _apply(self, client, record, status, docs, listed, links):
        """Record the listed statuses of ``docs``; return how many reached a final state."""
        by_ref = {st.reference_number: st for st in listed}
        by_hash = {st.invoice_hash: st for st in listed if st.invoice_hash}
        by_file = {st.invoice_file_name: st for st in listed if st.invoice_file_name}
        final_session = status.code == 200 or status.code >= 300
        accepted, found = {}, {}
        finished = 0
        for doc in docs:
            st = by_ref.get(doc.ksef_invoice_ref) if doc.ksef_invoice_ref else None
            if st is None and doc.ksef_send_mode == "batch":
                st = by_file.get(f"{doc.id}.xml")
            if st is None and doc.ksef_send_mode == "online" and not doc.ksef_invoice_ref:
                st = by_hash.get(doc.xml_sha256)
            if st is None:
                if self._never_received(doc, status, final_session):
                    lost = _lt("KSeF did not receive the invoice in session %(ref)s.", ref=record.reference)
                    doc._mark_error(KsefError(lost._source), reference=record.reference, message=lost)
                continue
            outcome = st.outcome
            if outcome == outcomes.ACCEPTED:
                accepted[doc.id] = self._accepted_row(doc, st)
                if st.upo_download_url:
                    links[doc.id] = st.upo_download_url
                continue
            if not doc.ksef_invoice_ref:
                found[doc.id] = st
            if outcome == outcomes.PROCESSING:
                continue
            finished += 1
            if outcome == outcomes.DUPLICATE:
                self._reconcile_duplicate(client, doc, st)
            elif outcome == outcomes.REJECTED:
                doc._set_state(
                    "failure",
                    code=st.code,
                    message=_lt("KSeF rejected the invoice: %(msg)s", msg=st.message),
                    reference=st.reference_number,
                )
            else:  # cancelled by KSeF (session error, system): not processed, so it can be sent again
                cancelled = _lt(
                    "KSeF cancelled the invoice (%(code)s): %(msg)s", code=st.code, msg=st.message
                )
                doc._mark_error(
                    KsefError(cancelled._source), reference=st.reference_number, message=cancelled
                )
        for doc_id, st in found.items():
            doc = self.env["ksefnet.document"].browse(doc_id)
            if doc.state == "processing":
                doc._set_state(
                    "processing",
                    message=_lt("Found in KSeF's session as %(inv)s.", inv=st.reference_number),
                    reference=st.reference_number,
                    ksef_invoice_ref=st.reference_number,
                    ksef_ambiguous=False,
                )
        self.env["ksefnet.document"]._set_states("sent", accepted)
        return finished + len(accepted)

    def _accepted_row(self, doc, st: InvoiceStatus):
        message = _lt("KSeF number %(number)s assigned.", number=st.ksef_number)
        if doc.ksef_ambiguous and not doc.ksef_invoice_ref:
            message = _lt("Found in KSeF's session as %(inv)s; KSeF number %(number)s assigned.",
                        inv=st.reference_number, number=st.ksef_number)  # fmt: skip
        return {
            "code": st.code,
            "message": message,
            "reference": st.ksef_number,
            "ksef_number": st.ksef_number,
            "ksef_invoice_ref": st.reference_number,
            "ksef_ambiguous": False,
            "ksef_acquisition_date": st.acquisition_date and st.acquisition_date.replace(tzinfo=None),
            "ksef_storage_date": st.permanent_storage_date and st.permanent_storage_date.replace(tzinfo=None),
            "upo_state": "pending",
            "upo_attempts": 0,
            "upo_next_try_at": None,
        }

    def _never_received(self, doc, session_status, session_final):
        """True when the session shows the document was not received (so it may be sent again)."""
        if doc.ksef_send_mode == "batch":
            return session_status.code >= 300  # the batch failed or was cancelled as a whole
        age = fields.Datetime.now() - (doc.write_date or fields.Datetime.now())
        return session_final or age > RECONCILE_AFTER

    def _reconcile_duplicate(self, client, doc, status):
        """440: KSeF already holds an invoice with this seller, kind and number.

        When the original has the same content (our own earlier send whose answer was lost), adopt its
        KSeF number (its UPO is fetched from the original's session); otherwise it is a different invoice
        with a reused number: a person must act.
        """
        original = status.original_ksef_number
        if original:
            try:
                same = sha256_b64(client.get_invoice(original)) == doc.xml_sha256
            except (KsefError, ThrottleDeferred) as exc:
                _logger.info("cannot compare duplicate %s yet: %s", original, exc)
                return
            if same:
                doc._set_state(
                    "processing",
                    code=status.code,
                    message=_lt("KSeF already had this invoice as %(number)s: adopting it.", number=original),
                    reference=original,
                    ksef_session_ref=status.original_session_reference_number or doc.ksef_session_ref,
                )
                row = self._accepted_row(doc, status)
                row.update(ksef_number=original, reference=original, code=200,
                           message=_lt("KSeF number %(number)s assigned.", number=original))  # fmt: skip
                self.env["ksefnet.document"]._set_states("sent", {doc.id: row})
                return
        doc._set_state(
            "failure",
            code=status.code,
            message=_lt(
                "KSeF already holds a different invoice with this seller, kind and number (%(number)s): "
                "%(msg)s. Give the invoice a new number and resubmit it.",
                number=original or "-",
                msg=status.message,
            ),
            reference=status.reference_number,
        )

    # -- UPOs -----------------------------------------------------------------------------------------------
    def _upo_domain(self, buffer):
        return [
            ("buffer_id", "=", buffer.id),
            ("state", "=", "sent"),
            ("upo_state", "=", "pending"),
            "|",
            ("upo_next_try_at", "=", False),
            ("upo_next_try_at", "<=", fields.Datetime.now()),
        ]

    def _fetch_upos(self, buffer, client, rnd, links, deadline):
        """Fetch the pending UPOs: pre-signed links first (not rate-limited), per-invoice endpoint last."""
        Document = self.env["ksefnet.document"].with_context(active_test=False)
        while True:
            pending = Document.search(self._upo_domain(buffer), order="id", limit=UPO_CHUNK)
            if not pending:
                return
            if time.monotonic() > deadline:
                rnd.more_now = True
                return
            wanted = {d.id: links.pop(d.id) for d in pending if d.id in links}
            unlinked = pending - Document.browse(list(wanted))
            wanted.update(self._relisted_links(buffer, client, rnd, unlinked))
            got, failed = self._download_links(client, wanted)
            more, throttled = self._upos_one_by_one(client, rnd, pending - Document.browse(list(got)), failed)
            got.update(more)
            Document._store_upos(got)
            left = pending - Document.browse(list(got))
            if left:
                self._upo_later(left, failed, throttled)
            buffer._commit("upo")
            if left:
                return

    def _relisted_links(self, buffer, client, rnd, docs):
        """UPO links of documents whose session lists them, for sessions with many UPOs missing."""
        links = {}
        for ref, group in docs.grouped("ksef_session_ref").items():
            if len(group) < RELIST_FROM or self._room(client, "sessionInvoiceList") < 1:
                continue
            by_number = {d.ksef_number: d.id for d in group}
            try:
                for st in OnlineSession(client, reference_number=ref).invoices():
                    if st.ksef_number in by_number and st.upo_download_url:
                        links[by_number[st.ksef_number]] = st.upo_download_url
            except (KsefError, ThrottleDeferred) as exc:
                _logger.info("UPO links of session %s not listed: %s", ref, exc)
        return links

    def _download_links(self, client, wanted):
        """Download pre-signed UPO links in parallel: ({doc id: UPO}, {doc id: problem})."""
        got, failed = {}, {}
        if not wanted:
            return got, failed

        def fetch(item):
            doc_id, url = item
            try:
                return doc_id, client.download_presigned(url, "UPO (pre-signed link)"), None
            except KsefError as exc:
                return doc_id, None, exc

        with ThreadPoolExecutor(max_workers=UPO_THREADS) as pool:
            for doc_id, upo, exc in pool.map(fetch, wanted.items()):
                if upo is not None:
                    got[doc_id] = upo
                else:
                    failed[doc_id] = exc
        return got, failed

    def _upos_one_by_one(self, client, rnd, docs, failed):
        """The per-invoice UPO endpoint (group sessionMisc), keeping a reserve for status polls.

        Returns ({doc id: UPO}, seconds until the group has room again, or None if it was not exhausted)."""
        got = {}
        for doc in docs:
            if self._room(client, "sessionMisc") <= STATUS_RESERVE:
                wait = max(client.throttle.delay("sessionMisc"), 1.0) if client.throttle else 60.0
                rnd.wait(
                    "sessionMisc",
                    wait,
                    _lt(
                        "UPOs wait for KSeF's limit on session requests (%(count)s left).",
                        count=len(docs) - len(got),
                    ),
                )
                return got, wait
            try:
                got[doc.id] = client.invoice_upo_by_ksef_number(doc.ksef_session_ref, doc.ksef_number)
            except (KsefError, ThrottleDeferred) as exc:
                failed[doc.id] = exc
                outcome = outcomes.classify(exc)
                if outcome.kind == outcomes.THROTTLED:
                    rnd.wait("sessionMisc", outcome.delay or 60, describe_ksef_error(self.env, exc))
                    return got, outcome.delay or 60.0
        return got, None

    def _upo_later(self, docs, failed, throttled):
        """UPOs not fetched now: those KSeF refused back off; the others wait for the group's window."""
        tried = docs.filtered(
            lambda d: d.id in failed and outcomes.classify(failed[d.id]).kind != outcomes.THROTTLED
        )
        if tried:
            tried._upo_failed(describe_ksef_error(self.env, failed[tried[0].id]))
        rest = docs - tried
        if rest and throttled:
            rest._engine_write({"upo_next_try_at": fields.Datetime.now() + timedelta(seconds=throttled)})
