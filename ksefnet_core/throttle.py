"""Client-side pacing so the client never provokes KSeF's HTTP 429 by itself.

KSeF counts requests per (context, IP) in sliding windows of 1 s, 60 s and 60 min per endpoint group
(``GET /rate-limits``). :class:`Throttle` keeps the same windows on the client side: ``acquire(group)``
waits just long enough for the next request of that group to be within every window. Waits longer than
``max_wait`` are not slept: :class:`ThrottleDeferred` tells the caller when to come back (e.g. a scheduled
action that should end now and run again later rather than block a worker for an hour).

Groups follow KSeF API 2.9 (``limity-api.md``, changelog 2.7.1/2.8.0): closing sessions has groups of its
own (``onlineSessionClose``, ``batchSessionClose``), collective identifiers have ``collectiveIdentifier``,
unauthenticated calls ``anonymous`` (per IP), and ``global`` is reserved (per IP, currently off: KSeF lists it
with ``-1``). A limit of 0 or less means "no limit in that window". Groups the throttle does not know (a newer
KSeF) are adopted from ``GET /rate-limits`` as they come. The default group ``other`` gives **each endpoint its
own counter** (``limity-api.md``: "Każdy taki endpoint posiada własny licznik limitów"): pass the endpoint as
``counter`` and the limits of ``other`` apply to that counter alone. When ``global`` has a positive limit,
every request is also counted there.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: KSeF's production limits of API 2.9 (KSEF_API_NOTES §13, API_CHANGES_AFTER_2.6): group -> (per second,
#: per minute, per hour); 0 or less = no limit in that window
DEFAULT_LIMITS: dict[str, tuple[int, int, int]] = {
    "onlineSession": (10, 30, 120),
    "onlineSessionClose": (20, 60, 240),
    "batchSession": (10, 20, 60),
    "batchSessionClose": (20, 40, 120),
    "invoiceSend": (10, 30, 180),
    "invoiceStatus": (30, 120, 1200),
    "sessionList": (5, 10, 60),
    "sessionInvoiceList": (10, 20, 200),
    "sessionMisc": (10, 120, 1200),
    "invoiceMetadata": (8, 16, 20),
    "invoiceExport": (8, 16, 20),
    "invoiceExportStatus": (10, 60, 600),
    "invoiceDownload": (8, 16, 64),
    "collectiveIdentifier": (20, 120, 240),
    "other": (10, 30, 120),
    "anonymous": (60, -1, -1),  # unauthenticated calls, per IP: 60 req/s ("public endpoints")
    "global": (-1, -1, -1),  # per IP over every group: reserved by KSeF, currently off
    # not a KSeF group: the calls made with the authentication or refresh token (GET /auth/{ref}, redeem,
    # refresh), which the spec limits to 60 req/s like the public endpoints
    "auth": (60, -1, -1),
}
#: groups of GET /rate-limits that are not endpoint groups of their own
GLOBAL_GROUP = "global"
#: the default group, whose endpoints each count on their own
OTHER_GROUP = "other"
WINDOWS = (1.0, 60.0, 3600.0)
#: KSeF counts a request when it arrives, the throttle when it leaves: latency differences between two requests
#: could put one more request into KSeF's window than the throttle counted. Windows are widened by this much.
DEFAULT_MARGIN = 0.25


class ThrottleDeferred(Exception):
    """The next request of ``group`` is allowed only in ``wait`` seconds, more than the caller accepts."""

    def __init__(self, group: str, wait: float) -> None:
        super().__init__(f"KSeF rate limit for {group}: next request allowed in {wait:.0f} s")
        self.group = group
        self.wait = wait


class Throttle:
    """Sliding-window pacing per endpoint group. Thread-safe."""

    def __init__(
        self,
        limits: dict[str, tuple[int, int, int]] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._sent: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_rate_limits(cls, data: dict, **kw: object) -> Throttle:
        """Build from a ``GET /rate-limits`` answer (``{group: {perSecond, perMinute, perHour}}``)."""
        throttle = cls(**kw)  # type: ignore[arg-type]
        throttle.update_limits(data)
        return throttle

    def update_limits(self, data: dict) -> None:
        """Adopt a ``GET /rate-limits`` answer, keeping the record of requests already sent.

        Every group is taken, known or not (a newer KSeF may add groups); a window missing from a group's
        values counts as "no limit". Values that are not numbers are ignored with the rest of their group.
        """
        if not isinstance(data, dict):
            return
        with self._lock:
            for group, value in data.items():
                if not isinstance(group, str) or not isinstance(value, dict):
                    continue
                try:
                    limits = tuple(int(value.get(k, -1)) for k in ("perSecond", "perMinute", "perHour"))
                except (TypeError, ValueError):
                    continue
                self.limits[group] = limits  # type: ignore[assignment]

    def active(self, group: str) -> bool:
        """The group has a limit in at least one window."""
        return any(limit > 0 for limit in self.limits.get(group) or ())

    def delay(self, group: str, counter: str | None = None) -> float:
        """Seconds to wait before a request of ``group`` is within every window (0 if it is now)."""
        with self._lock:
            now = self._clock()
            return max(self._delay(g, c, now) for g, c in self._slots(group, counter))

    def _slots(self, group: str, counter: str | None) -> list[tuple[str, str]]:
        """(limits group, counter) pairs a request of ``group`` counts in."""
        slots = [(group, counter or group)]
        if group != GLOBAL_GROUP and self.active(GLOBAL_GROUP):
            slots.append((GLOBAL_GROUP, GLOBAL_GROUP))
        return slots

    def _delay(self, group: str, counter: str, now: float) -> float:
        wait = max(0.0, self._blocked_until.get(group, 0.0) - now)
        limits = self.limits.get(group)
        sent = self._sent.get(counter)
        if not limits or not sent:
            return wait
        while sent and sent[0] <= now - WINDOWS[-1] - self.margin:
            sent.popleft()
        for base_window, limit in zip(WINDOWS, limits, strict=True):
            if limit <= 0:
                continue
            window = base_window + self.margin
            # count requests inside (now - window, now]; the oldest one that must expire is at index -limit
            if len(sent) >= limit:
                boundary = sent[-limit]
                if boundary > now - window:
                    wait = max(wait, boundary + window - now)
        return wait

    def capacity(self, group: str, horizon: float = 0.0, counter: str | None = None) -> int | None:
        """How many requests of ``group`` fit into every window within ``horizon`` seconds from now.

        Sending them all at once may still be paced by the per-second window; None when the group has no
        limit. A scheduler uses it to choose work that fits the budgets left (e.g. online or batch).
        """
        with self._lock:
            now = self._clock()
            if self._blocked_until.get(group, 0.0) > now + horizon:
                return 0
            limits = self.limits.get(group)
            if not limits:
                return None
            sent = self._sent.get(counter or group) or deque()
            room: int | None = None
            for base_window, limit in zip(WINDOWS, limits, strict=True):
                if limit <= 0 or base_window <= 1.0:
                    continue  # the per-second window only paces; it never holds work back for long
                window = base_window + self.margin
                used = sum(1 for t in sent if t > now + horizon - window)
                free = max(0, limit - used)
                room = free if room is None else min(room, free)
            return room

    def acquire(self, group: str, max_wait: float | None = None, counter: str | None = None) -> float:
        """Wait until a request of ``group`` may be sent and record it; return the seconds waited.

        ``counter``: the request counts on this counter under the limits of ``group`` (the endpoints of the
        ``other`` group each have one); default: the group's own counter.
        Raises :class:`ThrottleDeferred` without waiting when the wait would exceed ``max_wait``.
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                slots = self._slots(group, counter)
                wait = max(self._delay(g, c, now) for g, c in slots)
                if wait <= 0:
                    for _group, slot in slots:
                        self._sent.setdefault(slot, deque()).append(now)
                    return waited
                if max_wait is not None and waited + wait > max_wait:
                    raise ThrottleDeferred(group, wait)
            self._sleep(wait)
            waited += wait

    def penalise(self, group: str, retry_after: float) -> None:
        """After a 429 anyway (another client shares the context): hold the group for ``retry_after`` s."""
        with self._lock:
            until = self._clock() + max(0.0, retry_after)
            self._blocked_until[group] = max(self._blocked_until.get(group, 0.0), until)
