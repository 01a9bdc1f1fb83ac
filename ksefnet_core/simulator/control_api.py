"""Simulator-only control endpoints under ``/_simulator`` (they do not exist on KSeF).

* ``GET /_simulator/health`` -> ``{"status": "ok"}``
* ``POST /_simulator/tokens`` ``{"nip": "...", "permissions": [...]}`` -> ``{"referenceNumber", "token"}``: a
  ready KSeF token for a NIP, without a certificate (on KSeF TEST you would authenticate with a certificate
  and call ``POST /tokens``);
* ``POST|GET|DELETE /_simulator/faults``: fault injection (see :mod:`ksefnet_core.simulator.faults`);
* ``POST /_simulator/clock`` ``{"advanceSeconds": n}``: move the simulator's clock forward;
* ``POST /_simulator/state``: save the state file now (with ``--state``);
* ``GET /_simulator/stats``: what arrived, for tests that check nothing was sent twice: sessions opened,
  invoices received, accepted (with a KSeF number), refused as duplicates (440), and the largest number of
  times one invoice (by hash) was received.

Purchase-invoice injection lives in :mod:`ksefnet_core.simulator.invoices_api` (``/_simulator/invoices``).
"""

from __future__ import annotations

import functools
from typing import Any

from ..ids import is_valid_nip
from .app import Simulator
from .auth_api import ALL_PERMISSIONS, mint_ksef_token
from .server import CONTROL_PREFIX, ApiError, Request, Response


def _body(req: Request) -> dict:
    body = req.json() if req.body else {}
    if not isinstance(body, dict):
        raise ApiError.bad_request(21405, "Body must be a JSON object.")
    return body


def health(sim: Simulator, req: Request) -> Response:
    return Response.json({"status": "ok", "clockOffsetSeconds": sim.clock.offset})


def tokens(sim: Simulator, req: Request) -> Response:
    body = _body(req)
    nip = str(body.get("nip") or "")
    perms = body.get("permissions") or list(ALL_PERMISSIONS)
    if not is_valid_nip(nip) or any(p not in ALL_PERMISSIONS for p in perms):
        raise ApiError.bad_request(21405, "A valid nip and known permissions are required.")
    return Response.json(mint_ksef_token(sim, nip, perms, body.get("description") or ""), 201)


def add_fault(sim: Simulator, req: Request) -> Response:
    body = _body(req)
    kind = body.pop("kind", None)
    try:
        fault = sim.faults.add(kind, **body)
    except (TypeError, ValueError) as exc:
        raise ApiError.bad_request(21405, f"Invalid fault: {exc}") from None
    return Response.json(fault.to_json(), 201)


def list_faults(sim: Simulator, req: Request) -> Response:
    return Response.json({"faults": sim.faults.list()})


def clear_faults(sim: Simulator, req: Request) -> Response:
    sim.faults.clear()
    return Response.empty()


def clock(sim: Simulator, req: Request) -> Response:
    seconds = float(_body(req).get("advanceSeconds") or 0)
    sim.clock.advance(seconds)
    return Response.json({"clockOffsetSeconds": sim.clock.offset, "now": sim.clock.now().isoformat()})


def save_state(sim: Simulator, req: Request) -> Response:
    if not sim.config.state_file:
        raise ApiError.bad_request(21405, "The simulator runs without --state.")
    sim.save_state()
    return Response.empty()


def stats(sim: Simulator, req: Request) -> Response:
    from collections import Counter

    from .sessions_api import store

    with sim.lock:
        data = store(sim)
        invoices = list(data.invoices.values())
        per_hash = Counter(i.invoice_hash for i in invoices)
        return Response.json(
            {
                "sessions": len(data.sessions),
                "invoicesReceived": len(invoices),
                "accepted": sum(1 for i in invoices if i.ksef_number),
                "duplicatesRefused": sum(1 for i in invoices if i.code == 440),
                "mostReceivesOfOneInvoice": max(per_hash.values(), default=0),
            }
        )


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any) -> None:
        sim.router.add(
            method,
            path,
            functools.partial(handler, sim),
            auth=None,
            rate_group=None,
            prefix=CONTROL_PREFIX,
        )

    add("GET", "/health", health)
    add("POST", "/tokens", tokens)
    add("POST", "/faults", add_fault)
    add("GET", "/faults", list_faults)
    add("DELETE", "/faults", clear_faults)
    add("POST", "/clock", clock)
    add("POST", "/state", save_state)
    add("GET", "/stats", stats)
