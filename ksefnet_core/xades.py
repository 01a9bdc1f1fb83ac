"""XAdES signatures for KSeF authentication (``POST /auth/xades-signature``).

:func:`build_auth_token_request` builds the ``AuthTokenRequest`` document (schema ``auth/schemat_auth_v2-1.xsd``,
shipped in the package), :func:`sign_xades` signs it with an enveloped XAdES-BES signature, and
:func:`verify_xades` checks one (used by the local simulator) as ``auth/podpis-xades.md`` describes.

Signing: two references, the whole document (``URI=""`` with the enveloped-signature transform) and
``xades:SignedProperties`` (signing time and the digest and issuer/serial of the signing certificate), and on
request a third one to ``KeyInfo``; the certificate travels in ``KeyInfo``. The canonicalisation (default:
exclusive C14N) and the digest can be chosen; RSA keys sign with RSA-SHA256 (PKCS#1 v1.5) or, on request,
RSASSA-PSS; EC keys with ECDSA whose value is ``R || S`` as XMLDSig requires.

Verification accepts what ``podpis-xades.md`` lists:

* enveloped signatures (a child of the signed root) and enveloping ones (the ``ds:Signature`` is the root and
  the signed document is the content of a referenced ``ds:Object``); detached ones are refused;
* canonicalisation C14N 1.0, C14N 1.1 and exclusive C14N, each with or without comments, for ``SignedInfo``
  and as reference transforms (exclusive with an ``InclusiveNamespaces`` prefix list too); C14N 1.1 differs
  from 1.0 only in how ``xml:id``/``xml:base`` of ancestors of a signed subtree are inherited, which is
  treated as 1.0 (KSeF's documents carry neither); as XMLDSig says, a same-document reference (``URI=""``,
  ``#id``) never includes comments, so "with comments" matters for ``SignedInfo`` and ``#xpointer(...)`` only;
* transforms: enveloped-signature, XPath ``not(ancestor-or-self::ds:Signature)``, XPath Filter 2.0
  ``subtract`` and the canonicalisations (``base64`` and other filters are refused with 9105);
* any number of references (e.g. one to ``KeyInfo``) besides the required two, each checked;
* digests SHA-1, SHA-2 (256/384/512) and SHA-3 (256/384/512), for references and for the certificate digest;
* ``SignatureMethod`` RSA PKCS#1 v1.5 and RSASSA-PSS (RSA keys of 2048 bits or more), ECDSA (curves of 256
  bits or more, value ``R || S``), with SHA-1, SHA-2 or SHA-3 as listed;
* the signing certificate is the one of ``KeyInfo`` whose digest ``SigningCertificate``(``V2``) names.

Anything else, duplicate ``Id`` values, a reference that does not resolve, or a document that no reference
covers, is refused, which rules out signature wrapping.
"""

from __future__ import annotations

