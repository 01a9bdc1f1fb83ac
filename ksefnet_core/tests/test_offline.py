"""Offline deadlines (tryby-offline.md): holidays 2026-2028, working days, every mode, restarts, total failure."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from ksefnet_core import offline
from ksefnet_core.offline import Deadline, OfflineError, OfflineMode, Outage, OutageKind, send_deadline

W = offline.WARSAW


def waw(y, m, d, hh=12, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=W)


# The official lists of days off for 2026-2028 (written out by hand, not computed).
HOLIDAYS = {
    2026: [
        "2026-01-01", "2026-01-06", "2026-04-05", "2026-04-06", "2026-05-01", "2026-05-03", "2026-05-24",
        "2026-06-04", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-24", "2026-12-25", "2026-12-26",
    ],
    2027: [
        "2027-01-01", "2027-01-06", "2027-03-28", "2027-03-29", "2027-05-01", "2027-05-03", "2027-05-16",
        "2027-05-27", "2027-08-15", "2027-11-01", "2027-11-11", "2027-12-24", "2027-12-25", "2027-12-26",
    ],
    2028: [
        "2028-01-01", "2028-01-06", "2028-04-16", "2028-04-17", "2028-05-01", "2028-05-03", "2028-06-04",
        "2028-06-15", "2028-08-15", "2028-11-01", "2028-11-11", "2028-12-24", "2028-12-25", "2028-12-26",
    ],
}  # fmt: skip


@pytest.mark.parametrize("year", sorted(HOLIDAYS))
def test_holidays_2026_2028(year):
    assert sorted(offline.polish_holidays(year)) == [date.fromisoformat(d) for d in HOLIDAYS[year]]


def test_easter_and_names():
    assert offline.easter_sunday(2026) == date(2026, 4, 5)
    assert offline.easter_sunday(2027) == date(2027, 3, 28)
    assert offline.easter_sunday(2028) == date(2028, 4, 16)
    assert offline.polish_holidays(2027)[date(2027, 5, 27)] == "Boże Ciało"
    assert offline.polish_holidays(2026)[date(2026, 12, 24)] == "Wigilia Bożego Narodzenia"


def test_christmas_eve_is_a_holiday_only_from_2025():
    assert offline.is_holiday(date(2025, 12, 24))
    assert not offline.is_holiday(date(2024, 12, 24))  # a Tuesday, a working day then
    assert offline.is_working_day(date(2024, 12, 24))


def test_working_days():
    assert offline.is_working_day(date(2026, 3, 2))  # Monday
    assert not offline.is_working_day(date(2026, 3, 7))  # Saturday
    assert not offline.is_working_day(date(2026, 3, 8))  # Sunday
    assert not offline.is_working_day(date(2026, 6, 4))  # Corpus Christi, a Thursday
    assert offline.is_working_day(date(2026, 6, 5))
    # Christmas 2026: Thu 24, Fri 25, Sat 26 off; from Wed 23 the next working day is Mon 28.
    assert offline.next_working_day(date(2026, 12, 23)) == date(2026, 12, 28)
    # Easter 2027 (28-29 March): from Friday 26 the next working day is Tuesday 30.
    assert offline.next_working_day(date(2027, 3, 26)) == date(2027, 3, 30)
    # New Year 2027 is a Friday: from Thu 31 Dec 2026 the next is Mon 4 Jan; 7 working days skip 6 Jan.
    assert offline.next_working_day(date(2026, 12, 31)) == date(2027, 1, 4)
    assert offline.add_working_days(date(2026, 12, 31), 7) == date(2027, 1, 13)
    with pytest.raises(OfflineError):
        offline.add_working_days(date(2026, 1, 1), 0)


def test_the_documented_example():
    """tryby-offline.md: offline24 on Wed 2025-07-08, failure announced Thu 9, over Sat 12: deadline Tue 22."""
    plain = send_deadline("offline24", waw(2025, 7, 8))
    assert plain.day == date(2025, 7, 9)
    failure = Outage(OutageKind.FAILURE, waw(2025, 7, 9, 9), waw(2025, 7, 12, 10))
    assert send_deadline("offline24", waw(2025, 7, 8), [failure]).day == date(2025, 7, 22)


@pytest.mark.parametrize(
    ("issued", "expected"),
    [
        (waw(2026, 3, 2, 8), date(2026, 3, 3)),  # Monday -> Tuesday
        (waw(2026, 3, 6, 23, 59), date(2026, 3, 9)),  # Friday late evening -> Monday
        (waw(2026, 3, 7), date(2026, 3, 9)),  # Saturday -> Monday
        (waw(2026, 4, 3), date(2026, 4, 7)),  # Good Friday -> Tuesday after Easter Monday
        (waw(2026, 4, 30), date(2026, 5, 4)),  # before the May holidays
        (waw(2026, 6, 3), date(2026, 6, 5)),  # Corpus Christi 4 June skipped
        (waw(2026, 11, 10), date(2026, 11, 12)),  # Independence Day skipped
        (waw(2027, 12, 23), date(2027, 12, 27)),  # Thu 23 -> Mon 27 (24, 25, 26 off)
        (waw(2028, 6, 14), date(2028, 6, 16)),  # Corpus Christi 15 June 2028
        (waw(2028, 12, 22), date(2028, 12, 27)),  # Fri 22 -> Wed 27 (Christmas Eve on Sunday, 25-26 off)
    ],
)
def test_offline24(issued, expected):
    deadline = send_deadline(OfflineMode.OFFLINE24, issued)
    assert deadline == Deadline(OfflineMode.OFFLINE24, obligation=True, day=expected)
    assert deadline.until == datetime.combine(expected + timedelta(days=1), datetime.min.time(), W)


def test_the_day_of_issue_is_the_warsaw_day():
    # 23:30 UTC on Monday 2 March 2026 is already Tuesday 00:30 in Warsaw: the deadline is Wednesday.
    issued = datetime(2026, 3, 2, 23, 30, tzinfo=timezone.utc)
    assert send_deadline("offline24", issued).day == date(2026, 3, 4)
    # In summer Warsaw is UTC+2: 22:30 UTC on Friday 26 June 2026 is Saturday: deadline Monday 29.
    assert send_deadline("offline24", datetime(2026, 6, 26, 22, 30, tzinfo=timezone.utc)).day == date(
        2026, 6, 29
    )


def test_until_is_midnight_warsaw_in_utc():
    deadline = send_deadline("offline24", waw(2026, 7, 1))  # deadline Thursday 2 July, CEST
    assert deadline.until == datetime(2026, 7, 2, 22, 0, tzinfo=timezone.utc)
    deadline = send_deadline("offline24", waw(2026, 1, 12))  # Tuesday 13 January, CET
    assert deadline.until == datetime(2026, 1, 13, 23, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (waw(2026, 3, 2, 9), waw(2026, 3, 2, 18), date(2026, 3, 3)),  # a day's maintenance
        (waw(2026, 3, 6, 20), waw(2026, 3, 8, 6), date(2026, 3, 9)),  # over the weekend
        (waw(2027, 4, 30, 20), waw(2027, 5, 2, 6), date(2027, 5, 4)),  # ends Sun 2 May; 3 May off
        (waw(2028, 12, 21, 22), waw(2028, 12, 22, 4), date(2028, 12, 27)),
    ],
)
def test_unavailability(start, end, expected):
    outage = Outage(OutageKind.UNAVAILABILITY, start, end)
    issued = start + timedelta(minutes=30)
    assert send_deadline("unavailability", issued, [outage]).day == expected


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (waw(2026, 3, 4, 15), date(2026, 3, 13)),  # Wed -> 7 working days: Fri 13
        (waw(2026, 3, 28, 15), date(2026, 4, 8)),  # Sat 28 March, Easter Monday in the count: Wed 8 April
        (waw(2026, 12, 18, 15), date(2026, 12, 31)),  # Fri 18: 21 22 23 28 29 30 31
        (waw(2027, 5, 24, 15), date(2027, 6, 3)),  # Corpus Christi 27 May skipped
        (waw(2028, 10, 30, 15), date(2028, 11, 9)),  # 1 November skipped
    ],
)
def test_failure(end, expected):
    outage = Outage(OutageKind.FAILURE, end - timedelta(hours=20), end)
    issued = end - timedelta(hours=2)
    assert send_deadline("failure", issued, [outage]).day == expected


def test_failure_restarts_when_another_is_announced():
    first = Outage(OutageKind.FAILURE, waw(2026, 3, 2, 8), waw(2026, 3, 2, 20))
    assert send_deadline("failure", waw(2026, 3, 2, 10), [first]).day == date(2026, 3, 11)
    # Announced within the 7 days (Tue 10 March), over on Thu 12: the count starts again: Mon 23 March.
    second = Outage(OutageKind.FAILURE, waw(2026, 3, 10, 8), waw(2026, 3, 12, 9))
    assert send_deadline("failure", waw(2026, 3, 2, 10), [second, first]).day == date(2026, 3, 23)
    # A third one announced on the last day still restarts (at 23:00 of 23 March), over 24 March: 2 April.
    third = Outage(OutageKind.FAILURE, waw(2026, 3, 23, 23), waw(2026, 3, 24, 1))
    assert send_deadline("failure", waw(2026, 3, 2, 10), [first, second, third]).day == date(2026, 4, 2)
    # One announced after the deadline has passed changes nothing.
    late = Outage(OutageKind.FAILURE, waw(2026, 3, 24, 0, 0), waw(2026, 3, 25))
    assert send_deadline("failure", waw(2026, 3, 2, 10), [first, second, late]).day == date(2026, 3, 23)


def test_failure_during_offline24_and_unavailability_shifts_the_deadline():
    issued = waw(2026, 5, 29, 17)  # Friday; offline24 deadline Monday 1 June
    failure = Outage(OutageKind.FAILURE, waw(2026, 6, 1, 7), waw(2026, 6, 2, 12))
    # 7 working days from Tue 2 June: 3, 5 (4 = Corpus Christi), 8, 9, 10, 11, 12.
    assert send_deadline("offline24", issued, [failure]).day == date(2026, 6, 12)
    # The same failure announced after the offline24 deadline does not matter.
    later = Outage(OutageKind.FAILURE, waw(2026, 6, 2, 7), waw(2026, 6, 3, 12))
    assert send_deadline("offline24", issued, [later]).day == date(2026, 6, 1)
    # A failure that was over before the invoice was issued does not matter either.
    before = Outage(OutageKind.FAILURE, waw(2026, 5, 28, 7), waw(2026, 5, 28, 12))
    assert send_deadline("offline24", issued, [before]).day == date(2026, 6, 1)
    unavailable = Outage(OutageKind.UNAVAILABILITY, waw(2026, 5, 29, 16), waw(2026, 5, 31, 8))
    assert send_deadline("unavailability", issued, [unavailable]).day == date(2026, 6, 1)
    assert send_deadline("unavailability", issued, [unavailable, failure]).day == date(2026, 6, 12)


def test_total_failure_lifts_the_obligation():
    assert send_deadline("total_failure", waw(2026, 3, 2)) == Deadline(
        OfflineMode.TOTAL_FAILURE, obligation=False, day=None
    )
    total = Outage(OutageKind.TOTAL_FAILURE, waw(2026, 3, 3, 9), waw(2026, 3, 5))
    deadline = send_deadline("offline24", waw(2026, 3, 2), [total])
    assert not deadline.obligation and deadline.day is None and not deadline.pending
    failure = Outage(OutageKind.FAILURE, waw(2026, 3, 2, 8), waw(2026, 3, 2, 20))
    total_later = Outage(OutageKind.TOTAL_FAILURE, waw(2026, 3, 10, 9))
    assert not send_deadline("failure", waw(2026, 3, 2, 10), [failure, total_later]).obligation
    # After the deadline passed it is too late to be lifted.
    total_late = Outage(OutageKind.TOTAL_FAILURE, waw(2026, 3, 4, 0, 0))
    assert send_deadline("offline24", waw(2026, 3, 2), [total_late]).day == date(2026, 3, 3)


def test_an_outage_still_going_on():
    failure = Outage(OutageKind.FAILURE, waw(2026, 3, 2, 8))
    pending = send_deadline("failure", waw(2026, 3, 2, 10), [failure])
    assert pending.pending and pending.day is None and pending.until is None
    provisional = send_deadline("failure", waw(2026, 3, 2, 10), [failure], now=waw(2026, 3, 3, 9))
    assert provisional.provisional and provisional.day == date(2026, 3, 12)
    assert send_deadline("offline24", waw(2026, 3, 2, 7), [failure]).pending


def test_bad_input_is_refused_clearly():
    with pytest.raises(OfflineError, match="Unknown offline mode 'offline48'"):
        send_deadline("offline48", waw(2026, 3, 2))
    with pytest.raises(OfflineError, match="time zone"):
        send_deadline("offline24", datetime(2026, 3, 2, 12))
    with pytest.raises(OfflineError, match="needs the announced failure"):
        send_deadline("failure", waw(2026, 3, 2))
    other = Outage(OutageKind.FAILURE, waw(2026, 3, 3), waw(2026, 3, 4))
    with pytest.raises(OfflineError, match="none covers"):
        send_deadline("failure", waw(2026, 3, 2), [other])
    with pytest.raises(OfflineError, match="cannot end before"):
        Outage(OutageKind.FAILURE, waw(2026, 3, 3), waw(2026, 3, 2))
    with pytest.raises(ValueError):
        Outage("blackout", waw(2026, 3, 3))


# -- KOD II with an Offline-type certificate ------------------------------------------------------------------
NIP = "5265877635"
XML = b"<Faktura>offline</Faktura>"


def _verify_independently(url, certificate):
    """Check a KOD II link with the certificate's public key alone (not through ksefnet_core.qr)."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    signed, signature_text = url.split("://", 1)[1].rsplit("/", 1)
    signature = base64.urlsafe_b64decode(signature_text + "=" * (-len(signature_text) % 4))
    parts = signed.split("/")
    assert parts[1:6] == [
        "certificate",
        "Nip",
        NIP,
        NIP,
        f"{certificate.serial_number:X}".zfill(len(parts[5])),
    ]
    assert parts[6] == base64.urlsafe_b64encode(hashlib.sha256(XML).digest()).decode().rstrip("=")
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            signature,
            signed.encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        key.verify(der, signed.encode(), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("key_type", ["RSA", "EC"])
def test_kod2_signed_with_an_offline_certificate(key_type):
    from ksefnet_core.environments import TEST

    credential = offline.generate_offline_credential(NIP, key_type=key_type)
    assert offline.certificate_type(credential.certificate) == offline.CERTIFICATE_OFFLINE
    offline.check_offline_credential(credential)
    url = offline.kod2_url(TEST, NIP, XML, credential)
    assert url.startswith(f"https://qr-test.ksef.mf.gov.pl/certificate/Nip/{NIP}/{NIP}/")
    _verify_independently(url, credential.certificate)
    tampered = url.replace(f"/{NIP}/{NIP}/", f"/{NIP}/1111111111/")
    from cryptography.exceptions import InvalidSignature

    with pytest.raises((InvalidSignature, AssertionError)):
        _verify_independently(tampered, credential.certificate)


def test_an_authentication_certificate_is_refused_for_kod2():
    from ksefnet_core.certificates import CertificateKind, generate_test_credential

    auth = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=NIP)
    assert offline.certificate_type(auth.certificate) == offline.CERTIFICATE_AUTHENTICATION
    with pytest.raises(offline.OfflineCertificateError, match="Authentication-type .* Offline-type"):
        offline.check_offline_credential(auth)


def test_an_expired_offline_certificate_is_refused():
    expired = offline.generate_offline_credential(NIP, valid_days=-2)
    with pytest.raises(offline.OfflineCertificateError, match="expired on"):
        offline.check_offline_credential(expired)
    fresh = offline.generate_offline_credential(NIP)
    with pytest.raises(offline.OfflineCertificateError, match="valid only from"):
        offline.check_offline_credential(fresh, now=datetime.now(timezone.utc) - timedelta(days=3))


def test_the_readable_invoice_shows_kod2_of_an_offline_invoice():
    from ksefnet_core import visualise
    from ksefnet_core.environments import TEST
    from ksefnet_core.testing import sample_invoice

    xml = sample_invoice(seller_nip=NIP, number="FV/OFF/1")
    credential = offline.generate_offline_credential(NIP, key_type="EC")
    url = offline.kod2_url(TEST, NIP, xml, credential)
    html = visualise.invoice_html(xml, environment=TEST, certificate_url=url)
    assert "KOD II" in html and "CERTYFIKAT" in html and url in html
    assert "OFFLINE" in html  # KOD I without a KSeF number
    assert "KOD II" not in visualise.invoice_html(xml, environment=TEST)
