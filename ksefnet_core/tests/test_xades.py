"""Certificates (loading, kinds) and XAdES signing/verification, checked also by an independent verifier."""

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from ksefnet_core.certificates import (
    CertificateKind,
    Credential,
    CredentialError,
    credential_to_pem,
    credential_to_pkcs12,
    generate_test_credential,
    load_credential,
)
from ksefnet_core.xades import (
    DS,
    XadesVerificationError,
    auth_schema,
    build_auth_token_request,
    parse_auth_token_request,
    sign_xades,
    verify_xades,
)

NIP = "5265877635"
PESEL = "44051401359"
CHALLENGE = "20250514-CR-226FB7B000-3ACF9BE4C0-10"


@pytest.fixture(scope="module")
def seal():
    return generate_test_credential(CertificateKind.COMPANY_SEAL, nip=NIP)


@pytest.fixture(scope="module")
def ec_person():
    return generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL, key_type="EC")


def test_kinds_are_detected_from_the_subject():
    assert (
        generate_test_credential(CertificateKind.COMPANY_SEAL, nip=NIP).kind == CertificateKind.COMPANY_SEAL
    )
    person = generate_test_credential(CertificateKind.PERSONAL_NIP, nip=NIP)
    assert person.kind == CertificateKind.PERSONAL_NIP and person.subject_nip == NIP
    pesel = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL)
    assert pesel.kind == CertificateKind.PERSONAL_PESEL and pesel.subject_pesel == PESEL
    assert generate_test_credential(CertificateKind.OTHER).kind == CertificateKind.OTHER


def test_pkcs12_and_pem_round_trip(seal):
    assert load_credential(credential_to_pkcs12(seal, "hasło"), "hasło").serial_hex == seal.serial_hex
    assert (
        load_credential(credential_to_pem(seal), None).fingerprint_sha256_hex == seal.fingerprint_sha256_hex
    )
    assert load_credential(credential_to_pem(seal, "x"), "x").kind == CertificateKind.COMPANY_SEAL
    pem = credential_to_pem(seal)
    cert_part, key_part = pem.split(b"-----END CERTIFICATE-----")
    separate = load_credential(cert_part + b"-----END CERTIFICATE-----\n", key_data=key_part.strip())
    assert separate.serial_hex == seal.serial_hex


def test_wrong_password_is_clear_and_does_not_leak(seal):
    with pytest.raises(CredentialError) as info:
        load_credential(credential_to_pkcs12(seal, "dobre"), "ZleHaslo123")
    assert "ZleHaslo123" not in str(info.value)
    with pytest.raises(CredentialError, match="password"):
        load_credential(credential_to_pem(seal, "dobre"), "zle")


def test_mismatched_weak_and_garbage_inputs_are_refused(seal, ec_person):
    other = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=NIP)
    mixed = credential_to_pem(Credential(seal.certificate, other.private_key))
    with pytest.raises(CredentialError, match="does not belong"):
        load_credential(mixed)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CredentialError, match="2048"):
        load_credential(credential_to_pem(Credential(seal.certificate, weak)))
    with pytest.raises(CredentialError):
        load_credential(b"not a certificate at all")
    with pytest.raises(CredentialError):
        load_credential(b"")


def test_repr_never_shows_the_key(seal):
    text = repr(seal)
    assert "PRIVATE" not in text and str(seal.private_key.private_numbers().d)[:20] not in text


def test_auth_token_request_matches_schema():
    xml = build_auth_token_request(
        CHALLENGE, "Nip", NIP, "certificateSubject", {"ip4Addresses": ["10.0.0.1"]}
    )
    auth_schema().validate(xml)
    data = parse_auth_token_request(etree.fromstring(xml))
    assert (data.challenge, data.context_type, data.context_value) == (CHALLENGE, "Nip", NIP)
    assert data.allowed_ips["ip4Addresses"] == ["10.0.0.1"]
    with pytest.raises(ValueError):
        build_auth_token_request("short", "Nip", NIP)


