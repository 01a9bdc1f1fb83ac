"""XAdES signatures for KSeF authentication (``POST /auth/xades-signature``).

:func:`build_auth_token_request` builds the ``AuthTokenRequest`` document (schema ``auth/schemat_auth_v2-1.xsd``,
shipped in the package), :func:`sign_xades` signs it with an enveloped XAdES-BES signature, and
:func:`verify_xades` checks one (used by the local simulator).

The signature follows XMLDSig with exclusive canonicalisation: two references, the whole document (``URI=""``
with the enveloped-signature transform) and ``xades:SignedProperties`` (signing time and the SHA-256 digest
and issuer/serial of the signing certificate); the certificate travels in ``KeyInfo``. RSA keys sign with
RSA-SHA256 (PKCS#1 v1.5), EC keys with ECDSA-SHA256 whose value is ``R || S`` as XMLDSig requires.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import xmlschema
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from lxml import etree

from .certificates import Credential
from .xmlsafe import UnsafeXmlError, parse_bytes

AUTH_NS = "http://ksef.mf.gov.pl/auth/token/2.1"
AUTH_NAMESPACES = ("http://ksef.mf.gov.pl/auth/token/2.0", AUTH_NS)
DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
SCHEMA_DIR = Path(__file__).parent / "schemas" / "auth"
CONTEXT_TYPES = ("Nip", "InternalId", "NipVatUe", "PeppolId")


class XadesVerificationError(ValueError):
    """The signed document is not acceptable. ``code`` is KSeF's exception code for it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VerifiedSignature:
    certificate: x509.Certificate
    root: Any  # the signed document's root element (signature removed)
    signing_time: datetime | None


@dataclass(frozen=True)
class AuthTokenRequestData:
    challenge: str
    context_type: str
    context_value: str
    subject_identifier_type: str
    allowed_ips: dict | None


@lru_cache(maxsize=1)
def auth_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA_DIR / "schemat_auth_v2-1.xsd"), allow="local")


@lru_cache(maxsize=1)
def _nip_vat_ue_pattern() -> re.Pattern[str]:
    """TNipVatUE's pattern with its trailing ``$`` read as an end anchor, as KSeF's own validator does."""
    source = (SCHEMA_DIR / "schemat_auth_v2-1.xsd").read_text(encoding="utf-8")
    start = source.index('name="TNipVatUE"')
    begin = source.index('pattern value="', start) + len('pattern value="')
    return re.compile(source[begin : source.index('"', begin)])


def _nip_vat_ue_quirk(error: Any) -> bool:
    """The official TNipVatUE pattern ends with ``$``, a literal character in XSD regular expressions, so a
    strict validator rejects every NIP-VAT UE identifier. Such an error is ignored when the value matches the
    pattern as intended (``$`` as the end)."""
    elem = getattr(error, "elem", None)
    if elem is None or not str(getattr(elem, "tag", "")).endswith("}NipVatUe"):
        return False
    return bool(_nip_vat_ue_pattern().fullmatch((elem.text or "").strip()))


def build_auth_token_request(
    challenge: str,
    context_type: str,
    context_value: str,
    subject_identifier_type: str = "certificateSubject",
    allowed_ips: dict | None = None,
) -> bytes:
    """The ``AuthTokenRequest`` XML (namespace 2.1), validated against the official schema."""
    if context_type not in CONTEXT_TYPES:
        raise ValueError(f"context type must be one of {', '.join(CONTEXT_TYPES)}")
    root = etree.Element(f"{{{AUTH_NS}}}AuthTokenRequest", nsmap={None: AUTH_NS})
    etree.SubElement(root, f"{{{AUTH_NS}}}Challenge").text = challenge
    ctx = etree.SubElement(root, f"{{{AUTH_NS}}}ContextIdentifier")
    etree.SubElement(ctx, f"{{{AUTH_NS}}}{context_type}").text = context_value
    etree.SubElement(root, f"{{{AUTH_NS}}}SubjectIdentifierType").text = subject_identifier_type
    if allowed_ips:
        policy = etree.SubElement(root, f"{{{AUTH_NS}}}AuthorizationPolicy")
        ips = etree.SubElement(policy, f"{{{AUTH_NS}}}AllowedIps")
        for key, tag in (("ip4Addresses", "Ip4Address"), ("ip4Ranges", "Ip4Range"), ("ip4Masks", "Ip4Mask")):
            for value in allowed_ips.get(key) or ():
                etree.SubElement(ips, f"{{{AUTH_NS}}}{tag}").text = value
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    errors = [str(e.reason or e) for e in auth_schema().iter_errors(data) if not _nip_vat_ue_quirk(e)]
    if errors:
        raise ValueError("AuthTokenRequest does not match the schema: " + "; ".join(errors[:3]))
    return data