import base64
import copy
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
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_COMMENTS = C14N + "#WithComments"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
C14N11_COMMENTS = C14N11 + "#WithComments"
#: every canonicalisation KSeF accepts: algorithm -> (exclusive, with comments)
CANONICALIZATIONS = {
    C14N: (False, False),
    C14N_COMMENTS: (False, True),
    C14N11: (False, False),
    C14N11_COMMENTS: (False, True),
    EXC_C14N: (True, False),
    EXC_C14N_COMMENTS: (True, True),
}
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
#: digest algorithms of references and certificate digests -> hashlib name (podpis-xades.md)
DIGESTS = {
    SHA1: "sha1",
    SHA256: "sha256",
    SHA384: "sha384",
    SHA512: "sha512",
    "http://www.w3.org/2007/05/xmldsig-more#sha3-256": "sha3_256",
    "http://www.w3.org/2007/05/xmldsig-more#sha3-384": "sha3_384",
    "http://www.w3.org/2007/05/xmldsig-more#sha3-512": "sha3_512",
}
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_PSS_SHA256 = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_PSS = "http://www.w3.org/2007/05/xmldsig-more#"
#: SignatureMethod -> (family, hash) (podpis-xades.md)
SIGNATURE_METHODS: dict[str, tuple[str, str]] = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", "sha1"),
    _MORE + "rsa-sha256": ("rsa", "sha256"),
    _MORE + "rsa-sha384": ("rsa", "sha384"),
    _MORE + "rsa-sha512": ("rsa", "sha512"),
    _PSS + "sha1-rsa-MGF1": ("pss", "sha1"),
    _PSS + "sha256-rsa-MGF1": ("pss", "sha256"),
    _PSS + "sha384-rsa-MGF1": ("pss", "sha384"),
    _PSS + "sha512-rsa-MGF1": ("pss", "sha512"),
    _PSS + "sha3-256-rsa-MGF1": ("pss", "sha3_256"),
    _PSS + "sha3-384-rsa-MGF1": ("pss", "sha3_384"),
    _PSS + "sha3-512-rsa-MGF1": ("pss", "sha3_512"),
    _MORE + "ecdsa-sha1": ("ecdsa", "sha1"),
    _MORE + "ecdsa-sha256": ("ecdsa", "sha256"),
    _MORE + "ecdsa-sha384": ("ecdsa", "sha384"),
    _MORE + "ecdsa-sha512": ("ecdsa", "sha512"),
    "http://www.w3.org/2021/04/xmldsig-more#ecdsa-sha3-256": ("ecdsa", "sha3_256"),
    "http://www.w3.org/2021/04/xmldsig-more#ecdsa-sha3-384": ("ecdsa", "sha3_384"),
    "http://www.w3.org/2021/04/xmldsig-more#ecdsa-sha3-512": ("ecdsa", "sha3_512"),
}
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
SIGNED_PROPERTIES_TYPES = (SIGNED_PROPERTIES_TYPE, "http://uri.etsi.org/01903/v1.3.2#SignedProperties")
EXC_NS = EXC_C14N
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


def canonicalize(
    element: Any,
    algorithm: str = EXC_C14N,
    inclusive_prefixes: list[str] | None = None,
    *,
    comments: bool = True,
) -> bytes:
    """``element`` (with its subtree) canonicalised with ``algorithm`` (one of :data:`CANONICALIZATIONS`).

    ``comments=False`` drops comments whatever the algorithm says (same-document references)."""
    exclusive, with_comments = CANONICALIZATIONS[algorithm]
    out: bytes = etree.tostring(
        element,
        method="c14n",
        exclusive=exclusive,
        with_comments=with_comments and comments,
        inclusive_ns_prefixes=inclusive_prefixes if exclusive else None,
    )
    return out


def _c14n(element: Any) -> bytes:
    return canonicalize(element, EXC_C14N)


def _digest(data: bytes, algorithm: str = SHA256) -> str:
    return base64.b64encode(hashlib.new(DIGESTS[algorithm], data).digest()).decode()


def _sub(parent: Any, ns: str, tag: str, text: str | None = None, **attrib: str) -> Any:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", attrib)
    if text is not None:
        el.text = text
    return el


def _reference(
    signed_info: Any,
    uri: str,
    transforms: list[str],
    digest: str,
    ref_type: str | None = None,
    digest_method: str = SHA256,
) -> None:
    attrs = {"URI": uri}
    if ref_type:
        attrs["Type"] = ref_type
    ref = _sub(signed_info, DS, "Reference", **attrs)
    tr = _sub(ref, DS, "Transforms")
    for algorithm in transforms:
        _sub(tr, DS, "Transform", Algorithm=algorithm)
    _sub(ref, DS, "DigestMethod", Algorithm=digest_method)
    _sub(ref, DS, "DigestValue", digest)


def _signature_method(key: Any, wanted: str | None) -> str:
    if wanted is None:
        return RSA_SHA256 if isinstance(key, rsa.RSAPrivateKey) else ECDSA_SHA256
    family = SIGNATURE_METHODS.get(wanted, ("?", ""))[0]
    if (family in ("rsa", "pss")) != isinstance(key, rsa.RSAPrivateKey) or family == "?":
        raise ValueError(f"signature method {wanted} does not suit the {type(key).__name__}")
    return wanted


