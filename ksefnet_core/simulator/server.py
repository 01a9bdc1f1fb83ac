"""HTTP plumbing of the local KSeF simulator: request/response objects, routing, error bodies, the server.

The simulator answers on ``{base}/v2/...`` exactly like KSeF's TEST environment answers on
``https://api-test.ksef.mf.gov.pl/v2/...``. Pre-signed storage links (batch part uploads, UPO and export
downloads) live under ``{base}/storage/...`` and need no bearer token, as on KSeF. Simulator-only control
endpoints (fault injection, purchase invoice injection, clock) live under ``{base}/_simulator/...``; they do
not exist on KSeF.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_logger = logging.getLogger(__name__)

API_PREFIX = "/v2"
STORAGE_PREFIX = "/storage"
CONTROL_PREFIX = "/_simulator"

MAX_BODY = 200 * 1024 * 1024  # batch parts are at most 100 MB (plus encryption padding)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    """KSeF-style ISO-8601 with offset, e.g. ``2025-07-11T12:23:56.0154302+00:00`` (7 fraction digits)."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0+00:00"


class Headers(dict):
    """Case-insensitive (lower-cased keys) request headers."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass
class Request:
    method: str
    path: str  # without API prefix for API routes, e.g. "/sessions/online"
    raw_path: str  # full path as received, e.g. "/v2/sessions/online"
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    client_ip: str
    path_params: dict[str, str] = field(default_factory=dict)
    # Filled by the auth step for protected routes.
    auth: Any = None
    route: Route | None = None

    def json(self) -> Any:
        """The JSON body; a malformed one is KSeF's 21405 validation error."""
        if not self.body:
            raise ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", ["Brak treści żądania."])
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError.bad_request(
                21405, "Błąd walidacji danych wejściowych.", [f"Nieprawidłowy JSON: {exc}"]
            ) from None

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def q_all(self, name: str) -> list[str]:
        return self.query.get(name, []) + self.query.get(name + "[]", [])

    @property
    def wants_problem_details(self) -> bool:
        return (self.headers.get("x-error-format") or "").lower() == "problem-details"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            "application/json",
            dict(headers or {}),
        )

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status)

    @classmethod
    def xml(cls, body: bytes, headers: dict[str, str] | None = None) -> Response:
        return cls(200, body, "application/xml", dict(headers or {}))


class ApiError(Exception):
    """An error answer. Raise it from a handler; the server renders it in KSeF's format.

    ``kind`` is one of: ``exception`` (400 ExceptionResponse or BadRequestProblemDetails), ``unauthorized``
    (401), ``forbidden`` (403), ``gone`` (410), ``too_many`` (429), ``not_found`` (404 without body, as an
    unknown path), ``server`` (5xx).
    """

    def __init__(
        self,
        status: int,
        kind: str,
        *,
        errors: list[tuple[int, str, list[str]]] | None = None,
        detail: str = "",
        reason_code: str | None = None,
        security: dict | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail or (errors[0][1] if errors else kind))
        self.status = status
        self.kind = kind
        self.errors = errors or []
        self.detail = detail
        self.reason_code = reason_code
        self.security = security
        self.retry_after = retry_after

    @classmethod
    def bad_request(cls, code: int, description: str, details: list[str] | None = None) -> ApiError:
        return cls(400, "exception", errors=[(code, description, list(details or []))])

    @classmethod
    def unauthorized(cls, detail: str = "Wymagane jest uwierzytelnienie.") -> ApiError:
        return cls(401, "unauthorized", detail=detail)

    @classmethod
    def forbidden(cls, reason_code: str, detail: str, security: dict | None = None) -> ApiError:
        return cls(403, "forbidden", detail=detail, reason_code=reason_code, security=security)

    @classmethod
    def gone(cls, detail: str) -> ApiError:
        return cls(410, "gone", detail=detail)

    @classmethod
    def too_many(cls, retry_after: int, detail: str) -> ApiError:
        return cls(429, "too_many", detail=detail, retry_after=retry_after)


def _trace_id() -> str:
    return secrets.token_hex(16)


