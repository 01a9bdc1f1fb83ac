"""XAdES as auth/podpis-xades.md allows it: every canonicalisation (C14N 1.0, 1.1, exclusive; with and
without comments), extra references, RSA (PKCS#1 v1.5 and PSS) and ECDSA, the XPath transforms, enveloping
signatures; cross-checked with an independent implementation (signxml) both ways; tampering still detected;
and the simulator authenticating with such signatures under both subject identifier types."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLVerifier,
)
from signxml.xades import XAdESSigner

from ksefnet_core import xades
from ksefnet_core.auth import ContextIdentifier, authenticate_with_certificate
from ksefnet_core.certificates import CertificateKind, generate_test_credential
from ksefnet_core.xades import (
    CANONICALIZATIONS,
    DS,
    XadesVerificationError,
    build_auth_token_request,
    parse_auth_token_request,
    sign_xades,
    verify_xades,
)

from .client_support import COMPANY, new_client, post_testdata

NIP = "5265877635"
CHALLENGE = "20250514-CR-226FB7B000-3ACF9BE4C0-10"
Q = {"ds": DS}


@pytest.fixture(scope="module")
def seal():
    return generate_test_credential(CertificateKind.COMPANY_SEAL, nip=NIP)


@pytest.fixture(scope="module")
def ec_seal():
    return generate_test_credential(CertificateKind.COMPANY_SEAL, nip=NIP, key_type="EC")


def request_xml(with_comment: bool = False) -> bytes:
    xml = build_auth_token_request(CHALLENGE, "Nip", NIP)
    if with_comment:
        xml = xml.replace(b"<Challenge>", b"<!-- wygenerowano w KSeFNet --><Challenge>")
    return xml


def pem(cred) -> bytes:
    return cred.certificate.public_bytes(serialization.Encoding.PEM)


def resign(root, cred) -> bytes:
    """Sign ``SignedInfo`` again after a test changed it (references' digests stay as they are)."""
    signature = root.find("ds:Signature", Q) if root.tag != f"{{{DS}}}Signature" else root
    signed_info = signature.find("ds:SignedInfo", Q)
    c14n = signed_info.find("ds:CanonicalizationMethod", Q).get("Algorithm")
    method = signed_info.find("ds:SignatureMethod", Q).get("Algorithm")
    raw = xades._sign_raw(cred.private_key, method, xades.canonicalize(signed_info, c14n))
    signature.find("ds:SignatureValue", Q).text = base64.b64encode(raw).decode()
    return etree.tostring(root)


@pytest.mark.parametrize("algorithm", sorted(CANONICALIZATIONS))
@pytest.mark.parametrize("who", ["seal", "ec_seal"])
def test_every_canonicalisation_signs_verifies_and_detects_tampering(algorithm, who, request):
    cred = request.getfixturevalue(who)
    signed = sign_xades(
        request_xml(with_comment=True), cred, canonicalization=algorithm, reference_key_info=True
    )
    root = etree.fromstring(signed)
    assert root.find("ds:Signature/ds:SignedInfo/ds:CanonicalizationMethod", Q).get("Algorithm") == algorithm
    assert (
        len(root.findall("ds:Signature/ds:SignedInfo/ds:Reference", Q)) == 3
    )  # document, properties, KeyInfo
    verified = verify_xades(signed)
    assert parse_auth_token_request(verified.root).context_value == NIP
    # an independent XMLDSig implementation accepts it too (on a document without comments: signxml keeps
    # comments in a URI="" reference signed "with comments", where XMLDSig 4.4.3.3 drops them, as we do)
    plain = sign_xades(request_xml(), cred, canonicalization=algorithm, reference_key_info=True)
    XMLVerifier().verify(
        plain, x509_cert=pem(cred), expect_config=SignatureConfiguration(expect_references=3)
    )
    # tampering: the document, the signed properties, the signed KeyInfo
    with pytest.raises(XadesVerificationError) as info:
        verify_xades(signed.replace(NIP.encode(), b"1111111111"))
    assert info.value.code == 9105
    with pytest.raises(XadesVerificationError):
        verify_xades(signed.replace(b"<xades:SigningTime>", b"<xades:SigningTime>1"))
    tampered = etree.fromstring(signed)
    etree.SubElement(tampered.find("ds:Signature/ds:KeyInfo", Q), f"{{{DS}}}KeyName").text = "inny"
    with pytest.raises(XadesVerificationError, match="skrót"):
        verify_xades(etree.tostring(tampered))
    # a comment is not part of a same-document reference (XMLDSig): changing it breaks nothing
    assert verify_xades(signed.replace(b"wygenerowano w KSeFNet", b"zmieniony komentarz"))


@pytest.mark.parametrize("c14n", [c for c in CanonicalizationMethod if "EXCLUSIVE" not in c.name])
@pytest.mark.parametrize(
    "who, method, digest",
    [
        ("seal", SignatureMethod.RSA_SHA512, DigestAlgorithm.SHA384),
        ("seal", SignatureMethod.SHA256_RSA_MGF1, DigestAlgorithm.SHA256),  # RSASSA-PSS
        ("ec_seal", SignatureMethod.ECDSA_SHA384, DigestAlgorithm.SHA512),
        ("ec_seal", SignatureMethod.ECDSA_SHA3_256, DigestAlgorithm.SHA3_256),
    ],
)
def test_signatures_of_another_implementation_are_accepted(c14n, who, method, digest, request):
    """signxml's XAdES signer adds a reference to KeyInfo and signs the properties without transforms (so their
    octets come from the default C14N 1.0, as XMLDSig says). With exclusive canonicalisation it canonicalises
    those with the exclusive algorithm instead, which XMLDSig does not allow; those are not used here."""
    cred = request.getfixturevalue(who)
    key = cred.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = XAdESSigner(signature_algorithm=method, digest_algorithm=digest, c14n_algorithm=c14n)
    signed = etree.tostring(signer.sign(etree.fromstring(request_xml()), key=key, cert=pem(cred)))
    verified = verify_xades(signed)
    assert verified.certificate == cred.certificate
    with pytest.raises(XadesVerificationError):
        verify_xades(signed.replace(CHALLENGE.encode(), CHALLENGE[:-2].encode() + b"11"))


@pytest.mark.parametrize(
    "method", [xades.RSA_PSS_SHA256, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"]
)
def test_rsa_signature_methods_and_digests(seal, method):
    signed = sign_xades(request_xml(), seal, signature_method=method, digest_method=xades.SHA512)
    assert verify_xades(signed).certificate == seal.certificate
    with pytest.raises(ValueError):
        sign_xades(request_xml(), seal, signature_method=xades.ECDSA_SHA256)  # not for an RSA key


def test_xpath_transforms_instead_of_enveloped(seal):
    signed = sign_xades(request_xml(), seal)
    root = etree.fromstring(signed)
    transform = root.find("ds:Signature/ds:SignedInfo/ds:Reference[@URI='']/ds:Transforms/ds:Transform", Q)
    transform.set("Algorithm", xades.XPATH)
    etree.SubElement(
        transform, f"{{{DS}}}XPath", nsmap={"ds": DS}
    ).text = "not(ancestor-or-self::ds:Signature)"
    assert verify_xades(resign(root, seal))
    # XPath Filter 2.0, subtracting the signature
    root = etree.fromstring(signed)
    transform = root.find("ds:Signature/ds:SignedInfo/ds:Reference[@URI='']/ds:Transforms/ds:Transform", Q)
    transform.set("Algorithm", xades.XPATH_FILTER2)
    f2 = etree.SubElement(
        transform, f"{{{xades.XPATH_FILTER2}}}XPath", {"Filter": "subtract"}, nsmap={"dsig": DS}
    )
    f2.text = "//dsig:Signature"
    assert verify_xades(resign(root, seal))
    # anything else is refused, never ignored
    transform.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#base64")
    with pytest.raises(XadesVerificationError, match="nieobsługiwana transformacja"):
        verify_xades(resign(root, seal))


def test_enveloping_signature_is_accepted_and_detached_refused(seal):
    key = seal.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    from signxml import SignatureConstructionMethod

    signer = XAdESSigner(
        method=SignatureConstructionMethod.enveloping, c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1
    )
    signed = etree.tostring(signer.sign(etree.fromstring(request_xml()), key=key, cert=pem(seal)))
    assert etree.fromstring(signed).tag == f"{{{DS}}}Signature"
    verified = verify_xades(signed)
    assert parse_auth_token_request(verified.root).challenge == CHALLENGE
    with pytest.raises(XadesVerificationError):
        verify_xades(signed.replace(NIP.encode(), b"1111111111"))
    detached = XAdESSigner(method=SignatureConstructionMethod.detached)
    sig = detached.sign(etree.fromstring(request_xml()), key=key, cert=pem(seal))
    holder = etree.fromstring(request_xml())
    holder.append(sig)  # a detached signature next to the data it does not cover
    with pytest.raises(XadesVerificationError):
        verify_xades(etree.tostring(holder))


def test_duplicate_ids_are_refused(seal):
    root = etree.fromstring(sign_xades(request_xml(), seal))
    props_id = root.find(".//{http://uri.etsi.org/01903/v1.3.2#}SignedProperties").get("Id")
    decoy = etree.SubElement(root.find("ds:Signature/ds:Object", Q), "Decoy", Id=props_id)
    decoy.text = "x"
    with pytest.raises(XadesVerificationError, match="więcej niż raz"):
        verify_xades(etree.tostring(root))


@pytest.mark.parametrize("subject_type", ["certificateSubject", "certificateFingerprint"])
@pytest.mark.parametrize("algorithm", [xades.C14N11_COMMENTS, xades.C14N, xades.EXC_C14N_COMMENTS])
def test_the_simulator_authenticates_with_these_signatures(simulator, subject_type, algorithm):
    seal = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=COMPANY, key_type="EC")
    if subject_type == "certificateFingerprint":  # the fingerprint needs a grant in the context
        post_testdata(
            simulator,
            "/permissions",
            {
                "contextIdentifier": {"type": "Nip", "value": COMPANY},
                "authorizedIdentifier": {"type": "Fingerprint", "value": seal.fingerprint_sha256_hex},
                "permissions": [{"permissionType": "InvoiceRead", "description": "Odczyt faktur"}],
            },
        )
    client = new_client(simulator)
    result = authenticate_with_certificate(
        client,
        seal,
        ContextIdentifier.nip(COMPANY),
        subject_identifier_type=subject_type,
        poll_interval=0.02,
        signature_options={"canonicalization": algorithm, "reference_key_info": True},
    )
    assert result.method["category"] == "XadesSignature"
    assert client.context_limits()
