"""Latarnia, KSeF's status service (no authentication): is KSeF available, and what does the Ministry announce.

``GET {base}/status`` -> ``{"status": AVAILABLE | MAINTENANCE | FAILURE | TOTAL_FAILURE, "messages": [...]}``;
``GET {base}/messages`` -> a list of ``{id, eventId, category, type, title, text, start, end, version,
published}`` where category ``01`` is a failure, ``02`` a total failure and ``03`` a planned unavailability
(KSEF_API_NOTES §1). TEST and PRODUCTION have addresses of their own (:data:`LATARNIA_URLS`); the local
simulator serves the same API at its root.

:func:`availability` combines what Latarnia says with the buffer's own recent answers from KSeF into one of
:data:`STATES`; :meth:`LatarniaMessage.outage` turns an announcement into an
:class:`~ksefnet_core.offline.Outage` for the offline deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from .crypto import parse_datetime
from .offline import Outage, OutageKind

LATARNIA_URLS = {
    "TEST": "https://api-latarnia-test.ksef.mf.gov.pl",
    "PRODUCTION": "https://api-latarnia.ksef.mf.gov.pl",
}
AVAILABLE, MAINTENANCE, FAILURE, TOTAL_FAILURE = "AVAILABLE", "MAINTENANCE", "FAILURE", "TOTAL_FAILURE"
LATARNIA_STATUSES = (AVAILABLE, MAINTENANCE, FAILURE, TOTAL_FAILURE)
#: the buffer's view of KSeF: Latarnia's four states and "unreachable" (KSeF does not answer this buffer)
STATES = ("available", "maintenance", "failure", "total_failure", "unreachable")
CATEGORY_KIND = {
    "01": OutageKind.FAILURE,
    "02": OutageKind.TOTAL_FAILURE,
    "03": OutageKind.UNAVAILABILITY,
}
MAX_MESSAGES = 100
MAX_TEXT = 4000


class LatarniaError(Exception):
    """Latarnia could not be read (network, HTTP status, or an answer of the wrong shape).

    ``unreachable``: nothing answered (network); otherwise Latarnia answered something unusable."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class LatarniaMessage:
    id: str
    category: str
    title: str
    text: str
    start: datetime | None
    end: datetime | None
    published: datetime | None = None
    event_id: str | None = None
    type: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> LatarniaMessage:
        if not isinstance(data, dict):
            raise LatarniaError("a Latarnia message is not an object")
        return cls(
            id=_text(data.get("id"), 100),
            category=_text(data.get("category"), 10),
            title=_text(data.get("title"), 500),
            text=_text(data.get("text"), MAX_TEXT),
            start=_moment(data.get("start")),
            end=_moment(data.get("end")),
            published=_moment(data.get("published")),
            event_id=_text(data.get("eventId"), 100) or None,
            type=_text(data.get("type"), 100) or None,
        )

    @property
    def kind(self) -> OutageKind | None:
        return CATEGORY_KIND.get(self.category)

    def outage(self) -> Outage | None:
        """The announced outage (failure, total failure, planned unavailability), or None for other news."""
        kind = self.kind
        start = self.start or self.published
        if kind is None or start is None:
            return None
        end = self.end if self.end is not None and self.end >= start else None
        return Outage(kind, start, end)


@dataclass(frozen=True)
class LatarniaStatus:
    status: str
    messages: tuple[LatarniaMessage, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> LatarniaStatus:
        if not isinstance(data, dict) or data.get("status") not in LATARNIA_STATUSES:
            raise LatarniaError("Latarnia's status answer has no known status")
        raw = data.get("messages") or []
        if not isinstance(raw, list):
            raise LatarniaError("Latarnia's messages are not a list")
        return cls(data["status"], tuple(LatarniaMessage.from_json(m) for m in raw[:MAX_MESSAGES]))


class LatarniaClient:
    """Reads Latarnia at ``base_url`` (no credentials: it is a public service)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, session: requests.Session | None = None):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Latarnia's address must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    @classmethod
    def for_environment(cls, name: str, **kw: Any) -> LatarniaClient:
        try:
            return cls(LATARNIA_URLS[name.upper()], **kw)
        except KeyError:
            raise ValueError(f"KSeF publishes no Latarnia address for {name}") from None

    def _get(self, path: str) -> Any:
        try:
            resp = self.session.get(
                self.base_url + path, timeout=self.timeout, headers={"Accept": "application/json"}
            )
        except requests.RequestException as exc:
            raise LatarniaError(
                f"Latarnia cannot be reached: {type(exc).__name__}", unreachable=True
            ) from None
        if resp.status_code != 200:
            raise LatarniaError(f"Latarnia answered HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise LatarniaError("Latarnia's answer is not JSON") from None

    def status(self) -> LatarniaStatus:
        return LatarniaStatus.from_json(self._get("/status"))

    def messages(self) -> list[LatarniaMessage]:
        data = self._get("/messages")
        if not isinstance(data, list):
            raise LatarniaError("Latarnia's messages are not a list")
        return [LatarniaMessage.from_json(m) for m in data[:MAX_MESSAGES]]

    def close(self) -> None:
        self.session.close()


def availability(latarnia: LatarniaStatus | None, ksef_answers: bool | None) -> str:
    """One of :data:`STATES` from Latarnia's status (None: it could not be read) and the buffer's own recent
    experience (True: KSeF answered, False: it did not, None: nothing tried lately).

    Latarnia's announcement wins when it reports a problem; when it says AVAILABLE (or cannot be read) but
    KSeF does not answer the buffer, KSeF is ``unreachable`` from here."""
    if latarnia is not None and latarnia.status != AVAILABLE:
        return latarnia.status.lower()
    if ksef_answers is False:
        return "unreachable"
    if latarnia is None and ksef_answers is None:
        return "unreachable"
    return "available"


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    return str(value)[:limit]


def _moment(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None