def render_error(err: ApiError, request: Request | None) -> Response:
    """Render ``err`` the way KSeF does (see KSEF_API_NOTES §14)."""
    now = iso(utcnow())
    instance = request.raw_path if request else ""
    problem = bool(request and request.wants_problem_details)
    headers: dict[str, str] = {}
    if err.kind == "exception":
        if problem:
            payload: dict[str, Any] = {
                "title": "Bad Request",
                "status": 400,
                "instance": instance,
                "detail": "Żądanie jest nieprawidłowe.",
                "errors": [{"code": c, "description": d, "details": det} for c, d, det in err.errors],
                "timestamp": now,
                "traceId": _trace_id(),
            }
            return Response(err.status, _dump(payload), "application/problem+json")
        payload = {
            "exception": {
                "exceptionDetailList": [
                    {"exceptionCode": c, "exceptionDescription": d, "details": det}
                    for c, d, det in err.errors
                ],
                # referenceNumber only when the error concerns a known operation (none here): the spec
                # types it as a reference number, so it is left out rather than sent as null.
                "serviceCode": f"00-{_trace_id()}-{secrets.token_hex(8)}-00",
                "serviceCtx": "srvSIMUL",
                "serviceName": "KSeF simulator",
                "timestamp": now,
            }
        }
        return Response(err.status, _dump(payload), "application/json")
    if err.kind == "unauthorized":
        payload = {
            "title": "Unauthorized",
            "status": 401,
            "detail": err.detail,
            "instance": instance,
            "traceId": _trace_id(),
            "timestamp": now,
        }
        return Response(401, _dump(payload), "application/problem+json")
    if err.kind == "forbidden":
        payload = {
            "title": "Forbidden",
            "status": 403,
            "detail": err.detail,
            "instance": instance,
            "reasonCode": err.reason_code or "missing-permissions",
            "security": err.security or {},
            "traceId": _trace_id(),
            "timestamp": now,
        }
        return Response(403, _dump(payload), "application/problem+json")
    if err.kind == "gone":
        payload = {
            "title": "Gone",
            "status": 410,
            "instance": instance,
            "detail": err.detail,
            "timestamp": now,
            "traceId": _trace_id(),
        }
        return Response(410, _dump(payload), "application/problem+json")
    if err.kind == "too_many":
        headers["Retry-After"] = str(int(err.retry_after or 1))
        if problem:
            payload = {
                "title": "Too Many Requests",
                "status": 429,
                "instance": instance,
                "detail": err.detail,
                "timestamp": now,
                "traceId": _trace_id(),
            }
            return Response(429, _dump(payload), "application/problem+json", headers)
        payload = {"status": {"code": 429, "description": "Too Many Requests", "details": [err.detail]}}
        return Response(429, _dump(payload), "application/json", headers)
    if err.kind == "not_found":
        return Response(404)
    # server errors: KSeF's gateway answers with a short JSON body
    payload = {"title": "Server Error", "status": err.status, "detail": err.detail or "Internal error"}
    return Response(err.status, _dump(payload), "application/problem+json")


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    template: str  # OpenAPI path template, e.g. "/sessions/{referenceNumber}"
    handler: Handler
    auth: str | None  # None (public), "authentication", "access", "refresh", "access_or_refresh"
    rate_group: str | None  # key of GET /rate-limits, or None when not limited
    prefix: str = API_PREFIX
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(
            r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(self.template).replace(r"\{", "{").replace(r"\}", "}")
        )
        self.regex = re.compile(f"^{pattern}$")


class Router:
    """Routes are matched in registration order per method; register literal paths before templated ones."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        *,
        auth: str | None = "access",
        rate_group: str | None = "other",
        prefix: str = API_PREFIX,
    ) -> None:
        self.routes.append(Route(method.upper(), template, handler, auth, rate_group, prefix))

    def match(self, method: str, prefix: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Return (route, path params, path_exists_with_other_method)."""
        path_exists = False
        for route in self.routes:
            if route.prefix != prefix:
                continue
            m = route.regex.match(path)
            if not m:
                continue
            if route.method == method:
                return route, m.groupdict(), True
            path_exists = True
        return None, {}, path_exists


def split_prefix(path: str) -> tuple[str, str]:
    for prefix in (API_PREFIX, STORAGE_PREFIX, CONTROL_PREFIX):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix, path[len(prefix) :] or "/"
    return "", path


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one buffered write; with TCP_NODELAY no 40 ms delayed-ACK stall per answer.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "KSeF-Simulator/1.0"
    app: Any  # set on a subclass by SimulatorServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        _logger.debug("%s - %s", self.client_address[0], format % args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        prefix, sub = split_prefix(parts.path)
        req = Request(
            method=self.command,
            path=sub,
            raw_path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=Headers({k.lower(): v for k, v in self.headers.items()}),
            body=body,
            client_ip=self.client_address[0],
        )
        resp = self.app.dispatch(req, prefix)
        if resp is None:  # fault injection: drop the connection without an answer
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        self.send_response(resp.status)
        if resp.content_type:
            ctype = resp.content_type
            if ctype.endswith("json") and "charset" not in ctype:
                ctype += "; charset=utf-8"
            self.send_header("Content-Type", ctype)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if resp.body and self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class SimulatorServer:
    """Serve a :class:`~ksefnet_core.simulator.app.Simulator` over HTTP on a local address.

    ``with SimulatorServer(sim) as srv: srv.api_base`` gives ``http://127.0.0.1:<port>/v2``.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("BoundHandler", (_HttpHandler,), {"app": app})
        self.app = app
        self.httpd = _Server((host, port), handler)
        address = self.httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None
        app.public_url = self.base_url

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    def start(self) -> SimulatorServer:
        # A short poll interval lets stop() return at once (the default 0.5 s adds up over a test suite).
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ksef-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
