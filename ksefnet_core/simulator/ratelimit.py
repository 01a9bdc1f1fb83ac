"""Server-side rate limits as KSeF applies them (KSEF_API_NOTES §13).

Counted per group and per (context, client IP), in sliding windows of 1 s, 60 s and 60 min enforced at
once. A refused request gets 429 with ``Retry-After``; repeated violations lengthen the wait a little, like
KSeF. Limits can be changed at run time (``POST /testdata/rate-limits``) and switched off entirely.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from typing import Any

from ..throttle import DEFAULT_LIMITS

WINDOWS = (1.0, 60.0, 3600.0)
#: the GET /rate-limits groups, in the spec's order
GROUPS = tuple(k for k in DEFAULT_LIMITS if k != "auth")
#: public and authentication endpoints: 60 requests per second per IP, no per-minute or per-hour limit
PUBLIC_LIMITS = (60, 0, 0)


class RateLimiter:
    def __init__(self, clock: Any, enabled: bool = True) -> None:
        self.clock = clock
        self.enabled = enabled
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._strikes: dict[tuple[str, str], int] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the defaults (TEST defaults equal production since API 2.5.0)."""
        with self._lock:
            self._limits: dict[str, tuple[int, int, int]] = {g: DEFAULT_LIMITS[g] for g in GROUPS}
            self._limits["auth"] = PUBLIC_LIMITS

    def set_production(self) -> None:
        self.reset()

    def limits(self) -> dict:
        """The GET /rate-limits body."""
        with self._lock:
            return {
                g: {"perSecond": s, "perMinute": m, "perHour": h}
                for g, (s, m, h) in self._limits.items()
                if g in GROUPS
            }

    def set_limits(self, rate_limits: dict) -> None:
        with self._lock:
            for group, value in rate_limits.items():
                if group in GROUPS and isinstance(value, dict):
                    self._limits[group] = (
                        int(value.get("perSecond", 0)),
                        int(value.get("perMinute", 0)),
                        int(value.get("perHour", 0)),
                    )

    def snapshot(self) -> dict:
        return copy.deepcopy(self._limits)

    def hit(self, group: str, key: str) -> int | None:
        """Count a request; None if allowed, else the Retry-After seconds (the request is not counted)."""
        limits = self._limits.get(group)
        if not limits:
            return None
        now = self.clock.monotonic()
        slot = (group, key)
        with self._lock:
            hits = self._hits.setdefault(slot, deque())
            while hits and hits[0] <= now - WINDOWS[-1]:
                hits.popleft()
            wait = 0.0
            for window, limit in zip(WINDOWS, limits, strict=True):
                if limit > 0 and len(hits) >= limit:
                    boundary = hits[-limit]
                    if boundary > now - window:
                        wait = max(wait, boundary + window - now)
            if wait > 0:
                strikes = self._strikes.get(slot, 0) + 1
                self._strikes[slot] = strikes
                return max(1, int(wait + 0.999) + min(strikes - 1, 10))
            self._strikes.pop(slot, None)
            hits.append(now)
            return None