def _sign_raw(key: Any, method: str, data: bytes) -> bytes:
    family, hash_name = SIGNATURE_METHODS[method]
    algorithm = _HASHES[hash_name]()
    if family == "rsa":
        return key.sign(data, padding.PKCS1v15(), algorithm)  # type: ignore[no-any-return]
    if family == "pss":
        pss = padding.PSS(mgf=padding.MGF1(_HASHES[hash_name]()), salt_length=algorithm.digest_size)
        return key.sign(data, pss, algorithm)  # type: ignore[no-any-return]
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign_xades(
    xml: bytes,
    credential: Credential,
    *,
    signing_time: datetime | None = None,
    canonicalization: str = EXC_C14N,
    digest_method: str = SHA256,
    signature_method: str | None = None,
    reference_key_info: bool = False,
) -> bytes:
    """Sign ``xml`` with an enveloped XAdES-BES signature (appended as the root's last child).

    ``canonicalization``: any of :data:`CANONICALIZATIONS` (for ``SignedInfo`` and the references);
    ``digest_method``: any of :data:`DIGESTS`; ``signature_method``: a :data:`SIGNATURE_METHODS` URI suiting
    the key (default RSA-SHA256 or ECDSA-SHA256); ``reference_key_info``: sign ``KeyInfo`` too (a third
    reference).
    """
    if canonicalization not in CANONICALIZATIONS or digest_method not in DIGESTS:
        raise ValueError("unknown canonicalisation or digest algorithm")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
    root = etree.fromstring(xml, parser)
    cert = credential.certificate
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    key = credential.private_key
    method = _signature_method(key, signature_method)
    sig_id = f"Signature-{uuid.uuid4().hex}"
    props_id = f"SignedProperties-{uuid.uuid4().hex}"
    key_info_id = f"KeyInfo-{uuid.uuid4().hex}"

    def c14n(element: Any) -> bytes:  # a same-document reference: never with comments (XMLDSig 4.4.3.3)
        return canonicalize(element, canonicalization, comments=False)

    document_digest = _digest(
        c14n(root), digest_method
    )  # before the signature exists (= enveloped transform)

    signature = etree.SubElement(root, f"{{{DS}}}Signature", {"Id": sig_id}, nsmap={"ds": DS})
    signed_info = _sub(signature, DS, "SignedInfo")
    _sub(signed_info, DS, "CanonicalizationMethod", Algorithm=canonicalization)
    _sub(signed_info, DS, "SignatureMethod", Algorithm=method)
    signature_value = _sub(signature, DS, "SignatureValue")
    key_info = _sub(signature, DS, "KeyInfo", **({"Id": key_info_id} if reference_key_info else {}))
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
    _sub(cd, DS, "DigestMethod", Algorithm=digest_method)
    _sub(cd, DS, "DigestValue", _digest(cert_der, digest_method))
    isr = _sub(xc, XADES, "IssuerSerial")
    _sub(isr, DS, "X509IssuerName", cert.issuer.rfc4514_string())
    _sub(isr, DS, "X509SerialNumber", str(cert.serial_number))

    _reference(signed_info, "", [ENVELOPED, canonicalization], document_digest, digest_method=digest_method)
    _reference(
        signed_info,
        f"#{props_id}",
        [canonicalization],
        _digest(c14n(sp), digest_method),
        SIGNED_PROPERTIES_TYPE,
        digest_method,
    )
    if reference_key_info:
        _reference(
            signed_info,
            f"#{key_info_id}",
            [canonicalization],
            _digest(c14n(key_info), digest_method),
            None,
            digest_method,
        )
    signature_value.text = base64.b64encode(
        _sign_raw(key, method, canonicalize(signed_info, canonicalization))
    ).decode()
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


# -- verification ---------------------------------------------------------------------------------------

NS = {"ds": DS, "xades": XADES}


