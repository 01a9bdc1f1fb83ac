"""Known-answer tests for NIP/PESEL checksums, KSeF numbers (CRC-8) and reference numbers."""

from datetime import date

import pytest

from ksefnet_core import ids

DOCS_KSEF_NUMBER = "5265877635-20250826-0100001AF629-AF"  # faktury/numer-ksef.md


def test_crc8_known_answers():
    # CRC-8 (poly 0x07, init 0, no reflection, no xorout): the standard check value of "123456789" is 0xF4.
    assert ids.crc8(b"123456789") == 0xF4
    assert ids.crc8(b"") == 0


def test_docs_ksef_number_parses_with_its_checksum():
    parsed = ids.parse_ksef_number(DOCS_KSEF_NUMBER)
    assert parsed.seller_nip == "5265877635"
    assert parsed.acceptance_date == date(2025, 8, 26)
    assert parsed.technical == "0100001AF629"
    assert parsed.checksum == "AF"
    assert str(parsed) == DOCS_KSEF_NUMBER


@pytest.mark.parametrize(
    "value",
    [
        "5265877635-20250826-0100001AF629-AE",  # wrong checksum
        "5265877635-20250826-0100001af629-AF",  # lower-case hex
        "5265877635-20251326-0100001AF629-AF",  # month 13
        "5265877635-20250231-0100001AF629-AF",  # impossible date that matches the pattern
        "0265877635-20250826-0100001AF629-AF",  # NIP cannot start with 0
        "",
    ],
)
def test_invalid_ksef_numbers_are_rejected(value):
    assert not ids.is_valid_ksef_number(value)
    with pytest.raises(ValueError):
        ids.parse_ksef_number(value)


def test_legacy_36_character_form_is_accepted():
    data = "5265877635-20250826-010000-1AF629"
    legacy = f"{data}-{ids.ksef_number_checksum(data)}"
    assert len(legacy) == 36
    assert ids.parse_ksef_number(legacy).technical == "0100001AF629"


def test_made_ksef_numbers_round_trip():
    number = ids.make_ksef_number("5265877635", date(2026, 2, 1), "ABCDEF012345")
    assert len(number) == 35
    assert ids.parse_ksef_number(number).technical == "ABCDEF012345"
    assert ids.is_valid_ksef_number(ids.make_ksef_number("5265877635", date(2026, 2, 1)))


@pytest.mark.parametrize("nip", ["5265877635", "526-587-76-35", "PL5265877635", "1111111111"])
def test_valid_nips(nip):
    assert ids.is_valid_nip(nip)


@pytest.mark.parametrize("nip", ["5265877636", "1234567890", "0123456789", "526587763", "abcdefghij", ""])
def test_invalid_nips(nip):
    assert not ids.is_valid_nip(nip)


def test_nip_with_checksum_completes_prefix():
    assert ids.nip_with_checksum("526587763") == "5265877635"
    # 123456789: the weighted sum mod 11 is 10, so no NIP has this prefix.
    assert ids.nip_with_checksum("123456789") is None


def test_pesel_checksum():
    assert ids.is_valid_pesel("44051401359")
    assert not ids.is_valid_pesel("44051401358")
    assert not ids.is_valid_pesel("4405140135")


def test_reference_numbers_have_ksef_shape():
    ref = ids.make_reference_number("SO", date(2026, 1, 2))
    assert len(ref) == 36
    assert ref.startswith("20260102-SO-")
    assert ids.REFERENCE_NUMBER_PATTERN.match(ref)
    with pytest.raises(ValueError):
        ids.make_reference_number("so")
