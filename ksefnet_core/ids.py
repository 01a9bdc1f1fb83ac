"""Identifiers used by KSeF: NIP and PESEL checksums, KSeF numbers (CRC-8), reference numbers."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime

_NIP_WEIGHTS = (6, 5, 7, 2, 3, 4, 5, 6, 7)
_PESEL_WEIGHTS = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)

# Patterns copied from the OpenAPI components (Nip, Pesel, InternalId, KsefNumber).
NIP_PATTERN = re.compile(r"^[1-9]((\d[1-9])|([1-9]\d))\d{7}$")
PESEL_PATTERN = re.compile(
    r"^\d{2}(?:0[1-9]|1[0-2]|2[1-9]|3[0-2]|4[1-9]|5[0-2]|6[1-9]|7[0-2]|8[1-9]|9[0-2])\d{7}$"
)
INTERNAL_ID_PATTERN = re.compile(r"^[1-9]((\d[1-9])|([1-9]\d))\d{7}-\d{5}$")
KSEF_NUMBER_PATTERN = re.compile(
    r"^([1-9](\d[1-9]|[1-9]\d)\d{7})-(20[2-9][0-9]|2[1-9]\d{2}|[3-9]\d{3})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])"
    r"-([0-9A-F]{6})-?([0-9A-F]{6})-([0-9A-F]{2})$"
)
REFERENCE_NUMBER_PATTERN = re.compile(r"^\d{8}-[A-Z]{2}-[0-9A-F]{10}-[0-9A-F]{10}-[0-9A-F]{2}$")


def normalize_nip(value: str) -> str:
    """Strip the usual separators (spaces, dashes) and an optional ``PL`` prefix."""
    v = re.sub(r"[\s-]", "", value or "").upper()
    return v[2:] if v.startswith("PL") else v


def is_valid_nip(value: str) -> bool:
    """True when ``value`` is a 10-digit NIP with a correct checksum (after :func:`normalize_nip`)."""
    nip = normalize_nip(value)
    if not NIP_PATTERN.match(nip):
        return False
    check = sum(int(d) * w for d, w in zip(nip, _NIP_WEIGHTS, strict=False)) % 11
    return check != 10 and check == int(nip[9])


def nip_with_checksum(first9: str) -> str | None:
    """Complete a 9-digit prefix with its checksum digit, or None when no valid NIP has that prefix."""
    if len(first9) != 9 or not first9.isdigit():
        raise ValueError("a NIP prefix has 9 digits")
    check = sum(int(d) * w for d, w in zip(first9, _NIP_WEIGHTS, strict=True)) % 11
    if check == 10:
        return None
    nip = first9 + str(check)
    return nip if NIP_PATTERN.match(nip) else None


def is_valid_pesel(value: str) -> bool:
    """True when ``value`` is an 11-digit PESEL with a correct checksum."""
    if not value or not PESEL_PATTERN.match(value):
        return False
    s = sum(int(d) * w for d, w in zip(value, _PESEL_WEIGHTS, strict=False))
    return (10 - s % 10) % 10 == int(value[10])


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07, init 0x00, no reflection, no final XOR (KSeF number checksum)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@dataclass(frozen=True)
class KsefNumber:
    """A parsed KSeF invoice number ``NNNNNNNNNN-YYYYMMDD-XXXXXXXXXXXX-CC``."""

    seller_nip: str
    acceptance_date: date
    technical: str
    checksum: str

    def __str__(self) -> str:
        return f"{self.seller_nip}-{self.acceptance_date:%Y%m%d}-{self.technical}-{self.checksum}"


def ksef_number_checksum(data_part: str) -> str:
    """Checksum (2 uppercase hex chars) of the first 32 characters of a KSeF number, dashes included."""
    return f"{crc8(data_part.encode('ascii')):02X}"


def parse_ksef_number(value: str) -> KsefNumber:
    """Parse and verify a KSeF number; raises ValueError with the reason when it is not valid.

    The 36-character KSeF 1.0 form (a dash inside the technical part) is accepted and normalised.
    """
    m = KSEF_NUMBER_PATTERN.match(value or "")
    if not m:
        raise ValueError(f"not a KSeF number: {value!r}")
    nip = m.group(1)
    try:
        day = date(int(m.group(3)), int(m.group(4)), int(m.group(5)))
    except ValueError:
        raise ValueError(f"KSeF number {value!r} has an impossible date") from None
    technical = m.group(6) + m.group(7)
    checksum = m.group(8)
    data_part = value[: len(value) - 3]
    if ksef_number_checksum(data_part) != checksum:
        raise ValueError(f"KSeF number {value!r} has a wrong checksum")
    return KsefNumber(nip, day, technical, checksum)


def is_valid_ksef_number(value: str) -> bool:
    try:
        parse_ksef_number(value)
    except ValueError:
        return False
    return True


def make_ksef_number(seller_nip: str, acceptance_date: date, technical: str | None = None) -> str:
    """Build a KSeF number with a correct CRC-8 (used by the simulator and in tests)."""
    tech = (technical or secrets.token_hex(6)).upper()
    if not re.fullmatch(r"[0-9A-F]{12}", tech):
        raise ValueError("technical part must be 12 uppercase hex characters")
    data_part = f"{seller_nip}-{acceptance_date:%Y%m%d}-{tech}"
    return f"{data_part}-{ksef_number_checksum(data_part)}"


def make_reference_number(kind: str, when: datetime | date | None = None) -> str:
    """A KSeF-style reference number ``YYYYMMDD-XX-<10 hex>-<10 hex>-<2 hex>`` (36 characters)."""
    if not re.fullmatch(r"[A-Z]{2}", kind):
        raise ValueError("reference number kind is two uppercase letters, e.g. 'SO'")
    day = when or date.today()
    h = secrets.token_hex(11).upper()
    return f"{day:%Y%m%d}-{kind}-{h[:10]}-{h[10:20]}-{h[20:22]}"
