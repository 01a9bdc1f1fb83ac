"""The local KSeF simulator application: configuration, clock, bearer tokens and the request pipeline.

Request pipeline (``Simulator.dispatch``):

1. fault injection, before anything else (5xx, slow answer, 429 storm, KSeF unavailable);
2. routing (unknown path: 404; known path, other method: 405);
3. bearer-token check for protected routes (401 problem+json);
4. rate limits per group and per (context, client IP) with sliding 1 s / 60 s / 60 min windows (429);
5. OpenAPI conformance check of the request, when enabled (tests);
6. the endpoint handler;
7. OpenAPI conformance check of the response, when enabled;
8. fault injection after processing (e.g. drop the answer although the request was processed).

Endpoint modules register their routes in :meth:`Simulator._register`; each keeps its state in a store object
attached to the simulator, which is what gets persisted with ``--state FILE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import pickle
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .server import API_PREFIX, ApiError, Request, Response, Route, Router, render_error

_logger = logging.getLogger(__name__)


@dataclass
class SimulatorConfig:
    """Behaviour knobs. Defaults behave like KSeF TEST; tests set delays to zero instead of sleeping."""

    #: seconds an invoice stays at status 100 and then 150 before it gets its KSeF number (each step)
    processing_delay: float = 0.0
    #: seconds an authentication operation stays at status 100
    auth_delay: float = 0.0
    #: seconds an export stays at status 100
    export_delay: float = 0.0
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 7 * 24 * 3600
    authentication_token_ttl: int = 15 * 60
    challenge_ttl: int = 10 * 60
    online_session_ttl: int = 12 * 3600
    #: how far behind "now" the permanent-storage high-water mark trails
    hwm_lag: float = 0.0
    #: the most records a metadata query returns for one filter set (KSeF: 10 000)
    query_cap: int = 10_000
    #: the most invoices in one export package (KSeF: 10 000) and the size of its parts (KSeF: 50 MB)
    export_max_invoices: int = 10_000
    export_part_size: int = 50_000_000
    rate_limits_enabled: bool = True
    #: validate every request/response against open-api.json (needs openapi-core); used by the test suite
    conformance: bool = False
    state_file: str | None = None
    #: name shown in UPOs as the receiving entity
    receiver_name: str = "Ministerstwo Finansów"


class Clock:
    """The simulator's clock: real time plus an adjustable offset, so tests can move time forward."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self._offset)

    def time(self) -> float:
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset


@dataclass
class AuthContext:
    """Who is calling: set on ``Request.auth`` for protected routes."""

    token_kind: str  # "authentication" | "access" | "refresh"
    auth_reference: str  # reference number of the authentication operation
    context_type: str  # Nip | InternalId | NipVatUe | PeppolId
    context_value: str
    subject_type: str  # Nip | Pesel | Fingerprint | Token
    subject_value: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    allowed_ips: dict | None = None

    @property
    def context_nip(self) -> str:
        return self.context_value.split("-", 1)[0]

    def require(self, *any_of: str) -> None:
        """403 ``missing-permissions`` unless one of ``any_of`` is held."""
        if any_of and not (self.permissions & set(any_of)):
            raise ApiError.forbidden(
                "missing-permissions",
                "Brak wymaganych uprawnień do wykonania operacji w bieżącym kontekście.",
                {"requiredAnyOfPermissions": list(any_of), "presentPermissions": sorted(self.permissions)},
            )


