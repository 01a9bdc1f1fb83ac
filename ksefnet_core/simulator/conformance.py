"""OpenAPI conformance checking of the simulator's own traffic (used by the test suite).

Every request the simulator receives on the API prefix and every response it sends are validated against the
KSeF API 2.0 specification of the live version (:func:`ksefnet_core.simulator.spec.load`: the verbatim
official 2.7.0 document with the documented 2.7.1 ... 2.9.0 changes applied) with openapi-core. Violations are collected, not raised, so the simulator still answers like KSeF would; the test
fixture fails the test at teardown when any were recorded.

Tests that send deliberately malformed requests (to see KSeF's 400 answer) wrap them in
:meth:`ConformanceValidator.expect_invalid_requests`: request violations are then expected, while the
responses are still checked.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import spec as api_spec

# The spec's only server is TEST; requests are validated as if they had been sent there.
SPEC_HOST = "https://api-test.ksef.mf.gov.pl"

_spec_lock = threading.Lock()
_openapi: Any = None


def _load() -> Any:
    """The parsed specification, loaded once per process (parsing 700 kB of JSON schema is slow)."""
    global _openapi
    with _spec_lock:
        if _openapi is None:
            from openapi_core import Config, OpenAPI

            # openapi-core turns XML bodies into an ElementTree, then finds it is "not a string"; the
            # spec declares XML bodies (invoices, UPOs) as strings, so they are compared as text.
            def xml_as_text(body: bytes | str) -> str:
                return body.decode("utf-8") if isinstance(body, bytes) else body

            def json_body(body: bytes | str) -> Any:
                return json.loads(body)

            config = Config(
                extra_media_type_deserializers={
                    "application/xml": xml_as_text,
                    # openapi-core does not treat application/problem+json as JSON by itself
                    "application/problem+json": json_body,
                }
            )
            _openapi = OpenAPI.from_dict(api_spec.load(), config=config)
        return _openapi


@dataclass(frozen=True)
class Violation:
    direction: str  # "request" or "response"
    method: str
    path: str
    status: int | None
    message: str

    def __str__(self) -> str:
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{self.direction}: {self.method} {self.path}{status}: {self.message}"


def _describe(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    for sub in getattr(exc, "schema_errors", None) or []:
        path = "/".join(str(p) for p in getattr(sub, "absolute_path", []) or [])
        parts.append(f"  at '{path}': {getattr(sub, 'message', sub)}")
    cause = exc.__cause__
    if cause is not None and cause is not exc:
        parts.append("  caused by " + _describe(cause))
    return "\n".join(parts)


class ConformanceValidator:
    """Validates simulator requests and responses against the official OpenAPI document."""

    def __init__(self) -> None:
        self.openapi = _load()
        self.violations: list[Violation] = []
        self.checked_requests = 0
        self.checked_responses = 0
        self._lock = threading.Lock()
        self._expect_invalid = 0

    @contextlib.contextmanager
    def expect_invalid_requests(self) -> Iterator[None]:
        """Inside this block, requests that break the spec are expected (tests of KSeF's 400 answers)."""
        with self._lock:
            self._expect_invalid += 1
        try:
            yield
        finally:
            with self._lock:
                self._expect_invalid -= 1

    def _mock_request(self, req: Any) -> Any:
        from openapi_core.testing import MockRequest

        headers = dict(req.headers)
        return MockRequest(
            SPEC_HOST,
            req.method,
            req.raw_path.split("?", 1)[0],
            args={k: v for k, v in req.query.items()},
            headers=headers,
            data=req.body or None,
            content_type=(headers.get("content-type") or "").split(";")[0].strip(),
        )

    def validate_request(self, req: Any, route: Any) -> None:
        try:
            self.openapi.validate_request(self._mock_request(req))
        except Exception as exc:  # any openapi-core error is a conformance finding
            with self._lock:
                if self._expect_invalid:
                    return
                self.violations.append(Violation("request", req.method, req.raw_path, None, _describe(exc)))
        finally:
            with self._lock:
                self.checked_requests += 1

    def validate_response(self, req: Any, route: Any, resp: Any) -> None:
        from openapi_core.testing import MockResponse

        headers = {k: str(v) for k, v in resp.headers.items()}
        content_type = resp.content_type or ""
        if content_type:
            headers.setdefault("Content-Type", content_type)
        mock = MockResponse(
            resp.body or b"", status_code=resp.status, headers=headers, content_type=content_type
        )
        try:
            self.openapi.validate_response(self._mock_request(req), mock)
        except Exception as exc:
            with self._lock:
                self.violations.append(
                    Violation("response", req.method, req.raw_path, resp.status, _describe(exc))
                )
        finally:
            with self._lock:
                self.checked_responses += 1