def _parse_safely(xml: bytes) -> Any:
    try:
        return parse_bytes(xml)
    except UnsafeXmlError as exc:
        if "DOCTYPE" in exc.reason:
            raise XadesVerificationError(
                9101, "Nieprawidłowy dokument: deklaracje DOCTYPE/ENTITY są niedozwolone."
            ) from None
        raise XadesVerificationError(21001, f"Nieczytelna treść: {exc}") from None


def _bad(what: str) -> XadesVerificationError:
    return XadesVerificationError(9105, f"Nieprawidłowy podpis: {what}.")


def _one(parent: Any, path: str, what: str) -> Any:
    found = parent.findall(path, NS)
    if len(found) != 1:
        raise _bad(what)
    return found[0]


def _ids(root: Any) -> dict[str, Any]:
    """Elements by their ``Id``/``ID``/``id`` attribute; a value used twice is refused (signature wrapping)."""
    found: dict[str, Any] = {}
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        for name in ("Id", "ID", "id"):
            value = el.get(name)
            if value is None:
                continue
            if value in found and found[value] is not el:
                raise _bad(f"identyfikator {value!r} występuje więcej niż raz")
            found[value] = el
    return found


def _inclusive_prefixes(transform: Any) -> list[str] | None:
    inc = transform.find(f"{{{EXC_NS}}}InclusiveNamespaces")
    if inc is None:
        return None
    return [p if p != "#default" else "" for p in (inc.get("PrefixList") or "").split()]


def _removals(transform: Any, algorithm: str, target: Any, signature: Any) -> list[Any]:
    """The elements a filtering transform takes out of the reference's node set."""
    if algorithm == ENVELOPED:
        return [signature] if signature in target.iter() else []
    if algorithm == XPATH:
        xpath = transform.find(f"{{{DS}}}XPath")
        expression = " ".join(((xpath.text if xpath is not None else None) or "").split())
        prefixes = [p for p, uri in (xpath.nsmap if xpath is not None else {}).items() if uri == DS and p]
        if any(expression == f"not(ancestor-or-self::{p}:Signature)" for p in prefixes):
            return [signature] if signature in target.iter() else []
        raise _bad("obsługiwany jest tylko filtr XPath not(ancestor-or-self::ds:Signature)")
    if algorithm == XPATH_FILTER2:
        removed = []
        for xpath in transform.findall(f"{{{XPATH_FILTER2}}}XPath"):
            if xpath.get("Filter") != "subtract":
                raise _bad("w filtrze XPath 2.0 obsługiwane jest tylko odejmowanie (subtract)")
            try:
                nodes = target.getroottree().xpath(
                    xpath.text or "", namespaces={k: v for k, v in xpath.nsmap.items() if k}
                )
            except etree.XPathError:
                raise _bad("nieprawidłowe wyrażenie XPath") from None
            removed += [
                n for n in (nodes if isinstance(nodes, list) else []) if isinstance(n, etree._Element)
            ]
        return removed
    raise _bad(f"nieobsługiwana transformacja {algorithm}")


def _reference_digest(ref: Any, target: Any, signature: Any, same_document: bool) -> bytes:
    """The octets a reference's digest is over: ``target`` after the reference's transforms."""
    transforms = ref.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    removed: list[Any] = []
    c14n: tuple[str, list[str] | None] = (C14N, None)  # XMLDSig's default node-set -> octets conversion
    for transform in transforms:
        algorithm = transform.get("Algorithm") or ""
        if algorithm in CANONICALIZATIONS:
            c14n = (algorithm, _inclusive_prefixes(transform))
        else:
            removed += _removals(transform, algorithm, target, signature)
    places = []
    for el in removed:  # taken out for the canonicalisation, then put back
        parent = el.getparent()
        if parent is None:
            raise _bad("transformacja usuwa cały dokument")
        places.append((parent, parent.index(el), el))
    for parent, _index, el in places:
        parent.remove(el)
    try:
        return canonicalize(target, c14n[0], c14n[1], comments=not same_document)
    finally:
        for parent, index, el in reversed(places):
            parent.insert(index, el)