class TokenSigner:
    """Issues and checks the simulator's JWTs (HS256, secret per simulator instance)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    @staticmethod
    def _b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def issue(self, kind: str, auth_reference: str, expires: datetime, **claims: Any) -> str:
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {
            "typ": kind,
            "ref": auth_reference,
            "jti": secrets.token_hex(8),
            "exp": int(expires.timestamp()),
            "iat": time.time(),
            "iss": "ksef-simulator",
            **claims,
        }
        head = self._b64(json.dumps(header, separators=(",", ":")).encode())
        body = self._b64(json.dumps(payload, separators=(",", ":")).encode())
        sig = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{self._b64(sig)}"

    def decode(self, token: str) -> dict | None:
        """The payload of a token this simulator issued, or None when it is malformed or forged."""
        try:
            head, body, sig = token.split(".")
            expected = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(self._b64(expected), sig):
                return None
            return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError):
            return None


class Simulator:
    """The simulator application. Serve it with :class:`~ksefnet_core.simulator.server.SimulatorServer`."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        from . import faults, keys, ratelimit

        self.config = config or SimulatorConfig()
        self.clock = Clock()
        self.lock = threading.RLock()
        self.router = Router()
        self.public_url = "http://127.0.0.1"  # replaced by SimulatorServer with the real address
        self.stores: dict[str, Any] = {}
        self.keys = keys.SimulatorKeys.generate(self.clock.now())
        self.tokens = TokenSigner()
        self.rate_limiter = ratelimit.RateLimiter(self.clock, enabled=self.config.rate_limits_enabled)
        self.faults = faults.FaultInjector(self)
        #: (METHOD, path template) of every API operation served -> who sent it ("client": KSeFNet's client,
        #: by its User-Agent; "direct": anything else), for the spec-coverage table (tools/spec_coverage.py)
        self.observed: dict[tuple[str, str], set[str]] = {}
        self.conformance: Any = None
        if self.config.conformance:
            from .conformance import ConformanceValidator

            self.conformance = ConformanceValidator()
        self._register()
        if self.config.state_file and os.path.exists(self.config.state_file):
            self.load_state(self.config.state_file)

    # -- wiring -----------------------------------------------------------------------------------------
    def _register(self) -> None:
        from . import (
            auth_api,
            certificates_api,
            collective_api,
            control_api,
            invoices_api,
            latarnia_api,
            permissions_api,
            sessions_api,
        )

        for module in (
            auth_api,
            certificates_api,
            permissions_api,
            sessions_api,
            invoices_api,
            collective_api,
            control_api,
            latarnia_api,
        ):
            module.register(self)

    def store(self, name: str, factory: Any) -> Any:
        """Get or create the named state store (``factory()`` builds an empty one)."""
        with self.lock:
            if name not in self.stores:
                self.stores[name] = factory()
            return self.stores[name]

    def url(self, path: str) -> str:
        """Absolute URL on this simulator (``path`` starts with ``/``)."""
        return self.public_url + path

    # -- persistence ------------------------------------------------------------------------------------
    def save_state(self, path: str | None = None) -> None:
        target = path or self.config.state_file
        if not target:
            return
        with self.lock:
            blob = pickle.dumps(
                {"stores": self.stores, "keys": self.keys, "token_secret": self.tokens.secret, "version": 1}
            )
        tmp = Path(target).with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, target)

    def load_state(self, path: str) -> None:
        # The state file is written by this simulator only (a local development tool); never load one
        # from an untrusted source.
        data = pickle.loads(Path(path).read_bytes())  # noqa: S301
        with self.lock:
            self.stores = data["stores"]
            self.keys = data["keys"]
            self.tokens = TokenSigner(data["token_secret"])

    # -- bearer tokens ----------------------------------------------------------------------------------
    def authenticate(self, req: Request, route: Route) -> None:
        """Check the bearer token required by ``route`` and set ``req.auth``."""
        header = req.headers.get("authorization") or ""
        if not header.lower().startswith("bearer "):
            raise ApiError.unauthorized("Wymagane jest uwierzytelnienie.")
        claims = self.tokens.decode(header[7:].strip())
        if not claims:
            raise ApiError.unauthorized("Nieprawidłowy token.")
        if claims.get("exp", 0) < self.clock.time():
            raise ApiError.unauthorized("Token wygasł.")
        wanted = route.auth
        kind = claims.get("typ")
        allowed = {
            "authentication": {"authentication"},
            "access": {"access"},
            "refresh": {"refresh"},
            "access_or_refresh": {"access", "refresh"},
        }[wanted or "access"]
        if kind not in allowed:
            raise ApiError.unauthorized("Nieprawidłowy typ tokena dla tej operacji.")
        from .auth_api import auth_context_for

        req.auth = auth_context_for(self, claims)  # 401 for the refresh token of a revoked auth session

    # -- rate limits ------------------------------------------------------------------------------------
    def _count(self, req: Request, route: Route) -> None:
        """Count the request in its group (429 when over a limit): per (context, IP); unauthenticated calls
        per IP; each endpoint of ``other`` on its own counter; everything per IP in ``global`` when it is on."""
        limiter = self.rate_limiter
        group = route.rate_group or ""
        key = f"{req.auth.context_type}:{req.auth.context_value}" if req.auth else "-"
        key = f"{key}|{req.client_ip}"
        if group == "other":
            key += f"|{route.method} {route.template}"
        checks = [(group, key)]
        if limiter.global_active():
            checks.append(("global", req.client_ip))
        for name, slot in checks:
            retry_after = limiter.hit(name, slot)
            if retry_after is not None:
                raise ApiError.too_many(
                    retry_after,
                    f"Przekroczono limit żądań dla grupy {name}. Spróbuj ponownie po {retry_after} sekundach.",
                )

    # -- pipeline ---------------------------------------------------------------------------------------
    def dispatch(self, req: Request, prefix: str) -> Response | None:
        route: Route | None = None
        try:
            early = self.faults.before(req)
            if early is not None:
                return None if early.status == 0 else early  # status 0: drop the connection
            route, params, path_exists = self.router.match(req.method, prefix, req.path)
            if route is None:
                return Response(405 if path_exists else 404)
            req.path_params = params
            req.route = route
            if route.prefix == API_PREFIX:
                sender = (
                    "client" if (req.headers.get("user-agent") or "").startswith("KSeFNet/") else "direct"
                )
                self.observed.setdefault((route.method, route.template), set()).add(sender)
            if route.auth:
                self.authenticate(req, route)
            if route.rate_group and self.rate_limiter.enabled:
                self._count(req, route)
            if self.conformance is not None and route.prefix == API_PREFIX:
                self.conformance.validate_request(req, route)
            resp = route.handler(req)
        except ApiError as err:
            resp = render_error(err, req)
        except Exception:  # an internal bug must still produce an answer, and be visible
            _logger.exception("simulator handler failed for %s %s", req.method, req.raw_path)
            resp = render_error(ApiError(500, "server", detail="Simulator internal error"), req)
        test_warning = req.headers.get("x-test-system-warning")
        if test_warning and req.raw_path.startswith(API_PREFIX):  # TEST echoes it as a system warning
            from .faults import add_system_warning

            add_system_warning(resp, test_warning)
        if self.conformance is not None and route is not None and route.prefix == API_PREFIX:
            self.conformance.validate_response(req, route, resp)
        return self.faults.after(req, resp)
