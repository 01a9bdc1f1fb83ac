"""Typed exceptions raised by the KSeF client.

Every error carries what a caller needs to decide what to do next, and nothing secret:

* ``code`` / ``description`` / ``details``: KSeF's own exception code (e.g. 21405) and texts;
* ``http_status`` and ``reference_number`` (KSeF's ``referenceNumber`` or ``traceId`` of the failed request);
* ``ksef_text``: what KSeF itself said about the failure, in its own words (KSeF's texts are Polish), when it
  said anything beyond its exception list; the ``message`` is this client's English summary;
* ``transient``: retrying later may succeed (timeouts, 5xx, 429, "not yet available");
* ``ambiguous``: the request may have been processed although no answer arrived, so the caller must
  reconcile (e.g. list the session's invoices) before sending again.

The client itself never retries silently (except refreshing an expired access token); retry policy belongs
to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of KSeF's ``exceptionDetailList`` (or a problem+json ``errors`` item)."""

    code: int | None
    description: str = ""
    details: tuple[str, ...] = field(default_factory=tuple)


class KsefError(Exception):
    """Base class of every error raised by :mod:`ksefnet_core`'s KSeF client."""

    transient = False
    ambiguous = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        errors: tuple[ErrorDetail, ...] | list[ErrorDetail] = (),
        reference_number: str | None = None,
        method: str | None = None,
        path: str | None = None,
        ksef_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.ksef_text = ksef_text or None
        self.http_status = http_status
        self.errors = tuple(errors)
        self.reference_number = reference_number
        self.method = method
        self.path = path

    @property
    def code(self) -> int | None:
        """The first KSeF exception code, if any."""
        return self.errors[0].code if self.errors else None

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(e.code for e in self.errors if e.code is not None)

    @property
    def description(self) -> str:
        return self.errors[0].description if self.errors else self.message

    @property
    def details(self) -> tuple[str, ...]:
        return tuple(d for e in self.errors for d in e.details)

    def __str__(self) -> str:
        parts = []
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.http_status:
            parts.append(f"HTTP {self.http_status}")
        head = " ".join(parts)
        body = self.message
        if self.errors:
            body = "; ".join(
                f"{e.code}: {e.description}" + (f" ({', '.join(e.details)})" if e.details else "")
                for e in self.errors
            )
        ref = f" [ref {self.reference_number}]" if self.reference_number else ""
        return f"{head}: {body}{ref}" if head else f"{body}{ref}"


class KsefTransportError(KsefError):
    """The request could not be delivered (connection refused, DNS, TLS). Nothing reached KSeF."""

    transient = True


class KsefTimeoutError(KsefTransportError):
    """The request was sent but no (complete) answer arrived in time: KSeF may have processed it."""

    ambiguous = True


class KsefProtocolError(KsefError):
    """KSeF answered something this client cannot understand (wrong content type, malformed JSON)."""

    transient = True


class KsefApiError(KsefError):
    """KSeF answered with an HTTP error status."""


class KsefBadRequest(KsefApiError):
    """HTTP 400 with an ExceptionResponse or problem+json body: the request itself is wrong."""


class KsefUnknownPublicKey(KsefBadRequest):
    """21470: the ``publicKeyId`` is unknown or withdrawn; fetch the public keys again and retry."""

    transient = True


class KsefNotYetAvailable(KsefBadRequest):
    """21165: the invoice was processed but cannot be downloaded yet; retry later."""

    transient = True


class KsefSessionUnavailable(KsefBadRequest):
    """21184 (API 2.8): the online session is temporarily unavailable. Nothing was accepted by this request:
    open a new session and send the invoices not yet accepted there."""

    transient = True


class KsefUnauthorized(KsefApiError):
    """HTTP 401: missing, invalid or expired token."""


class KsefForbidden(KsefApiError):
    """HTTP 403: authenticated, but not allowed (``reason_code`` says why)."""

    def __init__(self, message: str, *, reason_code: str | None = None, security: dict | None = None, **kw):
        super().__init__(message, **kw)
        self.reason_code = reason_code
        self.security = security or {}


class KsefGone(KsefApiError):
    """HTTP 410: the asynchronous operation's status is no longer kept (auth 7 days, export 7 days)."""


class KsefRateLimited(KsefApiError):
    """HTTP 429: too many requests; retry after ``retry_after`` seconds."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class KsefServerError(KsefApiError):
    """HTTP 5xx: KSeF failed or is unavailable. The request may or may not have been processed."""

    transient = True
    ambiguous = True


class KsefAuthenticationFailed(KsefError):
    """The authentication operation ended with a failure status (415, 425, 450, 460, 470, 480, 500, 550)."""

    def __init__(self, message: str, *, status_code: int, **kw):
        super().__init__(message, **kw)
        self.status_code = status_code

    @property
    def code(self) -> int | None:  # the auth status code is what callers look at
        return self.status_code


class KsefStillInProgress(KsefError):
    """An asynchronous operation (authentication, export) was still running when the wait for it ended.

    Nothing failed: poll the same reference number again later.
    """

    transient = True


class KsefOperationFailed(KsefError):
    """An asynchronous operation (session, export) ended with a failure status code."""

    def __init__(self, message: str, *, status_code: int, **kw):
        super().__init__(message, **kw)
        self.status_code = status_code

    @property
    def code(self) -> int | None:
        return self.status_code


# Exception codes with a dedicated class (HTTP 400 bodies).
BAD_REQUEST_CLASSES: dict[int, type[KsefBadRequest]] = {
    21470: KsefUnknownPublicKey,
    21165: KsefNotYetAvailable,
    21184: KsefSessionUnavailable,
}