def _certificate(signature: Any, signed_props: Any) -> tuple[x509.Certificate, bytes]:
    texts = [e.text or "" for e in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)]
    if not texts:
        raise _bad("brak certyfikatu")
    certs = []
    for text in texts:
        try:
            der = base64.b64decode("".join(text.split()), validate=True)
            certs.append((x509.load_der_x509_certificate(der), der))
        except ValueError:
            raise XadesVerificationError(21115, "Nieprawidłowy certyfikat.") from None
    digest_el = None
    for path in ("SigningCertificate", "SigningCertificateV2"):
        digest_el = signed_props.find(
            f"xades:SignedSignatureProperties/xades:{path}/xades:Cert/xades:CertDigest", NS
        )
        if digest_el is not None:
            break
    if digest_el is None:
        raise _bad("SigningCertificate nie wskazuje certyfikatu")
    algorithm = _one(digest_el, "ds:DigestMethod", "brak DigestMethod").get("Algorithm") or ""
    if algorithm not in DIGESTS:
        raise _bad("nieobsługiwany algorytm skrótu certyfikatu")
    wanted = (_one(digest_el, "ds:DigestValue", "brak DigestValue").text or "").strip()
    for cert, der in certs:  # KeyInfo may carry the chain: the signing one is the one named
        if _digest(der, algorithm) == wanted:
            return cert, der
    raise _bad("SigningCertificate nie wskazuje certyfikatu")


