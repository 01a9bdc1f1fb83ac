"""Low-level KSeF API 2.0 client: one method per endpoint, no hidden state but the HTTP session and tokens.

Every call has a timeout. Errors are raised as the typed exceptions of :mod:`ksefnet_core.errors`; the
client never retries on its own, with one exception: when an access token has expired (or is about to),
it is refreshed with the refresh token before the call, and a call answered 401 is repeated once after a
refresh (a 401 means KSeF did not process it).

Workflows (authentication, sending, downloading) are built on top in :mod:`ksefnet_core.auth`,
:mod:`ksefnet_core.sessions` and :mod:`ksefnet_core.download`.

KSeF may add an ``X-System-Warning`` header to any answer (``[code]: message | [code]: message``): a
technical warning that does not change the result (e.g. an invoice that will fail the stricter validation
later). The client logs every one and keeps the latest in :attr:`KsefClient.system_warnings`; a caller (the
Odoo buffer) can also pass ``on_system_warning`` to be told at once. On TEST, ``test_system_warning`` sends
``X-Test-System-Warning`` with every request, which makes KSeF answer with that text as a warning.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import requests

from . import __version__
from .crypto import PublicKeyCertificate, parse_datetime
from .environments import Environment
from .environments import get as get_environment
from .errors import (
    BAD_REQUEST_CLASSES,
    ErrorDetail,
    KsefApiError,
    KsefBadRequest,
    KsefError,
    KsefForbidden,
    KsefGone,
    KsefProtocolError,
    KsefRateLimited,
    KsefServerError,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from .throttle import OTHER_GROUP, Throttle

_logger = logging.getLogger(__name__)

COLLECTIVE_GROUP = "collectiveIdentifier"
#: ``POST /permissions/{kind}/grants``
PERMISSION_GRANT_KINDS = (
    "persons",
    "entities",
    "authorizations",
    "indirect",
    "subunits",
    "eu-entities",
    "eu-entities/administration",
)
#: query name -> (path under /permissions/query, key of the list in the answer)
PERMISSION_QUERIES = {
    "personal": ("personal/grants", "permissions"),
    "persons": ("persons/grants", "permissions"),
    "subunits": ("subunits/grants", "permissions"),
    "entities": ("entities/grants", "permissions"),
    "subordinate-entities": ("subordinate-entities/roles", "roles"),
    "authorizations": ("authorizations/grants", "authorizationGrants"),
    "eu-entities": ("eu-entities/grants", "permissions"),
}
SYSTEM_WARNING_HEADER = "X-System-Warning"
TEST_SYSTEM_WARNING_HEADER = "X-Test-System-Warning"
#: one warning of the header (the spec's regex: ``\[(?<code>[^\]]+)\]: (?<message>[^|]+)``)
_WARNING = re.compile(r"\[(?P<code>[^\]]+)\]: (?P<message>[^|]+)")
#: how many system warnings a client keeps
KEPT_WARNINGS = 100

DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds
#: refresh the access token when it expires within this margin
REFRESH_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True, repr=False)
class Token:
    """A JWT with its expiry. ``repr`` never shows the token itself."""

    token: str
    valid_until: datetime

    @classmethod
    def from_json(cls, data: dict) -> Token:
        return cls(data["token"], parse_datetime(data["validUntil"]))

    def expires_within(self, margin: timedelta, now: datetime | None = None) -> bool:
        return self.valid_until - margin <= (now or datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return f"Token(<hidden>, valid_until={self.valid_until.isoformat()})"


@dataclass(frozen=True)
class SystemWarning:
    """One warning of KSeF's ``X-System-Warning`` header, with the request it came with."""

    code: str
    message: str
    method: str
    path: str
    received: datetime

    def __str__(self) -> str:
        return f"[{self.code}]: {self.message}"


def parse_system_warnings(value: str | None) -> list[tuple[str, str]]:
    """(code, message) pairs of an ``X-System-Warning`` value; text outside the format is one warning with
    code ``?`` (KSeF's format may change; nothing it says is dropped)."""
    if not value or not value.strip():
        return []
    found = [(m["code"].strip(), m["message"].strip()) for m in _WARNING.finditer(value)]
    return found or [("?", value.strip())]


def endpoint_template(path: str) -> str:
    """``/tokens/20251010-EC-...`` -> ``/tokens/{}``: the endpoint of a path, for per-endpoint counters.

    KSeF's literal path segments are lower-case words (``grants``, ``current``, ``eu-entities``); identifiers
    (reference numbers, serial numbers, KSeF numbers, permission ids) are not.
    """
    return "/".join(
        seg if re.fullmatch(r"[a-z][a-z-]*", seg) or not seg else "{}"
        for seg in path.split("?", 1)[0].split("/")
    )