def _c14n(element: Any) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _sub(parent: Any, ns: str, tag: str, text: str | None = None, **attrib: str) -> Any:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", attrib)
    if text is not None:
        el.text = text
    return el


def _reference(
    signed_info: Any, uri: str, transforms: list[str], digest: str, ref_type: str | None = None
) -> None:
    attrs = {"URI": uri}
    if ref_type:
        attrs["Type"] = ref_type
    ref = _sub(signed_info, DS, "Reference", **attrs)
    tr = _sub(ref, DS, "Transforms")
    for algorithm in transforms:
        _sub(tr, DS, "Transform", Algorithm=algorithm)
    _sub(ref, DS, "DigestMethod", Algorithm=SHA256)
    _sub(ref, DS, "DigestValue", digest)


def sign_xades(xml: bytes, credential: Credential, *, signing_time: datetime | None = None) -> bytes:
    """Sign ``xml`` with an enveloped XAdES-BES signature (appended as the root's last child)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
    root = etree.fromstring(xml, parser)
    cert = credential.certificate
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    key = credential.private_key
    sig_id = f"Signature-{uuid.uuid4().hex}"
    props_id = f"SignedProperties-{uuid.uuid4().hex}"
    document_digest = _digest(_c14n(root))  # computed before the signature is added (= enveloped transform)

    signature = etree.SubElement(root, f"{{{DS}}}Signature", {"Id": sig_id}, nsmap={"ds": DS})
    signed_info = _sub(signature, DS, "SignedInfo")
    _sub(signed_info, DS, "CanonicalizationMethod", Algorithm=EXC_C14N)
    method = RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ECDSA_SHA256
    _sub(signed_info, DS, "SignatureMethod", Algorithm=method)
    signature_value = _sub(signature, DS, "SignatureValue")
    key_info = _sub(signature, DS, "KeyInfo")
    x509_data = _sub(key_info, DS, "X509Data")
    _sub(x509_data, DS, "X509Certificate", base64.b64encode(cert_der).decode())
    obj = _sub(signature, DS, "Object")
    qp = etree.SubElement(
        obj, f"{{{XADES}}}QualifyingProperties", {"Target": f"#{sig_id}"}, nsmap={"xades": XADES}
    )
    sp = _sub(qp, XADES, "SignedProperties", Id=props_id)
    ssp = _sub(sp, XADES, "SignedSignatureProperties")
    when = (signing_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    _sub(ssp, XADES, "SigningTime", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    sc = _sub(ssp, XADES, "SigningCertificate")
    xc = _sub(sc, XADES, "Cert")
    cd = _sub(xc, XADES, "CertDigest")
    _sub(cd, DS, "DigestMethod", Algorithm=SHA256)
    _sub(cd, DS, "DigestValue", _digest(cert_der))
    isr = _sub(xc, XADES, "IssuerSerial")
    _sub(isr, DS, "X509IssuerName", cert.issuer.rfc4514_string())
    _sub(isr, DS, "X509SerialNumber", str(cert.serial_number))

    _reference(signed_info, "", [ENVELOPED, EXC_C14N], document_digest)
    _reference(signed_info, f"#{props_id}", [EXC_C14N], _digest(_c14n(sp)), SIGNED_PROPERTIES_TYPE)
    to_sign = _c14n(signed_info)
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    signature_value.text = base64.b64encode(raw).decode()
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


# -- verification ---------------------------------------------------------------------------------------


def _parse_safely(xml: bytes) -> Any:
    try:
        return parse_bytes(xml)
    except UnsafeXmlError as exc:
        if "DOCTYPE" in exc.reason:
            raise XadesVerificationError(
                9101, "Nieprawidłowy dokument: deklaracje DOCTYPE/ENTITY są niedozwolone."
            ) from None
        raise XadesVerificationError(21001, f"Nieczytelna treść: {exc}") from None


def _one(parent: Any, path: str, what: str) -> Any:
    found = parent.findall(path, {"ds": DS, "xades": XADES})
    if len(found) != 1:
        raise XadesVerificationError(9105, f"Nieprawidłowy podpis: {what}.")
    return found[0]


def verify_xades(xml: bytes) -> VerifiedSignature:
    """Verify an enveloped XAdES signature over the whole document; raise XadesVerificationError.

    Accepted: exactly one ``ds:Signature``, a direct child of the root, whose references are exactly the
    whole document (``URI=""``, enveloped) and its own ``SignedProperties``; the ``SigningCertificate``
    digest must match the certificate in ``KeyInfo``. Anything else (detached signatures, references to
    parts of the document, several signatures) is refused, which rules out signature-wrapping.
    """
    root = _parse_safely(xml)
    signatures = root.findall(f".//{{{DS}}}Signature")
    if not signatures:
        raise XadesVerificationError(9102, "Brak podpisu.")
    if len(signatures) > 1:
        raise XadesVerificationError(9103, "Przekroczona liczba dozwolonych podpisów.")
    signature = signatures[0]
    if signature.getparent() is not root:
        raise XadesVerificationError(9105, "Nieprawidłowy podpis: wymagany podpis otaczany (enveloped).")
    signed_info = _one(signature, "ds:SignedInfo", "brak SignedInfo")
    c14n_method = _one(signed_info, "ds:CanonicalizationMethod", "brak CanonicalizationMethod").get(
        "Algorithm"
    )
    if c14n_method != EXC_C14N:
        raise XadesVerificationError(9105, "Nieprawidłowy podpis: nieobsługiwana kanonikalizacja.")
    method = _one(signed_info, "ds:SignatureMethod", "brak SignatureMethod").get("Algorithm")
    cert_text = _one(signature, "ds:KeyInfo/ds:X509Data/ds:X509Certificate", "brak certyfikatu").text or ""
    try:
        cert_der = base64.b64decode("".join(cert_text.split()), validate=True)
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise XadesVerificationError(21115, "Nieprawidłowy certyfikat.") from None
    props = signature.findall(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties", {"ds": DS, "xades": XADES}
    )
    if len(props) != 1 or not props[0].get("Id"):
        raise XadesVerificationError(9105, "Nieprawidłowy podpis: brak SignedProperties (XAdES).")
    signed_props = props[0]

    references = signed_info.findall(f"{{{DS}}}Reference")
    if len(references) != 2:
        raise XadesVerificationError(9105, "Nieprawidłowy podpis: oczekiwano dwóch referencji.")
    seen = set()
    for ref in references:
        uri = ref.get("URI")
        transforms = [t.get("Algorithm") for t in ref.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
        if _one(ref, "ds:DigestMethod", "brak DigestMethod").get("Algorithm") != SHA256:
            raise XadesVerificationError(9105, "Nieprawidłowy podpis: wymagany skrót SHA-256.")
        expected = (_one(ref, "ds:DigestValue", "brak DigestValue").text or "").strip()
        if uri == "":
            if transforms != [ENVELOPED, EXC_C14N] and transforms != [ENVELOPED]:
                raise XadesVerificationError(9105, "Nieprawidłowy podpis: nieobsługiwane transformacje.")
            parent, index = signature.getparent(), signature.getparent().index(signature)
            parent.remove(signature)
            try:
                actual = _digest(_c14n(root))
            finally:
                parent.insert(index, signature)
            seen.add("document")
        elif uri == f"#{signed_props.get('Id')}" and ref.get("Type") == SIGNED_PROPERTIES_TYPE:
            if transforms not in ([EXC_C14N], []):
                raise XadesVerificationError(9105, "Nieprawidłowy podpis: nieobsługiwane transformacje.")
            actual = _digest(_c14n(signed_props))
            seen.add("properties")
        else:
            raise XadesVerificationError(9105, f"Nieprawidłowy podpis: niedozwolona referencja {uri!r}.")
        if actual != expected:
            raise XadesVerificationError(9105, "Nieprawidłowy podpis: skrót nie zgadza się z treścią.")
    if seen != {"document", "properties"}:
        raise XadesVerificationError(9105, "Nieprawidłowy podpis: podpis nie obejmuje całego dokumentu.")

    value = base64.b64decode(
        "".join((_one(signature, "ds:SignatureValue", "brak SignatureValue").text or "").split())
    )
    public_key = cert.public_key()
    data = _c14n(signed_info)
    try:
        if method == RSA_SHA256 and isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise XadesVerificationError(
                    21115, "Nieprawidłowy certyfikat: klucz RSA krótszy niż 2048 bitów."
                )
            public_key.verify(value, data, padding.PKCS1v15(), hashes.SHA256())
        elif method == ECDSA_SHA256 and isinstance(public_key, ec.EllipticCurvePublicKey):
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise XadesVerificationError(
                    9105, "Nieprawidłowy podpis: wartość ECDSA musi mieć postać R||S."
                )
            der = encode_dss_signature(
                int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            )
            public_key.verify(der, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise XadesVerificationError(
                9105, "Nieprawidłowy podpis: algorytm nie pasuje do klucza certyfikatu."
            )
    except InvalidSignature:
        raise XadesVerificationError(9105, "Nieprawidłowy podpis.") from None

    cert_digest = signed_props.find(
        "xades:SignedSignatureProperties/xades:SigningCertificate/xades:Cert/xades:CertDigest/ds:DigestValue",
        {"ds": DS, "xades": XADES},
    )
    if cert_digest is None:
        cert_digest = signed_props.find(
            "xades:SignedSignatureProperties/xades:SigningCertificateV2/xades:Cert/xades:CertDigest/ds:DigestValue",
            {"ds": DS, "xades": XADES},
        )
    if cert_digest is None or (cert_digest.text or "").strip() != _digest(cert_der):
        raise XadesVerificationError(
            9105, "Nieprawidłowy podpis: SigningCertificate nie wskazuje certyfikatu."
        )
    time_el = signed_props.find("xades:SignedSignatureProperties/xades:SigningTime", {"xades": XADES})
    signing_time = None
    if time_el is not None and time_el.text:
        try:
            signing_time = datetime.fromisoformat(time_el.text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise XadesVerificationError(9105, "Nieprawidłowy podpis: SigningTime.") from None
    root.remove(signature)
    return VerifiedSignature(cert, root, signing_time)


def parse_auth_token_request(root: Any) -> AuthTokenRequestData:
    """Read a verified ``AuthTokenRequest`` (either supported namespace); ValueError when malformed."""
    ns = etree.QName(root).namespace
    if ns not in AUTH_NAMESPACES or etree.QName(root).localname != "AuthTokenRequest":
        raise ValueError("not an AuthTokenRequest")
    if ns == AUTH_NS:
        errors = [
            str(e.reason or e)
            for e in auth_schema().iter_errors(etree.tostring(root))
            if not _nip_vat_ue_quirk(e)
        ]
        if errors:
            raise ValueError("; ".join(errors[:3]))
    q = {"a": ns}
    challenge = root.findtext("a:Challenge", namespaces=q)
    ctx = root.find("a:ContextIdentifier", q)
    subject = root.findtext("a:SubjectIdentifierType", namespaces=q)
    if not challenge or ctx is None or len(ctx) != 1 or not subject:
        raise ValueError("AuthTokenRequest lacks Challenge, ContextIdentifier or SubjectIdentifierType")
    allowed = None
    ips = root.find("a:AuthorizationPolicy/a:AllowedIps", q)
    if ips is not None:
        allowed = {
            "ip4Addresses": [e.text for e in ips.findall("a:Ip4Address", q)],
            "ip4Ranges": [e.text for e in ips.findall("a:Ip4Range", q)],
            "ip4Masks": [e.text for e in ips.findall("a:Ip4Mask", q)],
        }
    return AuthTokenRequestData(
        challenge.strip(),
        etree.QName(ctx[0]).localname,
        (ctx[0].text or "").strip(),
        subject.strip(),
        allowed,
    )