def _verify_value(cert: x509.Certificate, method: str, value: bytes, data: bytes) -> None:
    family, hash_name = SIGNATURE_METHODS[method]
    algorithm = _HASHES[hash_name]()
    public_key = cert.public_key()
    try:
        if family in ("rsa", "pss") and isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise XadesVerificationError(
                    21115, "Nieprawidłowy certyfikat: klucz RSA krótszy niż 2048 bitów."
                )
            if family == "rsa":
                public_key.verify(value, data, padding.PKCS1v15(), algorithm)
            else:
                pss = padding.PSS(mgf=padding.MGF1(_HASHES[hash_name]()), salt_length=padding.PSS.AUTO)
                public_key.verify(value, data, pss, algorithm)
        elif family == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if public_key.curve.key_size < 256:
                raise XadesVerificationError(21115, "Nieprawidłowy certyfikat: krzywa krótsza niż 256 bitów.")
            size = (public_key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise _bad("wartość ECDSA musi mieć postać R||S")
            der = encode_dss_signature(
                int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
            )
            public_key.verify(der, data, ec.ECDSA(algorithm))
        else:
            raise _bad("algorytm nie pasuje do klucza certyfikatu")
    except InvalidSignature:
        raise XadesVerificationError(9105, "Nieprawidłowy podpis.") from None


def verify_xades(xml: bytes) -> VerifiedSignature:
    """Verify an enveloped or enveloping XAdES signature over the whole document; raise XadesVerificationError.

    What is accepted is described in the module's documentation. The returned ``root`` is the signed document
    without its signature (for an enveloping signature: the signed content of its ``ds:Object``).
    """
    root = _parse_safely(xml)
    signatures = ([root] if root.tag == f"{{{DS}}}Signature" else []) + root.findall(f".//{{{DS}}}Signature")
    if not signatures:
        raise XadesVerificationError(9102, "Brak podpisu.")
    if len(signatures) > 1:
        raise XadesVerificationError(9103, "Przekroczona liczba dozwolonych podpisów.")
    signature = signatures[0]
    enveloping = signature is root
    if not enveloping and signature.getparent() is not root:
        raise _bad("wymagany podpis otaczany (enveloped) lub otaczający (enveloping)")
    signed_info = _one(signature, "ds:SignedInfo", "brak SignedInfo")
    c14n_el = _one(signed_info, "ds:CanonicalizationMethod", "brak CanonicalizationMethod")
    c14n_method = c14n_el.get("Algorithm") or ""
    if c14n_method not in CANONICALIZATIONS:
        raise _bad("nieobsługiwana kanonikalizacja")
    method = _one(signed_info, "ds:SignatureMethod", "brak SignatureMethod").get("Algorithm") or ""
    if method not in SIGNATURE_METHODS:
        raise _bad("nieobsługiwany algorytm podpisu")
    props = signature.findall("ds:Object/xades:QualifyingProperties/xades:SignedProperties", NS)
    if len(props) != 1 or not props[0].get("Id"):
        raise _bad("brak SignedProperties (XAdES)")
    signed_props = props[0]
    cert, _cert_der = _certificate(signature, signed_props)
    ids = _ids(root)

    references = signed_info.findall(f"{{{DS}}}Reference")
    if len(references) < 2:
        raise _bad("oczekiwano co najmniej dwóch referencji")
    document = None
    has_properties = False
    for ref in references:
        uri = ref.get("URI")
        digest_method = _one(ref, "ds:DigestMethod", "brak DigestMethod").get("Algorithm") or ""
        if digest_method not in DIGESTS:
            raise _bad("nieobsługiwany algorytm skrótu")
        expected = (_one(ref, "ds:DigestValue", "brak DigestValue").text or "").strip()
        same_document = True
        if uri in ("", "#xpointer(/)") and not enveloping:
            target = root
            same_document = uri == ""
        elif uri and uri.startswith("#xpointer(id(") and uri.endswith("))"):
            target = ids.get(uri[13:-2].strip("'\""))
            same_document = False
        elif uri and uri.startswith("#") and len(uri) > 1:
            target = ids.get(uri[1:])
        else:
            raise _bad(f"niedozwolona referencja {uri!r} (podpis zewnętrzny)")
        if target is None:
            raise _bad(f"referencja {uri!r} nie wskazuje elementu dokumentu")
        if _digest(_reference_digest(ref, target, signature, same_document), digest_method) != expected:
            raise _bad("skrót nie zgadza się z treścią")
        if target is signed_props:
            if ref.get("Type") not in SIGNED_PROPERTIES_TYPES:
                raise _bad("referencja do SignedProperties bez typu SignedProperties")
            has_properties = True
        elif target is root and not enveloping:
            if signature in target.iter() and not _excludes_signature(ref):
                raise _bad("referencja do dokumentu obejmuje podpis")
            document = root
        elif enveloping:
            content = _enveloped_content(signature, target)
            if content is not None:
                document = content
    if document is None:
        raise _bad("podpis nie obejmuje całego dokumentu")
    if not has_properties:
        raise _bad("podpis nie obejmuje SignedProperties")

    value = base64.b64decode(
        "".join((_one(signature, "ds:SignatureValue", "brak SignatureValue").text or "").split())
    )
    prefixes = _inclusive_prefixes(c14n_el)
    _verify_value(cert, method, value, canonicalize(signed_info, c14n_method, prefixes))

    time_el = signed_props.find("xades:SignedSignatureProperties/xades:SigningTime", NS)
    signing_time = None
    if time_el is not None and time_el.text:
        try:
            signing_time = datetime.fromisoformat(time_el.text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _bad("SigningTime") from None
    if enveloping:
        signed = copy.deepcopy(document)
    else:
        root.remove(signature)
        signed = root
    return VerifiedSignature(cert, signed, signing_time)


def _enveloped_content(signature: Any, target: Any) -> Any:
    """The signed document of an enveloping signature, if ``target`` is it (or its ``ds:Object``)."""
    if target.tag == f"{{{DS}}}Object" and target.getparent() is signature:
        children = [c for c in target if isinstance(c.tag, str)]
        target = children[0] if len(children) == 1 else None
    if target is None or target.tag == f"{{{XADES}}}QualifyingProperties":
        return None
    parent = target.getparent()
    if parent is None or parent.tag != f"{{{DS}}}Object" or parent.getparent() is not signature:
        return None
    return target


def _excludes_signature(ref: Any) -> bool:
    algorithms = [t.get("Algorithm") for t in ref.findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
    return any(a in (ENVELOPED, XPATH, XPATH_FILTER2) for a in algorithms)


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
