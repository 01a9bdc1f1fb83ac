"""Fault injection, controllable per test: from Python (``sim.faults.add(...)``) or over HTTP.

HTTP (simulator only, not part of KSeF)::

    POST   /_simulator/faults   {"kind": "status", "status": 503, "method": "POST",
                                 "path": "/sessions/online", "times": 1}
    GET    /_simulator/faults   -> {"faults": [...]}
    DELETE /_simulator/faults   -> removes every rule

``path`` is a glob relative to ``/v2`` (``*`` matches one path segment or part of it); ``method`` and ``path``
are optional (default: any). ``times`` limits how often the rule fires (default: always);
``probability`` (0..1, seeded with ``seed``) makes it fire at random. Kinds:

* ``status``: answer ``status`` (default 500) without processing;
* ``delay``: sleep ``seconds`` before processing (slow answers; client timeouts);
* ``drop_response``: process the request, then close the connection without an answer (the ambiguous case);
* ``drop_request``: close the connection without processing;
* ``rate_limit``: answer 429 with ``Retry-After: retry_after`` (a 429 storm with ``times`` omitted);
* ``unavailable``: KSeF is down: every API call answers 503 until the rule is removed;
* ``expire_tokens``: every access token issued so far is treated as expired (fires once when added);
* ``expire_sessions``: online sessions opened so far no longer accept invoices (21180);
* ``not_yet_available``: ``GET /invoices/ksef/{n}`` answers 21165 (``times`` per rule);
* ``export_stuck``: exports stay at status 100 while the rule exists;
* ``session_unavailable``: KSeF API 2.8's error 21184 "Sesja tymczasowo niedostępna": the online session an
  invoice is sent to becomes unavailable, and this and every later send to it is answered 400 21184 (the
  client must open a new session and go on there). ``after`` (default 0): only once the session already
  holds that many invoices; ``times``: how many sessions it strikes (default: every one); ``path`` as above,
  e.g. ``/sessions/online/20261202-SO-*/invoices`` for one session;
* ``system_warning``: answers carry ``X-System-Warning: message`` (KSeF's technical warnings; on TEST a
  request's ``X-Test-System-Warning`` header is echoed like this without any rule).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .server import API_PREFIX, ApiError, Request, Response, render_error

KINDS = {
    "status",
    "delay",
    "drop_response",
    "drop_request",
    "rate_limit",
    "unavailable",
    "expire_tokens",
    "expire_sessions",
    "not_yet_available",
    "export_stuck",
    "session_unavailable",
    "system_warning",
}
#: kinds consulted by endpoint handlers, not by the request pipeline
HANDLER_KINDS = {"expire_sessions", "not_yet_available", "export_stuck", "session_unavailable"}


@dataclass
class Fault:
    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = None
    status: int = 500
    seconds: float = 0.0
    retry_after: int = 1
    probability: float = 1.0
    seed: int | None = None
    after: int = 0
    message: str = ""
    created: float = field(default_factory=time.time)
    fired: int = 0
    _rng: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(sorted(KINDS))}")
        if self.kind == "system_warning" and not self.message.strip():
            raise ValueError("a system_warning fault needs a message")
        if self.after < 0 or (self.times is not None and self.times < 1):
            raise ValueError("after must be 0 or more and times 1 or more")
        self._rng = random.Random(self.seed)

    def matches(self, req: Request) -> bool:
        if self.method and self.method.upper() != req.method:
            return False
        if self.path and not fnmatch.fnmatchcase(req.path, self.path):
            return False
        return True

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("_rng", None)
        return data


class FaultInjector:
    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self._lock = threading.Lock()
        self.rules: list[Fault] = []
        self.tokens_expired_before = 0.0
        self.sessions_expired_before = 0.0

    def add(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind=kind, **options)
        with self._lock:
            if kind == "expire_tokens":
                self.tokens_expired_before = time.time()
                return fault
            if kind == "expire_sessions":
                self.sessions_expired_before = time.time()
                return fault
            self.rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [f.to_json() for f in self.rules]

    def _take(
        self, req: Request | None, kinds: set[str], key: str | None = None, count: int | None = None
    ) -> Fault | None:
        with self._lock:
            for fault in self.rules:
                if fault.kind not in kinds:
                    continue
                if count is not None and count < fault.after:
                    continue
                if req is not None and not fault.matches(req):
                    continue
                if key is not None and fault.path and not fnmatch.fnmatchcase(key, fault.path):
                    continue
                if fault.probability < 1.0 and fault._rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                if fault.times is not None and fault.fired >= fault.times:
                    self.rules.remove(fault)
                return fault
        return None

    # -- pipeline hooks ---------------------------------------------------------------------------------
    def before(self, req: Request) -> Response | None:
        if not self.rules or not req.raw_path.startswith(API_PREFIX):
            return None
        fault = self._take(
            req, {"status", "delay", "drop_request", "rate_limit", "unavailable", "drop_response"}
        )
        if fault is None:
            return None
        if fault.kind == "drop_response":
            req.drop_response = True  # type: ignore[attr-defined]
            return None
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return None
        if fault.kind == "drop_request":
            return _DROP
        if fault.kind == "rate_limit":
            return render_error(
                ApiError.too_many(fault.retry_after, "Przekroczono limit żądań (symulacja)."), req
            )
        status = 503 if fault.kind == "unavailable" else fault.status
        if fault.kind == "unavailable":  # stays until removed
            with self._lock:
                fault.times = None
        return render_error(ApiError(status, "server", detail="Usługa niedostępna (symulacja awarii)."), req)

    def after(self, req: Request, resp: Response) -> Response | None:
        if getattr(req, "drop_response", False):
            return None
        if self.rules and req.raw_path.startswith(API_PREFIX):
            warning = self._take(req, {"system_warning"})
            if warning is not None:
                add_system_warning(resp, warning.message)
        return resp

    # -- hooks for endpoint handlers ----------------------------------------------------------------------
    def token_expired(self, issued_at: float) -> bool:
        return issued_at < self.tokens_expired_before

    def session_expired(self, opened_at: float) -> bool:
        return opened_at < self.sessions_expired_before

    def consume(self, kind: str, key: str, count: int | None = None) -> bool:
        """A handler-consulted rule of ``kind`` matching ``key`` (and ``after <= count``) fired."""
        return self._take(None, {kind}, key, count) is not None

    def active(self, kind: str) -> bool:
        with self._lock:
            return any(f.kind == kind for f in self.rules)


def ascii_fold(text: str) -> str:
    """KSeF sends warnings ASCII-folded (``ł`` -> ``l``, ``ą`` -> ``a``), one line."""
    import unicodedata

    text = text.replace("ł", "l").replace("Ł", "L")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return " ".join(folded.split())


def add_system_warning(resp: Response, message: str) -> None:
    """Add one warning to the answer's ``X-System-Warning`` (``[code]: message | [code]: message``)."""
    text = ascii_fold(message)
    if not text.startswith("["):
        text = f"[SIM]: {text}"
    old = resp.headers.get("X-System-Warning")
    resp.headers["X-System-Warning"] = f"{old} | {text}" if old else text


class _Drop(Response):
    pass


#: sentinel answer: close the connection without answering
_DROP = _Drop(0)
