"""KSeF certificates end to end (client, ``ksef_certificates.enroll`` and the simulator; conformance on):
limits, enrollment data, enrollment of Authentication and Offline certificates from a CSR, status, retrieval,
query, revocation, ``PUT /testdata/certificates/{serial}`` to play expiry, subject limits on TEST, and using
the certificates: an Authentication certificate logs in, an Offline one is refused for it and signs KOD II."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ksefnet_core import ksef_certificates, qr
from ksefnet_core.auth import ContextIdentifier, authenticate_with_certificate
from ksefnet_core.certificates import CertificateKind, generate_test_credential
from ksefnet_core.environments import get as get_environment
from ksefnet_core.errors import KsefAuthenticationFailed, KsefBadRequest, KsefOperationFailed

from .client_support import COMPANY, PESEL, control, new_client, post_testdata, token_client


def seal_client(simulator, key_type: str = "RSA"):
    """A client logged in with a company seal of COMPANY (XAdES), and the seal."""
    seal = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=COMPANY, key_type=key_type)
    client = new_client(simulator)
    authenticate_with_certificate(client, seal, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    return client, seal


@pytest.mark.parametrize("key_type", ["EC", "RSA"])
def test_an_authentication_certificate_is_issued_and_logs_in(simulator, key_type):
    client, seal = seal_client(simulator)
    data = client.certificate_enrollment_data()
    assert data["organizationIdentifier"] == f"VATPL-{COMPANY}" and data["countryName"] == "PL"
    before = client.certificate_limits()
    assert before["canRequest"] and before["certificate"] == {"limit": 100, "remaining": 100}
    cred = ksef_certificates.enroll(client, "Bufor KSeFNet", key_type=key_type, poll_interval=0.02)
    assert cred.certificate.subject == seal.certificate.subject
    assert not ksef_certificates.is_offline_certificate(cred.certificate)
    after = client.certificate_limits()
    assert after["certificate"]["remaining"] == 99 and after["enrollment"]["remaining"] == 299
    # the new certificate authenticates in the company's context like the seal it was requested with
    other = new_client(simulator)
    result = authenticate_with_certificate(other, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    assert result.method == {
        "category": "XadesSignature",
        "code": "certificate.ksef",
        "displayName": "Certyfikat KSeF",
    }
    listed = list(client.query_certificates())
    assert [(c["certificateSerialNumber"], c["type"], c["status"]) for c in listed] == [
        (cred.serial_hex, "Authentication", "Active")
    ]
    assert listed[0]["subjectIdentifier"] == {"type": "Nip", "value": COMPANY} and "lastUseDate" in listed[0]


def test_an_offline_certificate_signs_kod_ii_and_cannot_log_in(simulator):
    client, _seal = seal_client(simulator)
    cred = ksef_certificates.enroll(client, "Offline kasa 1", ksef_certificates.OFFLINE, poll_interval=0.02)
    assert ksef_certificates.is_offline_certificate(cred.certificate)
    assert isinstance(cred.private_key, ec.EllipticCurvePrivateKey)  # EC P-256, as KSeF recommends
    url = qr.certificate_verification_url(
        get_environment("TEST"), "Nip", COMPANY, COMPANY, invoice_xml=b"<Faktura/>", credential=cred
    )
    assert qr.verify_certificate_url(url, cred.certificate)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(
            new_client(simulator), cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02
        )
    assert info.value.status_code == 460
    assert [c["type"] for c in client.query_certificates({"type": "Offline"})] == ["Offline"]
    assert list(client.query_certificates({"type": "Authentication"})) == []


def test_revoked_and_expired_certificates(simulator):
    client, _seal = seal_client(simulator)
    first = ksef_certificates.enroll(client, "Pierwszy", poll_interval=0.02)
    second = ksef_certificates.enroll(client, "Drugi", poll_interval=0.02)
    client.revoke_certificate(first.serial_hex, "Superseded")
    with pytest.raises(KsefBadRequest) as info:
        client.revoke_certificate(first.serial_hex)
    assert info.value.code == 25009
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(
            new_client(simulator), first, ContextIdentifier.nip(COMPANY), poll_interval=0.02
        )
    assert info.value.status_code == 460
    # TEST: shorten the second one's validity to play its expiry
    soon = datetime.now(timezone.utc) + timedelta(seconds=1)
    client.set_test_certificate_valid_to(second.serial_hex, soon)
    cert = ksef_certificates.retrieve(client, second.serial_hex)
    assert abs(cert.not_valid_after_utc - soon) < timedelta(seconds=1)
    with pytest.raises(KsefBadRequest) as info:  # it may not be made longer
        client.set_test_certificate_valid_to(second.serial_hex, soon + timedelta(days=1))
    assert info.value.code == 21405
    with pytest.raises(KsefBadRequest) as info:
        client.set_test_certificate_valid_to("0123456789ABCDEF", soon)
    assert info.value.code == 25008
    statuses = {c["certificateSerialNumber"]: c["status"] for c in client.query_certificates()}
    assert statuses[first.serial_hex] == "Revoked"
    # once past the shortened date it is expired, also in the holder's older, longer-valid copy
    control(simulator, "/clock", {"advanceSeconds": 5})
    assert second.certificate.not_valid_after_utc > soon + timedelta(days=300)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(
            new_client(simulator), second, ContextIdentifier.nip(COMPANY), poll_interval=0.02
        )
    assert info.value.status_code == 460
    fresh, _seal = seal_client(simulator)
    statuses = {c["certificateSerialNumber"]: c["status"] for c in fresh.query_certificates()}
    assert statuses[second.serial_hex] == "Expired"


def test_enrollment_rules(simulator):
    token = token_client(simulator)  # authenticated with a KSeF token: no certificate data
    with pytest.raises(KsefBadRequest) as info:
        token.certificate_enrollment_data()
    assert info.value.code == 25001
    key = ksef_certificates.new_key()
    csr = ksef_certificates.build_csr({"commonName": "X", "countryName": "PL"}, key)
    with pytest.raises(KsefBadRequest) as info:
        token.enroll_certificate("Certyfikat", "Authentication", csr)
    assert info.value.code == 25002
    client, _seal = seal_client(simulator)
    data = client.certificate_enrollment_data()
    other = dict(data, commonName="Ktoś inny")
    with pytest.raises(KsefBadRequest) as info:  # the CSR must carry exactly the subject's data
        client.enroll_certificate("Certyfikat", "Authentication", ksef_certificates.build_csr(other, key))
    assert info.value.code == 25003
    with pytest.raises(KsefBadRequest) as info:
        client.enroll_certificate("Certyfikat", "Authentication", b"not a CSR")
    assert info.value.code == 25004
    weak = ec.generate_private_key(ec.SECP384R1())  # KSeF takes P-256 only
    with pytest.raises(KsefBadRequest) as info:
        client.enroll_certificate("Certyfikat", "Authentication", ksef_certificates.build_csr(data, weak))
    assert info.value.code == 25004
    with pytest.raises(ValueError):
        client.enroll_certificate("Certyfikat", "Signing", b"")


def test_a_key_certified_for_someone_else_is_refused_in_the_status(simulator):
    client, _seal = seal_client(simulator)
    key = ksef_certificates.new_key()
    ksef_certificates.enroll(client, "Pierwszy", private_key=key, poll_interval=0.02)
    person = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL)
    post_testdata(
        simulator,
        "/person",
        {"nip": COMPANY, "pesel": PESEL, "isBailiff": False, "description": "Jan Kowalski"},
    )
    other = new_client(simulator)
    authenticate_with_certificate(other, person, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    with pytest.raises(KsefOperationFailed) as info:
        ksef_certificates.enroll(other, "Cudzy klucz", private_key=key, poll_interval=0.02)
    assert info.value.status_code == 400 and "inny podmiot" in str(info.value)
    assert (
        list(other.query_certificates()) == []
    )  # certificates belong to the subject (PESEL), not the context


def test_subject_limits_on_test(simulator):
    client, _seal = seal_client(simulator)
    assert client.subject_limits() == {
        "enrollment": {"maxEnrollments": 300},
        "certificate": {"maxCertificates": 100},
    }
    client.request(
        "POST",
        "/testdata/limits/subject/certificate",
        json_body={
            "subjectIdentifierType": "Nip",
            "enrollment": {"maxEnrollments": 1},
            "certificate": {"maxCertificates": 5},
        },
    )
    assert client.subject_limits()["enrollment"] == {"maxEnrollments": 1}
    ksef_certificates.enroll(client, "Jedyny", poll_interval=0.02)
    assert client.certificate_limits()["canRequest"] is False
    with pytest.raises(KsefBadRequest) as info:
        ksef_certificates.enroll(client, "Drugi", poll_interval=0.02)
    assert info.value.code == 25006
    client.request("DELETE", "/testdata/limits/subject/certificate")
    assert client.subject_limits()["enrollment"] == {"maxEnrollments": 300}


def test_csr_signature_hash_and_attributes():
    key = ksef_certificates.new_key("RSA")
    data = {"commonName": "Firma", "countryName": "PL", "organizationIdentifier": "VATPL-1111111111"}
    csr = x509.load_der_x509_csr(ksef_certificates.build_csr(data, key))
    assert csr.is_signature_valid and isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert {a.value for a in csr.subject} == set(data.values())
    with pytest.raises(ValueError):
        ksef_certificates.build_csr({"countryName": "PL"}, key)
    with pytest.raises(ValueError):
        ksef_certificates.new_key("DSA")
