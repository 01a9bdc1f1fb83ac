"""Offline invoicing deadlines (tryby-offline.md): Polish public holidays, working days, the four modes.

Modes and their sending deadlines (the last day, inclusive, in Europe/Warsaw):

* ``offline24`` (the taxpayer's choice, any time): the next working day after the day of issue.
* ``unavailability`` (KSeF's announced unavailability, "offline"/"niedostępność"): the next working day after the
  day the unavailability ends.
* ``failure`` (KSeF's announced failure, "awaryjny"): 7 working days after the day the failure ends.
* ``total_failure`` (total failure announced in the media, "awaria całkowita"): no obligation to send at all.

Events during the sending period (:func:`send_deadline`): when a failure is announced before the deadline of an
offline24, unavailability or failure invoice has passed, the deadline becomes 7 working days after the end of that
failure (for the failure mode: the count restarts from the end of the later failure); a total failure announced
before the deadline lifts the obligation. The announcement is taken to be the start of the outage.

Working days are Monday to Friday except Polish public holidays (ustawa o dniach wolnych od pracy, with 24 December
a holiday from 2025 on). "N working days after day D" is the N-th working day strictly after D, so the worked example
of the documentation holds: a failure ending on Saturday 2025-07-12 gives Tuesday 2025-07-22.

KOD II is signed with an Offline-type KSeF certificate only (key usage Non-Repudiation); an Authentication one
(Digital Signature) is refused: :func:`check_offline_credential`, :func:`kod2_url`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from cryptography import x509

from .certificates import CertificateKind, Credential, generate_test_credential
from .environments import Environment
from .ksef_certificates import AUTHENTICATION, OFFLINE
from .qr import certificate_verification_url

try:
    from zoneinfo import ZoneInfo

    WARSAW: timezone | ZoneInfo = ZoneInfo("Europe/Warsaw")
except (
    Exception
):  # pragma: no cover - no time zone database: Warsaw's winter offset is the safe approximation
    WARSAW = timezone(timedelta(hours=1), "CET")

FAILURE_WORKING_DAYS = 7
CHRISTMAS_EVE_FROM = 2025  # 24 December is a public holiday from 2025 on (Dz.U. 2024 poz. 1965)


class OfflineMode(str, enum.Enum):
    OFFLINE24 = "offline24"
    UNAVAILABILITY = "unavailability"
    FAILURE = "failure"
    TOTAL_FAILURE = "total_failure"


class OutageKind(str, enum.Enum):
    UNAVAILABILITY = "unavailability"
    FAILURE = "failure"
    TOTAL_FAILURE = "total_failure"


class OfflineError(ValueError):
    """A mode, moment or outage that a deadline cannot be computed from; the message says which."""


def easter_sunday(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def _holidays(year: int) -> tuple[tuple[date, str], ...]:
    easter = easter_sunday(year)
    days = [
        (date(year, 1, 1), "Nowy Rok"),
        (date(year, 1, 6), "Święto Trzech Króli"),
        (easter, "Wielkanoc"),
        (easter + timedelta(days=1), "Poniedziałek Wielkanocny"),
        (date(year, 5, 1), "Święto Pracy"),
        (date(year, 5, 3), "Święto Konstytucji 3 Maja"),
        (easter + timedelta(days=49), "Zielone Świątki"),
        (easter + timedelta(days=60), "Boże Ciało"),
        (date(year, 8, 15), "Wniebowzięcie Najświętszej Maryi Panny"),
        (date(year, 11, 1), "Wszystkich Świętych"),
        (date(year, 11, 11), "Narodowe Święto Niepodległości"),
        (date(year, 12, 25), "Boże Narodzenie (pierwszy dzień)"),
        (date(year, 12, 26), "Boże Narodzenie (drugi dzień)"),
    ]
    if year >= CHRISTMAS_EVE_FROM:
        days.append((date(year, 12, 24), "Wigilia Bożego Narodzenia"))
    return tuple(sorted(days))


def polish_holidays(year: int) -> dict[date, str]:
    """The public holidays of ``year`` in Poland, date -> Polish name."""
    if not 1951 <= year <= 9998:
        raise OfflineError(f"Year {year} is outside the supported range 1951-9998.")
    return dict(_holidays(year))


def is_holiday(day: date) -> bool:
    return day in polish_holidays(day.year)


def is_working_day(day: date) -> bool:
    """Monday to Friday, not a public holiday."""
    return day.weekday() < 5 and not is_holiday(day)


def add_working_days(day: date, count: int) -> date:
    """The ``count``-th working day strictly after ``day`` (``count`` >= 1)."""
    if count < 1:
        raise OfflineError("The number of working days must be at least 1.")
    current = day
    while count:
        current += timedelta(days=1)
        if is_working_day(current):
            count -= 1
    return current


def next_working_day(day: date) -> date:
    return add_working_days(day, 1)


def warsaw_date(moment: datetime) -> date:
    """The calendar day in Warsaw at an aware ``moment``."""
    return _aware(moment, "moment").astimezone(WARSAW).date()


def end_of_day(day: date) -> datetime:
    """The first instant after ``day`` in Warsaw, as an aware UTC date-time (the deadline is strictly before it)."""
    return datetime.combine(day + timedelta(days=1), time(0), WARSAW).astimezone(timezone.utc)


@dataclass(frozen=True)
class Outage:
    """An announced KSeF outage: ``start`` is the announcement, ``end`` None while it goes on."""

    kind: OutageKind
    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", OutageKind(self.kind))
        _aware(self.start, "outage start")
        if self.end is not None and _aware(self.end, "outage end") < self.start:
            raise OfflineError("An outage cannot end before it starts.")

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment <= self.end)


@dataclass(frozen=True)
class Deadline:
    """When an offline invoice must reach KSeF.

    ``day`` is the last day (Warsaw) or None: no obligation (``obligation`` False) or not known yet because an
    outage it depends on goes on (``pending``). ``provisional``: an outage still going on was assumed to end at the
    moment of the computation, so the day is the earliest it can become.
    """

    mode: OfflineMode
    obligation: bool
    day: date | None
    provisional: bool = False

    @property
    def pending(self) -> bool:
        return self.obligation and self.day is None

    @property
    def until(self) -> datetime | None:
        """The deadline as an instant (UTC): the invoice must be sent before it."""
        return end_of_day(self.day) if self.day else None


def send_deadline(
    mode: OfflineMode | str,
    issued_at: datetime,
    outages: Iterable[Outage] = (),
    now: datetime | None = None,
) -> Deadline:
    """The sending deadline of an invoice issued at ``issued_at`` in ``mode``, given the announced ``outages``.

    An unavailability or failure invoice needs the outage it was issued in (one that covers ``issued_at``). An
    outage that still goes on is assumed to end at ``now`` when given (a provisional, earliest deadline), else the
    deadline is pending.
    """
    try:
        mode = OfflineMode(mode)
    except ValueError:
        raise OfflineError(
            f"Unknown offline mode {mode!r}; use one of: {', '.join(m.value for m in OfflineMode)}."
        ) from None
    issued_at = _aware(issued_at, "issue moment")
    if now is not None:
        now = _aware(now, "now")
    events = sorted(outages, key=lambda o: o.start)
    if mode is OfflineMode.TOTAL_FAILURE:
        return Deadline(mode, obligation=False, day=None)

    provisional = False

    def ended(outage: Outage) -> datetime | None:
        nonlocal provisional
        if outage.end is not None:
            return outage.end
        if now is None:
            return None
        provisional = True
        return max(now, outage.start)

    day: date | None
    if mode is OfflineMode.OFFLINE24:
        day = next_working_day(warsaw_date(issued_at))
    else:
        wanted = OutageKind.UNAVAILABILITY if mode is OfflineMode.UNAVAILABILITY else OutageKind.FAILURE
        own = [o for o in events if o.kind is wanted and o.covers(issued_at)]
        if not own:
            raise OfflineError(
                f"An invoice issued in the {mode.value} mode needs the announced {wanted.value} it was issued in;"
                f" none covers {issued_at.isoformat()}."
            )
        end = ended(own[-1])
        if end is None:
            return Deadline(mode, obligation=True, day=None)
        if mode is OfflineMode.UNAVAILABILITY:
            day = next_working_day(warsaw_date(end))
        else:
            day = add_working_days(warsaw_date(end), FAILURE_WORKING_DAYS)

    # Failures and total failures announced before the deadline passed (in start order, so a later failure
    # restarts the count from its own end).
    for outage in events:
        if outage.kind is OutageKind.UNAVAILABILITY:
            continue
        if outage.end is not None and outage.end < issued_at:
            continue  # over before the invoice was issued
        if outage.start >= end_of_day(day):
            continue  # announced after the deadline had passed
        if outage.kind is OutageKind.TOTAL_FAILURE:
            return Deadline(mode, obligation=False, day=None)
        end = ended(outage)
        if end is None:
            return Deadline(mode, obligation=True, day=None)
        day = max(day, add_working_days(warsaw_date(end), FAILURE_WORKING_DAYS))
    return Deadline(mode, obligation=True, day=day, provisional=provisional)


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise OfflineError(f"The {what} must be a date-time, not {type(moment).__name__}.")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise OfflineError(f"The {what} must carry a time zone (got {moment.isoformat()}).")
    return moment


# -- the Offline-type KSeF certificate (certyfikaty-KSeF.md): the one that signs KOD II ------------------------
CERTIFICATE_OFFLINE = OFFLINE  # KSeF's names of the two certificate types (ksef_certificates.py)
CERTIFICATE_AUTHENTICATION = AUTHENTICATION


class OfflineCertificateError(ValueError):
    """A certificate that cannot sign KOD II; the message says why and never contains key material.

    ``code`` (``authentication``, ``not_offline``, ``expired``, ``not_yet_valid``) and ``day`` let a user
    interface say the same in its own language."""

    def __init__(self, message: str, code: str, day: date | None = None) -> None:
        super().__init__(message)
        self.code, self.day = code, day


def certificate_type(certificate: x509.Certificate) -> str | None:
    """KSeF's certificate type from the key usage: ``Offline`` (Non-Repudiation only), ``Authentication``
    (Digital Signature), None when neither (not a KSeF certificate)."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if usage.digital_signature:
        return CERTIFICATE_AUTHENTICATION
    if usage.content_commitment:
        return CERTIFICATE_OFFLINE
    return None


