"""The one table that says what a KSeF answer means for the caller: the retry policy's single source.

Every path of the sending and downloading engine (online and batch sending, status polling, UPO fetching,
downloading) asks :func:`classify` what an exception means, and :func:`invoice_outcome` what an invoice
status code means, instead of deciding case by case. The kinds:

* ``throttled``: a rate limit (ours or KSeF's 429): nothing happened; come back after ``delay`` seconds;
* ``ambiguous``: the request may have been processed without an answer reaching us: reconcile (look the
  invoice up in its session) before anything is sent again;
* ``transient``: nothing was processed, or a read failed: try again after ``delay`` (None: the caller's
  backoff);
* ``session``: the KSeF session cannot take more (closed, unknown, full, temporarily unavailable):
  open a new session and continue with what it did not accept;
* ``auth``: the access token or the credentials are refused: authenticate again (401), or a person must
  fix the credentials or the permissions in KSeF (failed authentication, 403);
* ``permanent``: KSeF refused this request or invoice for what it is: a person must act.

The table is data (:data:`BAD_REQUEST_KINDS`, :data:`INVOICE_STATUS_KINDS`) plus the exception classes, so
a new KSeF code is one line here, not a change in every path.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import (
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefError,
    KsefForbidden,
    KsefGone,
    KsefOperationFailed,
    KsefProtocolError,
    KsefRateLimited,
    KsefServerError,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from .throttle import ThrottleDeferred

THROTTLED = "throttled"
AMBIGUOUS = "ambiguous"
TRANSIENT = "transient"
SESSION = "session"
AUTH = "auth"
PERMANENT = "permanent"
KINDS = (THROTTLED, AMBIGUOUS, TRANSIENT, SESSION, AUTH, PERMANENT)

#: what a request that changes something in KSeF is (its failure without an answer is ambiguous)
SEND = "send"
#: a request that only reads (its failure is never ambiguous)
READ = "read"

#: HTTP 400 exception codes with a meaning of their own (others: the request is wrong -> permanent)
BAD_REQUEST_KINDS: dict[int, str] = {
    21155: SESSION,  # too many invoices in the session
    21165: TRANSIENT,  # processed, not downloadable yet
    21173: SESSION,  # no such session
    21178: TRANSIENT,  # UPO not found (yet)
    21180: SESSION,  # the session's status forbids the operation (closed, expired)
    21184: SESSION,  # the session is temporarily unavailable: open a new one (API 2.8.0)
    21208: SESSION,  # batch upload time exceeded
    21304: AUTH,  # not authenticated
    21301: AUTH,  # no authorisation
    21470: TRANSIENT,  # unknown public key: fetch the keys again
}
#: authentication status codes (GET /auth/{ref}) that a later attempt may pass
TRANSIENT_AUTH_CODES = frozenset({500, 550})
#: delay (seconds) for transient failures of the platform when KSeF gives none
SERVER_DELAY = 30.0

#: invoice status codes (SessionInvoiceStatusResponse.status.code) -> what they mean
PROCESSING = "processing"
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
CANCELLED = "cancelled"
INVOICE_STATUS_KINDS: dict[int, str] = {
    100: PROCESSING,
    150: PROCESSING,
    200: ACCEPTED,
    405: CANCELLED,  # cancelled because of a session error: not processed, send again
    410: REJECTED,  # wrong permission scope
    415: REJECTED,  # attachments not allowed
    430: REJECTED,  # file verification (schema) error
    435: REJECTED,  # decryption error
    440: DUPLICATE,
    450: REJECTED,  # semantic verification error
    500: CANCELLED,  # unknown error
    550: CANCELLED,  # cancelled by the system
}


@dataclass(frozen=True)
class Outcome:
    """What a failure means: its ``kind`` (one of :data:`KINDS`) and, where known, when to try again."""

    kind: str
    delay: float | None = None

    @property
    def retriable(self) -> bool:
        """Something automatic may fix it (a person need not act)."""
        return self.kind in (THROTTLED, AMBIGUOUS, TRANSIENT, SESSION)


def classify(exc: BaseException, operation: str = READ) -> Outcome:
    """The outcome of ``exc`` raised by a KSeF call of this ``operation`` (:data:`SEND` or :data:`READ`)."""
    if isinstance(exc, ThrottleDeferred):
        return Outcome(THROTTLED, exc.wait)
    if isinstance(exc, KsefRateLimited):
        return Outcome(THROTTLED, exc.retry_after if exc.retry_after is not None else 60.0)
    if isinstance(exc, KsefTimeoutError):  # sent, no (complete) answer
        return Outcome(AMBIGUOUS if operation == SEND else TRANSIENT)
    if isinstance(exc, KsefTransportError):  # nothing reached KSeF
        return Outcome(TRANSIENT)
    if isinstance(exc, KsefServerError):  # 5xx: KSeF may or may not have processed it
        return Outcome(AMBIGUOUS if operation == SEND else TRANSIENT, SERVER_DELAY)
    if isinstance(exc, KsefProtocolError):
        return Outcome(AMBIGUOUS if operation == SEND else TRANSIENT, SERVER_DELAY)
    if isinstance(exc, KsefUnauthorized | KsefForbidden):
        return Outcome(AUTH)
    if isinstance(exc, KsefAuthenticationFailed):
        return Outcome(TRANSIENT if exc.status_code in TRANSIENT_AUTH_CODES else AUTH)
    if isinstance(exc, KsefBadRequest):
        for code in exc.codes:
            if code in BAD_REQUEST_KINDS:
                return Outcome(BAD_REQUEST_KINDS[code])
        return Outcome(PERMANENT)
    if isinstance(exc, KsefGone):
        return Outcome(PERMANENT)
    if isinstance(exc, KsefOperationFailed):
        return Outcome(PERMANENT)
    if isinstance(exc, KsefError):
        return Outcome(TRANSIENT if exc.transient else PERMANENT)
    return Outcome(PERMANENT)


def invoice_outcome(code: int) -> str:
    """What an invoice status code means: processing, accepted, duplicate, rejected or cancelled."""
    if code in INVOICE_STATUS_KINDS:
        return INVOICE_STATUS_KINDS[code]
    if code < 200:
        return PROCESSING
    return REJECTED