@pytest.mark.parametrize("who", ["seal", "ec_person"])
def test_sign_verify_round_trip(who, request):
    cred = request.getfixturevalue(who)
    signed = sign_xades(build_auth_token_request(CHALLENGE, "Nip", NIP), cred)
    verified = verify_xades(signed)
    assert verified.certificate == cred.certificate
    assert parse_auth_token_request(verified.root).context_value == NIP
    assert verified.signing_time is not None


@pytest.mark.skipif(not shutil.which("xmlsec1"), reason="xmlsec1 not installed (apt-get install xmlsec1)")
@pytest.mark.parametrize("who", ["seal", "ec_person"])
def test_independent_verifier_accepts_signature(who, request, tmp_path):
    cred = request.getfixturevalue(who)
    path = tmp_path / "signed.xml"
    path.write_bytes(sign_xades(build_auth_token_request(CHALLENGE, "Nip", NIP), cred))
    cmd = [
        "xmlsec1",
        "--verify",
        "--insecure",
        "--id-attr:Id",
        "SignedProperties",
        "--enabled-reference-uris",
        "empty,same-doc",
        str(path),
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout + ok.stderr, ok.stderr
    path.write_bytes(path.read_bytes().replace(NIP.encode(), b"1111111111"))
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode != 0 or "OK" not in bad.stdout


def test_tampering_is_detected(seal, ec_person):
    signed = sign_xades(build_auth_token_request(CHALLENGE, "Nip", NIP), seal)
    with pytest.raises(XadesVerificationError) as info:
        verify_xades(signed.replace(NIP.encode(), b"1111111111"))
    assert info.value.code == 9105
    # swap the certificate for another one: signature no longer matches
    other = sign_xades(build_auth_token_request(CHALLENGE, "Nip", NIP), ec_person)
    cert_of = lambda x: etree.fromstring(x).findtext(f".//{{{DS}}}X509Certificate")  # noqa: E731
    with pytest.raises(XadesVerificationError):
        verify_xades(signed.replace(cert_of(signed).encode(), cert_of(other).encode()))


def test_missing_extra_and_wrapped_signatures_are_refused(seal):
    plain = build_auth_token_request(CHALLENGE, "Nip", NIP)
    with pytest.raises(XadesVerificationError) as info:
        verify_xades(plain)
    assert info.value.code == 9102
    signed = sign_xades(plain, seal)
    # wrapping: move the signed request inside a new root that names another context
    root = etree.fromstring(signed)
    wrapper = etree.fromstring(build_auth_token_request(CHALLENGE, "Nip", "1111111111"))
    wrapper.append(root)
    with pytest.raises(XadesVerificationError):
        verify_xades(etree.tostring(wrapper))
    twice = etree.fromstring(signed)
    twice.append(etree.fromstring(signed).find(f"{{{DS}}}Signature"))
    with pytest.raises(XadesVerificationError) as info:
        verify_xades(etree.tostring(twice))
    assert info.value.code == 9103


def test_doctype_and_entities_are_refused(seal):
    signed = sign_xades(build_auth_token_request(CHALLENGE, "Nip", NIP), seal)
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        + signed.split(b"?>", 1)[1]
    )
    with pytest.raises(XadesVerificationError) as info:
        verify_xades(evil)
    assert info.value.code == 9101
    with pytest.raises(XadesVerificationError) as info:
        verify_xades(b"<unclosed")
    assert info.value.code == 21001


def test_nip_vat_ue_context_despite_the_schemas_literal_dollar():
    """The official TNipVatUE pattern ends with a literal "$" in XSD terms; values are checked as intended."""
    xml = build_auth_token_request(CHALLENGE, "NipVatUe", f"{NIP}-DE123456789", "certificateSubject")
    assert b"DE123456789" in xml
    with pytest.raises(ValueError, match="schema"):
        build_auth_token_request(CHALLENGE, "NipVatUe", f"{NIP}-DE12", "certificateSubject")