def check_offline_credential(credential: Credential, now: datetime | None = None) -> None:
    """Raise :class:`OfflineCertificateError` unless ``credential`` may sign KOD II at ``now``."""
    kind = certificate_type(credential.certificate)
    if kind == CERTIFICATE_AUTHENTICATION:
        raise OfflineCertificateError(
            "This is an Authentication-type KSeF certificate (key usage Digital Signature): KOD II must be "
            "signed with an Offline-type KSeF certificate (key usage Non-Repudiation).",
            "authentication",
        )
    if kind != CERTIFICATE_OFFLINE:
        raise OfflineCertificateError(
            "This certificate is not an Offline-type KSeF certificate (key usage Non-Repudiation): it cannot "
            "sign KOD II.",
            "not_offline",
        )
    now = now or datetime.now(timezone.utc)
    if credential.not_after < now:
        raise OfflineCertificateError(
            f"The Offline certificate expired on {credential.not_after.date().isoformat()}: KOD II cannot be "
            "signed with it. Enrol a new Offline certificate in KSeF.",
            "expired",
            credential.not_after.date(),
        )
    if credential.not_before > now:
        raise OfflineCertificateError(
            f"The Offline certificate is valid only from {credential.not_before.date().isoformat()}.",
            "not_yet_valid",
            credential.not_before.date(),
        )


def generate_offline_credential(nip: str, *, key_type: str = "RSA", valid_days: int = 365) -> Credential:
    """A self-signed Offline-type certificate of company ``nip`` (key usage Non-Repudiation), for tests and
    demos; ``valid_days`` < 0 gives an expired one."""
    return generate_test_credential(
        CertificateKind.COMPANY_SEAL,
        nip=nip,
        key_type=key_type,
        common_name=f"Offline {nip}",
        valid_days=valid_days,
        offline=True,
    )


def kod2_url(environment: Environment, nip: str, invoice_xml: bytes, credential: Credential) -> str:
    """KOD II of an invoice the buffer of ``nip`` issued offline (context Nip, seller ``nip``), after
    :func:`check_offline_credential`."""
    return certificate_verification_url(
        environment, "Nip", nip, nip, invoice_xml=invoice_xml, credential=credential
    )
