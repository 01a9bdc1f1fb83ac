"""Server-side rate limits as KSeF applies them (KSEF_API_NOTES §13, limity-api.md, API 2.8 groups).

Counted per group and per (context, client IP), in sliding windows of 1 s, 60 s and 60 min enforced at
once; each endpoint of the default group ``other`` has a counter of its own (the caller passes it in the key).
Unauthenticated calls count per IP in ``anonymous``; ``global`` (per IP over everything) is listed with -1
(off), as KSeF does, and applies once given positive limits. A refused request gets 429 with ``Retry-After``;
repeated violations lengthen the wait a little, like KSeF. Limits can be changed at run time
(``POST /testdata/rate-limits``) and switched off entirely.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from typing import Any

from ..throttle import DEFAULT_LIMITS, GLOBAL_GROUP

WINDOWS = (1.0, 60.0, 3600.0)
#: the GET /rate-limits groups (API 2.9)
GROUPS = tuple(k for k in DEFAULT_LIMITS if k != "auth")
#: the calls made with the authentication or refresh token: 60 requests per second, not listed
AUTH_GROUP = "auth"


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
            self._limits[AUTH_GROUP] = DEFAULT_LIMITS[AUTH_GROUP]

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

    def global_active(self) -> bool:
        return any(v > 0 for v in self._limits.get(GLOBAL_GROUP, ()))

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