class KsefClient:
    """HTTP client for one KSeF environment (or the local simulator, through a custom base URL).

    Thread-safe for concurrent calls once authenticated (``requests.Session`` per client; token refresh is
    serialised by a lock).
    """

    def __init__(
        self,
        environment: Environment | str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        problem_details: bool = False,
        throttle: Throttle | None = None,
        throttle_max_wait: float | None = None,
        on_system_warning: Callable[[SystemWarning], None] | None = None,
        test_system_warning: str | None = None,
    ) -> None:
        self.environment = get_environment(environment) if isinstance(environment, str) else environment
        self.timeout = timeout
        self.http = session or requests.Session()
        self.http.headers.update({"User-Agent": f"KSeFNet/{__version__}", "Accept": "application/json"})
        if problem_details:
            self.http.headers["X-Error-Format"] = "problem-details"
        if test_system_warning:  # TEST only: KSeF echoes it as X-System-Warning
            if not test_system_warning.isascii() or "\n" in test_system_warning:
                raise ValueError("test_system_warning must be one line of ASCII text (it is an HTTP header)")
            self.http.headers[TEST_SYSTEM_WARNING_HEADER] = test_system_warning
        self.access_token: Token | None = None
        self.refresh_token: Token | None = None
        self.auth_reference: str | None = None
        self._refresh_lock = threading.Lock()
        self._public_keys: list[PublicKeyCertificate] | None = None
        #: optional client-side pacing (see :mod:`ksefnet_core.throttle`); None sends at once
        self.throttle = throttle
        self.throttle_max_wait = throttle_max_wait
        #: the latest system warnings KSeF sent (oldest first)
        self.system_warnings: deque[SystemWarning] = deque(maxlen=KEPT_WARNINGS)
        self.on_system_warning = on_system_warning

    def __repr__(self) -> str:
        return f"KsefClient({self.environment.name}, {self.environment.api_base})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> KsefClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.environment.api_base + path

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = "access",
        json_body: Any = None,
        data: bytes | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        expect: tuple[int, ...] = (200,),
        absolute_url: str | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        group: str | None = None,
    ) -> requests.Response:
        """Send one request. ``auth`` is ``"access"``, ``"refresh"``, a raw token string, or None.

        ``group`` is the request's rate-limit group (``GET /rate-limits`` key); with a throttle set, the call
        waits until it is within KSeF's windows (or raises ThrottleDeferred past ``throttle_max_wait``).
        """
        hdrs = dict(headers or {})
        uses_access = auth == "access"
        if group is None and uses_access and absolute_url is None:
            group = OTHER_GROUP  # every protected endpoint without a group of its own counts as "other"
        # the endpoints of the default group each have their own counter (limity-api.md)
        counter = f"{OTHER_GROUP} {method} {endpoint_template(path)}" if group == OTHER_GROUP else None
        if uses_access:
            self._ensure_fresh_access_token()
        for attempt in (1, 2):
            bearer = self._bearer(auth)
            if bearer:
                hdrs["Authorization"] = f"Bearer {bearer}"
            if json_body is not None:
                hdrs.setdefault("Content-Type", "application/json")
                payload: bytes | None = json.dumps(json_body).encode("utf-8")
            else:
                payload = data
            if self.throttle is not None and group:
                self.throttle.acquire(group, self.throttle_max_wait, counter)
            resp = self._send(
                method, absolute_url or self.url(path), payload, params, hdrs, stream, timeout, path
            )
            self._note_warnings(resp, method, path)
            if resp.status_code == 401 and uses_access and attempt == 1 and self.refresh_token is not None:
                resp.close()
                self.refresh_access_token()
                continue
            break
        if resp.status_code not in expect:
            err = self._error(resp, method, path)
            if isinstance(err, KsefRateLimited) and self.throttle is not None and group:
                self.throttle.penalise(group, err.retry_after or 1.0)
            raise err
        return resp

    def _note_warnings(self, resp: requests.Response, method: str, path: str) -> None:
        """Log and keep the ``X-System-Warning`` of an answer, and tell ``on_system_warning``."""
        value = resp.headers.get(SYSTEM_WARNING_HEADER)
        if not value:
            return
        now = datetime.now(timezone.utc)
        for code, message in parse_system_warnings(value):
            warning = SystemWarning(code, message, method, path, now)
            _logger.warning("KSeF system warning on %s %s: %s", method, path, warning)
            self.system_warnings.append(warning)
            if self.on_system_warning is not None:
                try:
                    self.on_system_warning(warning)
                except Exception:  # a listener's bug must not turn KSeF's answer into an error
                    _logger.exception("system warning listener failed")

    def _close_group(self, close_group: str, open_group: str) -> str:
        """KSeF 2.8+ counts closing sessions in a group of its own; a throttle built for older limits that do
        not list it paces closing with opening, as KSeF did then."""
        if self.throttle is None or close_group in self.throttle.limits:
            return close_group
        return open_group

    def _bearer(self, auth: str | None) -> str | None:
        if auth is None:
            return None
        if auth == "access":
            if self.access_token is None:
                raise KsefError("not authenticated: no access token (authenticate first)")
            return self.access_token.token
        if auth == "refresh":
            if self.refresh_token is None:
                raise KsefError("not authenticated: no refresh token")
            return self.refresh_token.token
        return auth

    def _send(
        self,
        method: str,
        url: str,
        payload: bytes | None,
        params: dict | None,
        headers: dict,
        stream: bool,
        timeout: float | tuple[float, float] | None,
        path: str,
    ) -> requests.Response:
        try:
            return self.http.request(
                method,
                url,
                data=payload,
                params=params,
                headers=headers,
                timeout=timeout or self.timeout,
                stream=stream,
            )
        except requests.ConnectTimeout as exc:
            raise KsefTransportError(
                f"connection timed out: {_brief(exc)}", method=method, path=path
            ) from None
        except requests.ConnectionError as exc:
            # A connection reset/closed after the request was written is ambiguous: KSeF may have it.
            text = str(exc)
            sent = any(s in text for s in ("RemoteDisconnected", "Connection aborted", "reset by peer"))
            cls = KsefTimeoutError if sent else KsefTransportError
            raise cls(f"connection failed: {_brief(exc)}", method=method, path=path) from None
        except requests.Timeout as exc:
            raise KsefTimeoutError(f"no answer in time: {_brief(exc)}", method=method, path=path) from None
        except requests.RequestException as exc:
            raise KsefTransportError(f"request failed: {_brief(exc)}", method=method, path=path) from None

    @staticmethod
    def _error(resp: requests.Response, method: str, path: str) -> KsefError:
        """Turn an error answer into the matching typed exception."""
        status = resp.status_code
        ctype = resp.headers.get("Content-Type", "")
        body: Any = None
        if "json" in ctype:
            try:
                body = resp.json()
            except ValueError:
                body = None
        errors: list[ErrorDetail] = []
        reference = None
        detail = ""
        if isinstance(body, dict):
            exc = body.get("exception")
            if isinstance(exc, dict):
                reference = exc.get("referenceNumber") or exc.get("serviceCode")
                for item in exc.get("exceptionDetailList") or []:
                    errors.append(
                        ErrorDetail(
                            item.get("exceptionCode"),
                            item.get("exceptionDescription") or "",
                            tuple(item.get("details") or ()),
                        )
                    )
            for item in body.get("errors") or []:  # problem+json 400
                errors.append(
                    ErrorDetail(
                        item.get("code"), item.get("description") or "", tuple(item.get("details") or ())
                    )
                )
            st = body.get("status")
            if isinstance(st, dict):  # legacy 429 body
                detail = "; ".join(st.get("details") or []) or st.get("description", "")
            detail = detail or body.get("detail") or body.get("title") or ""
            reference = reference or body.get("traceId")
        kw: dict[str, Any] = {
            "http_status": status,
            "errors": errors,
            "reference_number": reference,
            "method": method,
            "path": path,
            "ksef_text": detail or None,
        }
        message = detail or resp.reason or f"HTTP {status}"
        if status == 400:
            cls = next(
                (BAD_REQUEST_CLASSES[e.code] for e in errors if e.code in BAD_REQUEST_CLASSES), KsefBadRequest
            )
            return cls(message, **kw)
        if status == 401:
            return KsefUnauthorized(message, **kw)
        if status == 403:
            reason = body.get("reasonCode") if isinstance(body, dict) else None
            security = body.get("security") if isinstance(body, dict) else None
            return KsefForbidden(message, reason_code=reason, security=security, **kw)
        if status == 410:
            return KsefGone(message, **kw)
        if status == 429:
            return KsefRateLimited(message, retry_after=_retry_after(resp.headers.get("Retry-After")), **kw)
        if status >= 500:
            return KsefServerError(message, **kw)
        if 200 <= status < 300:
            return KsefProtocolError(f"unexpected status {status}", **kw)
        return KsefApiError(message, **kw)

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise KsefProtocolError(
                f"expected JSON, got {resp.headers.get('Content-Type')!r}", http_status=resp.status_code
            ) from None

    # -- tokens -----------------------------------------------------------------------------------------
    def set_tokens(self, access: Token, refresh: Token | None, auth_reference: str | None = None) -> None:
        self.access_token, self.refresh_token = access, refresh
        if auth_reference:
            self.auth_reference = auth_reference

    def _ensure_fresh_access_token(self) -> None:
        tok = self.access_token
        if tok is not None and self.refresh_token is not None and tok.expires_within(REFRESH_MARGIN):
            self.refresh_access_token(only_if=tok)

    def refresh_access_token(self, only_if: Token | None = None) -> Token:
        """``POST /auth/token/refresh``: a new access token from the refresh token."""
        with self._refresh_lock:
            if only_if is not None and self.access_token is not only_if:
                assert self.access_token is not None
                return self.access_token  # another thread refreshed it meanwhile
            resp = self.request("POST", "/auth/token/refresh", auth="refresh", group="auth")
            self.access_token = Token.from_json(self._json(resp)["accessToken"])
            _logger.debug("KSeF access token refreshed, valid until %s", self.access_token.valid_until)
            return self.access_token

    # -- security ---------------------------------------------------------------------------------------
    def get_public_key_certificates(self) -> list[PublicKeyCertificate]:
        resp = self.request("GET", "/security/public-key-certificates", auth=None, group="anonymous")
        return [PublicKeyCertificate.from_json(item) for item in self._json(resp)]

    def public_keys(self, refresh: bool = False) -> list[PublicKeyCertificate]:
        """The public keys, fetched once and cached (``refresh=True`` after a 21470 answer)."""
        if refresh or self._public_keys is None:
            self._public_keys = self.get_public_key_certificates()
        return self._public_keys

    # -- authentication ---------------------------------------------------------------------------------
    def auth_challenge(self) -> dict:
        return self._json(self.request("POST", "/auth/challenge", auth=None, group="anonymous"))

    def auth_ksef_token(self, body: dict) -> dict:
        return self._json(
            self.request(
                "POST", "/auth/ksef-token", auth=None, json_body=body, expect=(202,), group="anonymous"
            )
        )

    def auth_xades_signature(self, signed_xml: bytes, verify_certificate_chain: bool | None = None) -> dict:
        params = (
            None
            if verify_certificate_chain is None
            else {"verifyCertificateChain": str(verify_certificate_chain).lower()}
        )
        resp = self.request(
            "POST",
            "/auth/xades-signature",
            auth=None,
            data=signed_xml,
            params=params,
            headers={"Content-Type": "application/xml"},
            expect=(202,),
            group="anonymous",
        )
        return self._json(resp)

    def auth_status(self, reference_number: str, authentication_token: str) -> dict:
        return self._json(
            self.request("GET", f"/auth/{reference_number}", auth=authentication_token, group="auth")
        )

    def auth_redeem(self, authentication_token: str) -> dict:
        return self._json(self.request("POST", "/auth/token/redeem", auth=authentication_token, group="auth"))

    def auth_sessions(self, page_size: int | None = None) -> Iterator[dict]:
        params = {"pageSize": page_size} if page_size else None
        yield from self._continuation("GET", "/auth/sessions", "items", params=params, group="other")

    def revoke_current_auth_session(self) -> None:
        self.request(
            "DELETE",
            "/auth/sessions/current",
            auth="refresh" if self.refresh_token else "access",
            expect=(204,),
        )

    def revoke_auth_session(self, reference_number: str) -> None:
        self.request("DELETE", f"/auth/sessions/{reference_number}", expect=(204,))

    # -- KSeF tokens ------------------------------------------------------------------------------------
    def create_token(self, permissions: list[str], description: str) -> dict:
        body = {"permissions": permissions, "description": description}
        return self._json(self.request("POST", "/tokens", json_body=body, expect=(202,)))

    def list_tokens(self, **filters: Any) -> Iterator[dict]:
        yield from self._continuation("GET", "/tokens", "tokens", params=filters or None, group="other")

    def get_token(self, reference_number: str) -> dict:
        return self._json(self.request("GET", f"/tokens/{reference_number}"))

    def revoke_token(self, reference_number: str) -> None:
        self.request("DELETE", f"/tokens/{reference_number}", expect=(204,))

    # -- online session ---------------------------------------------------------------------------------
    def open_online_session(self, form_code: dict, encryption: dict) -> dict:
        body = {"formCode": form_code, "encryption": encryption}
        return self._json(
            self.request("POST", "/sessions/online", json_body=body, expect=(201,), group="onlineSession")
        )

    def send_online_invoice(self, session_reference: str, body: dict) -> dict:
        resp = self.request(
            "POST",
            f"/sessions/online/{session_reference}/invoices",
            json_body=body,
            expect=(202,),
            group="invoiceSend",
        )
        return self._json(resp)

    def close_online_session(self, session_reference: str) -> None:
        self.request(
            "POST",
            f"/sessions/online/{session_reference}/close",
            expect=(204,),
            group=self._close_group("onlineSessionClose", "onlineSession"),
        )

    # -- batch session ----------------------------------------------------------------------------------
    def open_batch_session(self, body: dict) -> dict:
        return self._json(
            self.request("POST", "/sessions/batch", json_body=body, expect=(201,), group="batchSession")
        )

    def upload_batch_part(self, upload_request: dict, data: Any) -> None:
        """Upload one encrypted part with exactly the method, URL and headers KSeF returned (no bearer)."""
        method = upload_request.get("method") or "PUT"
        self.request(
            method,
            "/sessions/batch (part upload)",
            auth=None,
            absolute_url=upload_request["url"],
            data=data,
            headers=dict(upload_request.get("headers") or {}),
            expect=(200, 201),
        )

    def close_batch_session(self, session_reference: str) -> None:
        self.request(
            "POST",
            f"/sessions/batch/{session_reference}/close",
            expect=(204,),
            group=self._close_group("batchSessionClose", "batchSession"),
        )

    # -- session status ---------------------------------------------------------------------------------
    def session_status(self, session_reference: str) -> dict:
        return self._json(self.request("GET", f"/sessions/{session_reference}", group="sessionMisc"))

    def list_sessions(
        self, session_type: str, page_size: int | None = None, **filters: Any
    ) -> Iterator[dict]:
        params: dict[str, Any] = {"sessionType": session_type, **filters}
        if page_size:
            params["pageSize"] = page_size
        yield from self._continuation("GET", "/sessions", "sessions", params=params, group="sessionList")

    def session_invoices(self, session_reference: str, page_size: int | None = None) -> Iterator[dict]:
        params = {"pageSize": page_size} if page_size else None
        path = f"/sessions/{session_reference}/invoices"
        yield from self._continuation("GET", path, "invoices", params=params, group="sessionInvoiceList")

    def session_failed_invoices(self, session_reference: str, page_size: int | None = None) -> Iterator[dict]:
        params = {"pageSize": page_size} if page_size else None
        path = f"/sessions/{session_reference}/invoices/failed"
        yield from self._continuation("GET", path, "invoices", params=params, group="sessionInvoiceList")

    def session_invoice_status(self, session_reference: str, invoice_reference: str) -> dict:
        return self._json(
            self.request(
                "GET", f"/sessions/{session_reference}/invoices/{invoice_reference}", group="invoiceStatus"
            )
        )

    def invoice_upo(self, session_reference: str, invoice_reference: str) -> bytes:
        resp = self.request(
            "GET", f"/sessions/{session_reference}/invoices/{invoice_reference}/upo", group="sessionMisc"
        )
        return resp.content

    def invoice_upo_by_ksef_number(self, session_reference: str, ksef_number: str) -> bytes:
        resp = self.request(
            "GET", f"/sessions/{session_reference}/invoices/ksef/{ksef_number}/upo", group="sessionMisc"
        )
        return resp.content

    def session_upo(self, session_reference: str, upo_reference: str) -> bytes:
        return self.request(
            "GET", f"/sessions/{session_reference}/upo/{upo_reference}", group="sessionMisc"
        ).content

    def download_presigned(self, url: str, what: str = "pre-signed download") -> bytes:
        """GET a pre-signed storage URL (UPO, export part): no bearer token, not rate-limited."""
        return self.request("GET", what, auth=None, absolute_url=url).content

    # -- invoices ---------------------------------------------------------------------------------------
    def query_invoice_metadata(
        self, filters: dict, *, page_offset: int = 0, page_size: int = 250, sort_order: str = "Asc"
    ) -> dict:
        params = {"sortOrder": sort_order, "pageOffset": page_offset, "pageSize": page_size}
        return self._json(
            self.request(
                "POST", "/invoices/query/metadata", json_body=filters, params=params, group="invoiceMetadata"
            )
        )

    def get_invoice(self, ksef_number: str) -> bytes:
        """The invoice XML exactly as stored by KSeF (raises KsefNotYetAvailable for 21165)."""
        resp = self.request(
            "GET",
            f"/invoices/ksef/{ksef_number}",
            headers={"Accept": "application/xml"},
            group="invoiceDownload",
        )
        return resp.content

    def create_export(self, body: dict) -> dict:
        return self._json(
            self.request("POST", "/invoices/exports", json_body=body, expect=(201,), group="invoiceExport")
        )

    def export_status(self, reference_number: str) -> dict:
        return self._json(
            self.request("GET", f"/invoices/exports/{reference_number}", group="invoiceExportStatus")
        )

    # -- KSeF certificates (certyfikaty-KSeF.md) ---------------------------------------------------------
    def certificate_limits(self) -> dict:
        """``GET /certificates/limits``: ``{canRequest, enrollment{limit, remaining}, certificate{...}}``."""
        return self._json(self.request("GET", "/certificates/limits"))

    def certificate_enrollment_data(self) -> dict:
        """``GET /certificates/enrollments/data``: the subject DN a CSR must carry (XAdES authentication only)."""
        return self._json(self.request("GET", "/certificates/enrollments/data"))

    def enroll_certificate(
        self, name: str, certificate_type: str, csr_der: bytes, valid_from: datetime | None = None
    ) -> dict:
        """``POST /certificates/enrollments`` (202): ``{referenceNumber, timestamp}``."""
        if certificate_type not in ("Authentication", "Offline"):
            raise ValueError("certificate type must be Authentication or Offline")
        body: dict[str, Any] = {
            "certificateName": name,
            "certificateType": certificate_type,
            "csr": base64.b64encode(csr_der).decode("ascii"),
        }
        if valid_from is not None:
            body["validFrom"] = valid_from.isoformat()
        return self._json(self.request("POST", "/certificates/enrollments", json_body=body, expect=(202,)))

    def certificate_enrollment_status(self, reference_number: str) -> dict:
        """``GET /certificates/enrollments/{ref}``: status 100/200/400...; ``certificateSerialNumber`` at 200."""
        return self._json(self.request("GET", f"/certificates/enrollments/{reference_number}"))

    def retrieve_certificates(self, serial_numbers: list[str]) -> list[dict]:
        """``POST /certificates/retrieve``: ``{certificate (DER, Base64), certificateName, ...}`` per serial."""
        body = {"certificateSerialNumbers": list(serial_numbers)}
        return list(
            self._json(self.request("POST", "/certificates/retrieve", json_body=body))["certificates"]
        )

    def query_certificates(self, filters: dict | None = None, *, page_size: int = 50) -> Iterator[dict]:
        """``POST /certificates/query`` (all pages, ``pageOffset``/``hasMore``), newest request first."""
        yield from self._offset_pages("POST", "/certificates/query", "certificates", page_size, filters or {})

    def revoke_certificate(self, serial_number: str, reason: str | None = None) -> None:
        """``POST /certificates/{serial}/revoke`` (reason: Unspecified, Superseded, KeyCompromise)."""
        body = {"revocationReason": reason} if reason else {}
        self.request("POST", f"/certificates/{serial_number}/revoke", json_body=body, expect=(204,))

    def set_test_certificate_valid_to(self, serial_number: str, valid_to: datetime) -> None:
        """TEST only (API 2.7.0): ``PUT /testdata/certificates/{serial}`` shortens a certificate's validity."""
        self.request(
            "PUT", f"/testdata/certificates/{serial_number}", json_body={"validTo": valid_to.isoformat()}
        )

    def subject_limits(self) -> dict:
        """``GET /limits/subject``: ``{enrollment{maxEnrollments}, certificate{maxCertificates}}``."""
        return self._json(self.request("GET", "/limits/subject"))

    # -- permissions (uprawnienia.md) ------------------------------------------------------------------
    def grant_permissions(self, kind: str, body: dict) -> str:
        """``POST /permissions/{kind}/grants`` (``kind``: one of :data:`PERMISSION_GRANT_KINDS`); the reference
        number of the asynchronous operation (see :meth:`permission_operation_status`)."""
        if kind not in PERMISSION_GRANT_KINDS:
            raise ValueError(f"permission grant kind must be one of {', '.join(PERMISSION_GRANT_KINDS)}")
        resp = self.request("POST", f"/permissions/{kind}/grants", json_body=body, expect=(202,))
        return str(self._json(resp)["referenceNumber"])

    def revoke_permission(self, permission_id: str, *, authorization: bool = False) -> str:
        """``DELETE /permissions/common/grants/{id}`` (or ``/authorizations/grants/{id}`` for entity
        authorisations such as SelfInvoicing); the reference number of the operation."""
        path = "authorizations" if authorization else "common"
        resp = self.request("DELETE", f"/permissions/{path}/grants/{permission_id}", expect=(202,))
        return str(self._json(resp)["referenceNumber"])

    def permission_operation_status(self, reference_number: str) -> dict:
        """``GET /permissions/operations/{ref}``: ``{status: {code, description, details?}}`` (200 done)."""
        return self._json(self.request("GET", f"/permissions/operations/{reference_number}"))

    def query_permissions(
        self, kind: str, body: dict | None = None, *, page_size: int = 100
    ) -> Iterator[dict]:
        """``POST /permissions/query/{...}`` (all pages): ``kind`` one of :data:`PERMISSION_QUERIES`."""
        if kind not in PERMISSION_QUERIES:
            raise ValueError(f"permission query must be one of {', '.join(PERMISSION_QUERIES)}")
        path, key = PERMISSION_QUERIES[kind]
        yield from self._offset_pages("POST", f"/permissions/query/{path}", key, page_size, body or {})

    def entity_roles(self, *, page_size: int = 100) -> Iterator[dict]:
        """``GET /permissions/query/entities/roles``: the roles of the context's entity (all pages)."""
        yield from self._offset_pages("GET", "/permissions/query/entities/roles", "roles", page_size)

    def attachment_permission_status(self) -> dict:
        """``GET /permissions/attachments/status``: ``{isAttachmentAllowed, revokedDate?}``."""
        return self._json(self.request("GET", "/permissions/attachments/status"))

    def peppol_providers(self, *, page_size: int = 100) -> Iterator[dict]:
        """``GET /peppol/query`` (public): the Peppol service providers registered in KSeF."""
        yield from self._offset_pages("GET", "/peppol/query", "peppolProviders", page_size, auth=None)

    # -- collective identifiers (API 2.7) ---------------------------------------------------------------
    def create_collective_identifier(self, invoices: list[dict]) -> str:
        """``POST /collective-identifiers``: 2 to 500 invoices of one seller (``{"ksefNumber", "payment"?:
        {"amount", "currency"}, "description"?}`` each) under one new identifier; returns its number."""
        if not 2 <= len(invoices) <= 500:
            raise ValueError("a collective identifier groups 2 to 500 invoices")
        resp = self.request(
            "POST",
            "/collective-identifiers",
            json_body={"invoices": invoices},
            expect=(201,),
            group=COLLECTIVE_GROUP,
        )
        return str(self._json(resp)["collectiveIdentifierNumber"])

    def query_collective_identifiers(
        self, date_created_from: datetime, date_created_to: datetime, page_size: int = 200, **filters: Any
    ) -> Iterator[dict]:
        """``POST /collective-identifiers/query`` (all pages): identifiers created in the range (at most 100
        days); ``filters``: ``collectiveIdentifierNumber``, ``invoiceCountFrom``/``To``,
        ``createdInCurrentContext``."""
        body = {
            "dateCreatedFrom": date_created_from.isoformat(),
            "dateCreatedTo": date_created_to.isoformat(),
        }
        body.update(filters)
        yield from self._continuation(
            "POST",
            "/collective-identifiers/query",
            "collectiveIdentifiers",
            params={"pageSize": page_size},
            json_body=body,
            group=COLLECTIVE_GROUP,
        )

    def collective_identifier_invoices(self, numbers: list[str], page_size: int = 500) -> Iterator[dict]:
        """``POST /collective-identifiers/invoices`` (API 2.7.1; all pages): the invoices of 1 to 10
        identifiers, each with its ``collectiveIdentifierNumber``."""
        if not 1 <= len(numbers) <= 10:
            raise ValueError("1 to 10 collective identifiers per query")
        yield from self._continuation(
            "POST",
            "/collective-identifiers/invoices",
            "invoices",
            params={"pageSize": page_size},
            json_body={"collectiveIdentifierNumbers": list(numbers)},
            group=COLLECTIVE_GROUP,
        )

    def collective_identifiers_of_invoice(self, ksef_number: str, page_size: int = 200) -> Iterator[dict]:
        """``GET /collective-identifiers/ksef/{ksefNumber}`` (all pages)."""
        yield from self._continuation(
            "GET",
            f"/collective-identifiers/ksef/{ksef_number}",
            "collectiveIdentifiers",
            params={"pageSize": page_size},
            group=COLLECTIVE_GROUP,
        )

    # -- limits -----------------------------------------------------------------------------------------
    def context_limits(self) -> dict:
        return self._json(self.request("GET", "/limits/context"))

    def rate_limits(self) -> dict:
        return self._json(self.request("GET", "/rate-limits"))

    def set_test_rate_limits(self, rate_limits: dict) -> None:
        """TEST only: ``POST /testdata/rate-limits``."""
        self.request("POST", "/testdata/rate-limits", json_body={"rateLimits": rate_limits})

    # -- TEST data (srodowiska.md, dane-testowe-scenariusze.md; TEST environment only) --------------------
    def reset_test_rate_limits(self) -> None:
        """``DELETE /testdata/rate-limits``: back to the environment's default limits."""
        self.request("DELETE", "/testdata/rate-limits")

    def set_test_production_rate_limits(self) -> None:
        """``POST /testdata/rate-limits/production``: the limits of production."""
        self.request("POST", "/testdata/rate-limits/production")

    def set_test_session_limits(self, limits: dict) -> None:
        """``POST /testdata/limits/context/session``: ``{onlineSession, batchSession, collectiveIdentifier}``."""
        self.request("POST", "/testdata/limits/context/session", json_body=limits)

    def reset_test_session_limits(self) -> None:
        self.request("DELETE", "/testdata/limits/context/session")

    def set_test_subject_limits(self, limits: dict) -> None:
        """``POST /testdata/limits/subject/certificate``: ``{subjectIdentifierType, enrollment, certificate}``."""
        self.request("POST", "/testdata/limits/subject/certificate", json_body=limits)

    def reset_test_subject_limits(self) -> None:
        self.request("DELETE", "/testdata/limits/subject/certificate")

    def create_test_subject(
        self, nip: str, subject_type: str, description: str, subunits: list[dict] | None = None
    ) -> None:
        """``POST /testdata/subject`` (no authentication): an enforcement authority, VAT group or JST, with
        subunits ``[{subjectNip, description}]``; 30001 when it exists."""
        body: dict[str, Any] = {"subjectNip": nip, "subjectType": subject_type, "description": description}
        if subunits:
            body["subunits"] = subunits
        self.request("POST", "/testdata/subject", auth=None, json_body=body, group="anonymous")

    def remove_test_subject(self, nip: str) -> None:
        self.request(
            "POST", "/testdata/subject/remove", auth=None, json_body={"subjectNip": nip}, group="anonymous"
        )

    def create_test_person(
        self, nip: str, pesel: str, description: str, *, is_bailiff: bool = False, is_deceased: bool = False
    ) -> None:
        """``POST /testdata/person`` (no authentication): a person with PESEL who owns the NIP."""
        body = {"nip": nip, "pesel": pesel, "isBailiff": is_bailiff, "description": description}
        if is_deceased:
            body["isDeceased"] = True
        self.request("POST", "/testdata/person", auth=None, json_body=body, group="anonymous")

    def remove_test_person(self, nip: str) -> None:
        self.request("POST", "/testdata/person/remove", auth=None, json_body={"nip": nip}, group="anonymous")

    def grant_test_permissions(self, context_nip: str, authorized: dict, permissions: dict[str, str]) -> None:
        """``POST /testdata/permissions`` (no authentication): ``permissions`` maps each permission type to its
        description; ``authorized``: ``{type: Nip | Pesel | Fingerprint, value}``."""
        body = {
            "contextIdentifier": {"type": "Nip", "value": context_nip},
            "authorizedIdentifier": authorized,
            "permissions": [{"permissionType": p, "description": d} for p, d in permissions.items()],
        }
        self.request("POST", "/testdata/permissions", auth=None, json_body=body, group="anonymous")

    def revoke_test_permissions(self, context_nip: str, authorized: dict) -> None:
        body = {
            "contextIdentifier": {"type": "Nip", "value": context_nip},
            "authorizedIdentifier": authorized,
        }
        self.request("POST", "/testdata/permissions/revoke", auth=None, json_body=body, group="anonymous")

    def allow_test_attachments(self, nip: str) -> None:
        """``POST /testdata/attachment``: invoices with attachments allowed for the NIP."""
        self.request("POST", "/testdata/attachment", auth=None, json_body={"nip": nip}, group="anonymous")

    def revoke_test_attachments(self, nip: str, expected_end_date: date | None = None) -> None:
        body: dict[str, Any] = {"nip": nip}
        if expected_end_date is not None:
            body["expectedEndDate"] = expected_end_date.isoformat()
        self.request("POST", "/testdata/attachment/revoke", auth=None, json_body=body, group="anonymous")

    def block_test_context(self, context: dict) -> None:
        """``POST /testdata/context/block``: authentication in the context ends with 480 until unblocked."""
        self.request("POST", "/testdata/context/block", auth=None, json_body={"contextIdentifier": context})

    def unblock_test_context(self, context: dict) -> None:
        self.request("POST", "/testdata/context/unblock", auth=None, json_body={"contextIdentifier": context})

    # -- helpers ----------------------------------------------------------------------------------------
    def _offset_pages(
        self,
        method: str,
        path: str,
        key: str,
        page_size: int,
        json_body: Any = None,
        auth: str | None = "access",
    ) -> Iterator[dict]:
        """Every item of an endpoint paged by ``pageOffset``/``pageSize`` with ``hasMore``."""
        offset = 0
        group = "anonymous" if auth is None else None
        while True:
            params = {"pageSize": page_size, "pageOffset": offset}
            page = self._json(
                self.request(method, path, json_body=json_body, params=params, auth=auth, group=group)
            )
            yield from page.get(key) or []
            if not page.get("hasMore"):
                return
            offset += 1

    def _continuation(
        self,
        method: str,
        path: str,
        key: str,
        *,
        params: dict | None = None,
        group: str = "other",
        json_body: Any = None,
    ) -> Iterator[dict]:
        token: str | None = None
        while True:
            headers = {"x-continuation-token": token} if token else None
            page = self._json(
                self.request(method, path, params=params, headers=headers, group=group, json_body=json_body)
            )
            yield from page.get(key) or []
            token = page.get("continuationToken")
            if not token:
                return


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None


def _brief(exc: Exception) -> str:
    """A short description of a transport error without URLs' query strings (which may carry secrets)."""
    text = str(exc)
    return text.split("?", 1)[0][:200]
