"""Helpers for the client integration tests (``test_client_auth.py``, ``test_client_online.py``).

Everything goes over real HTTP on loopback to the simulator of the ``simulator`` fixture. :class:`Traffic`
only *observes* what the client sent and got (a ``requests`` response hook); it never changes an answer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests

from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token
from ksefnet_core.client import KsefClient
from ksefnet_core.environments import Environment
from ksefnet_core.testing import sample_invoice
from ksefnet_core.throttle import Throttle

NIP = "5265877635"  # the seller the KSeF-token tests authenticate as
COMPANY = "1111111111"  # the company of the certificate tests
PESEL = "44051401359"
UPO_NS = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
#: every rate-limit group of ``POST /testdata/rate-limits`` (SetRateLimitsRequest requires all of them)
RATE_LIMIT_GROUPS = (
    "onlineSession",
    "batchSession",
    "invoiceSend",
    "invoiceStatus",
    "sessionList",
    "sessionInvoiceList",
    "sessionMisc",
    "invoiceMetadata",
    "invoiceExport",
    "invoiceExportStatus",
    "invoiceDownload",
    "collectiveIdentifier",
    "other",
    "onlineSessionClose",  # API 2.8: optional in the request, set here to keep every group's value
    "batchSessionClose",
)

_numbers = itertools.count(1)


def new_client(
    simulator, *, timeout: float | tuple[float, float] = 10, throttle: bool = True, **kw
) -> KsefClient:
    """A client of the simulator; by default it paces itself by KSeF's rate limits like a real integration."""
    return KsefClient(
        Environment.custom(simulator.api_base, name="SIM"),
        timeout=timeout,
        throttle=Throttle() if throttle else None,
        **kw,
    )


def control(simulator, path: str, body: dict | None = None, method: str = "POST") -> dict:
    """Call a simulator-only control endpoint (``/_simulator/...``; not part of KSeF)."""
    resp = requests.request(method, f"{simulator.base_url}/_simulator{path}", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json() if resp.content else {}


def post_testdata(simulator, path: str, body: dict) -> None:
    """An unauthenticated TEST-data call (``POST /testdata/...``), as on KSeF TEST."""
    requests.post(f"{simulator.api_base}/testdata{path}", json=body, timeout=30).raise_for_status()


def mint_token(simulator, nip: str = NIP, permissions: list[str] | None = None) -> str:
    body: dict = {"nip": nip}
    if permissions:
        body["permissions"] = permissions
    return str(control(simulator, "/tokens", body)["token"])


def token_client(simulator, nip: str = NIP, permissions: list[str] | None = None, **kw) -> KsefClient:
    """A client authenticated with a fresh KSeF token in the context of ``nip``."""
    client = new_client(simulator, **kw)
    token = mint_token(simulator, nip, permissions)
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(nip), poll_interval=0.02)
    return client


def invoice(nip: str = NIP, **kw) -> bytes:
    """A valid FA(3) invoice of seller ``nip`` with a fresh number (P_2)."""
    kw.setdefault("number", f"FV/{datetime.now():%H%M%S}/{next(_numbers)}")
    return sample_invoice(seller_nip=nip, **kw)


def set_rate_limits(client: KsefClient, **groups: tuple[int, int, int]) -> dict:
    """``POST /testdata/rate-limits`` with the current limits, ``groups`` replaced; the throttle adopts them."""
    limits = client.rate_limits()
    for group, (per_second, per_minute, per_hour) in groups.items():
        limits[group] = {"perSecond": per_second, "perMinute": per_minute, "perHour": per_hour}
    client.set_test_rate_limits({g: limits[g] for g in (*RATE_LIMIT_GROUPS, *groups)})
    if client.throttle is not None:
        client.throttle.update_limits(limits)
    return limits


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # without the /v2 prefix for API calls
    status: int
    headers: dict  # the request's headers


class Traffic:
    """Records every answer the client received (method, path, status, request headers)."""

    def __init__(self, client: KsefClient) -> None:
        self.calls: list[Call] = []
        client.http.hooks["response"].append(self._record)

    def _record(self, resp: requests.Response, *args, **kwargs) -> None:
        path = urlsplit(resp.request.url).path
        path = path[3:] if path.startswith("/v2/") else path
        self.calls.append(Call(resp.request.method or "", path, resp.status_code, dict(resp.request.headers)))

    def clear(self) -> None:
        self.calls.clear()

    def summary(self) -> list[tuple[str, str, int]]:
        return [(c.method, c.path, c.status) for c in self.calls]
