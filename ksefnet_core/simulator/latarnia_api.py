"""Latarnia (KSeF's status service) in the simulator, at the simulator's root, as on its own host in KSeF:

* ``GET /status`` -> ``{"status": "AVAILABLE" | "MAINTENANCE" | "FAILURE" | "TOTAL_FAILURE", "messages": [...]}``
* ``GET /messages`` -> every message published so far (newest first)

Set by tests and the demo (simulator only)::

    POST   /_simulator/latarnia  {"status": "FAILURE", "message": {"title": ..., "text": ..., "category": "01"},
                                  "apiUnavailable": true}
    DELETE /_simulator/latarnia  -> back to AVAILABLE, no messages, the API up

A status other than AVAILABLE also makes the KSeF API answer 503 (an ``unavailable`` fault) unless
``apiUnavailable`` is false; AVAILABLE removes that fault again and closes (sets ``end`` on) the open
announcements. A message gets ``id``, ``eventId``, ``start`` and ``published`` when not given; its category
defaults from the status (01 failure, 02 total failure, 03 planned unavailability).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from .app import Simulator
from .server import CONTROL_PREFIX, ApiError, Request, Response, iso

STATUSES = ("AVAILABLE", "MAINTENANCE", "FAILURE", "TOTAL_FAILURE")
CATEGORY_OF = {"FAILURE": "01", "TOTAL_FAILURE": "02", "MAINTENANCE": "03"}
_ids = itertools.count(1)


@dataclass
class LatarniaStore:
    status: str = "AVAILABLE"
    messages: list[dict] = field(default_factory=list)
    fault: Any = None  # the "unavailable" fault this endpoint added


def store(sim: Simulator) -> LatarniaStore:
    return sim.store("latarnia", LatarniaStore)  # type: ignore[no-any-return]


def status(sim: Simulator, req: Request) -> Response:
    state = store(sim)
    with sim.lock:
        open_messages = [m for m in state.messages if not m.get("end")] if state.status != "AVAILABLE" else []
        return Response.json({"status": state.status, "messages": open_messages})


def messages(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        return Response.json(list(reversed(store(sim).messages)))


def control(sim: Simulator, req: Request) -> Response:
    body = req.json() if req.body else {}
    if not isinstance(body, dict) or body.get("status") not in STATUSES:
        raise ApiError.bad_request(21405, f"status must be one of {', '.join(STATUSES)}.")
    message = body.get("message")
    if message is not None and not isinstance(message, dict):
        raise ApiError.bad_request(21405, "message must be an object.")
    new = body["status"]
    down = bool(body.get("apiUnavailable", new != "AVAILABLE"))
    state = store(sim)
    now = iso(sim.clock.now())
    with sim.lock:
        if new == "AVAILABLE":
            for m in state.messages:
                m.setdefault("end", None)
                if not m["end"]:
                    m["end"] = now
        if message is not None or (new != "AVAILABLE" and new != state.status):
            number = next(_ids)
            entry = {
                "id": f"SIM-{number}",
                "eventId": f"EV-{number}",
                "category": CATEGORY_OF.get(new, "01"),
                "type": "Komunikat",
                "title": f"KSeF: {new}",
                "text": "",
                "start": now,
                "end": None,
                "version": 1,
                "published": now,
            }
            entry.update({k: v for k, v in (message or {}).items() if k in entry})
            state.messages.append(entry)
        state.status = new
        _set_api_down(sim, state, down)
    return Response.json({"status": new, "apiUnavailable": down})


def reset(sim: Simulator, req: Request) -> Response:
    state = store(sim)
    with sim.lock:
        state.status = "AVAILABLE"
        state.messages.clear()
        _set_api_down(sim, state, False)
    return Response(204)


def _set_api_down(sim: Simulator, state: LatarniaStore, down: bool) -> None:
    if down and state.fault is None:
        state.fault = sim.faults.add("unavailable")
    elif not down and state.fault is not None:
        with sim.faults._lock:
            if state.fault in sim.faults.rules:
                sim.faults.rules.remove(state.fault)
        state.fault = None


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any, prefix: str) -> None:
        sim.router.add(
            method, path, functools.partial(handler, sim), auth=None, rate_group=None, prefix=prefix
        )

    add("GET", "/status", status, "")  # Latarnia's own paths, at the root: outside /v2, no faults apply
    add("GET", "/messages", messages, "")
    add("POST", "/latarnia", control, CONTROL_PREFIX)
    add("DELETE", "/latarnia", reset, CONTROL_PREFIX)
