"""Certificates for KSeF authentication: loading (PEM, DER, PKCS#12), kind detection, test certificates.

KSeF reads the subject of an authentication certificate (KSEF_API_NOTES §4):

* company seal: ``organizationIdentifier`` (OID 2.5.4.97) like ``VATPL-5265877635``;
* personal certificate: ``serialNumber`` (OID 2.5.4.5) like ``TINPL-5265877635`` (a NIP) or
  ``PNOPL-44051401359`` (a PESEL; such a person authenticates in a company's NIP context when granted
  permissions there);
* anything else can only be identified by its SHA-256 fingerprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")
_SEAL = re.compile(r"(VATPL).*?(\d{10})")
_PERSON_NIP = re.compile(r"(TINPL|NIP).*?(\d{10})")
_PERSON_PESEL = re.compile(r"(PNOPL|PESEL).*?(\d{11})")
MIN_RSA_BITS = 2048


class CredentialError(ValueError):
    """The certificate or key cannot be used; the message never contains passwords or key material.

    ``code`` names the problem (stable, for programs and translations) and ``params`` its values; the message
    is the English text."""

    def __init__(self, message: str, code: str = "invalid", **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class CertificateKind(str, Enum):
    COMPANY_SEAL = "company_seal"
    PERSONAL_NIP = "personal_nip"
    PERSONAL_PESEL = "personal_pesel"
    OTHER = "other"


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


@dataclass(frozen=True, repr=False)
class Credential:
    """A certificate with its private key. ``repr`` shows the subject, never the key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def __repr__(self) -> str:
        return f"Credential({self.kind.value}, {self.subject_text!r}, serial {self.serial_hex})"

    @property
    def kind(self) -> CertificateKind:
        org = _attr(self.certificate, ORGANIZATION_IDENTIFIER) or ""
        serial = _attr(self.certificate, NameOID.SERIAL_NUMBER) or ""
        if _SEAL.search(org):
            return CertificateKind.COMPANY_SEAL
        if _PERSON_PESEL.search(serial):
            return CertificateKind.PERSONAL_PESEL
        if _PERSON_NIP.search(serial):
            return CertificateKind.PERSONAL_NIP
        return CertificateKind.OTHER

    @property
    def subject_nip(self) -> str | None:
        m = _SEAL.search(_attr(self.certificate, ORGANIZATION_IDENTIFIER) or "") or _PERSON_NIP.search(
            _attr(self.certificate, NameOID.SERIAL_NUMBER) or ""
        )
        return m.group(2) if m else None

    @property
    def subject_pesel(self) -> str | None:
        m = _PERSON_PESEL.search(_attr(self.certificate, NameOID.SERIAL_NUMBER) or "")
        return m.group(2) if m else None

    @property
    def fingerprint_sha256_hex(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex().upper()

    @property
    def serial_hex(self) -> str:
        """Serial number as uppercase hex of whole bytes (as in KSeF's QR links)."""
        n = self.certificate.serial_number
        return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big").hex().upper()

    @property
    def subject_text(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def issuer_text(self) -> str:
        return self.certificate.issuer.rfc4514_string()

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    @property
    def key_type(self) -> str:
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return f"RSA-{key.key_size}"
        return f"EC-{key.curve.name}"

    def days_until_expiry(self, now: datetime | None = None) -> int:
        return (self.not_after - (now or datetime.now(timezone.utc))).days


def _password(password: str | bytes | None) -> bytes | None:
    if password is None or password == "":
        return None
    return password.encode("utf-8") if isinstance(password, str) else password


def _check_key(key: object) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise CredentialError(
                f"the RSA key has {key.key_size} bits; KSeF needs at least {MIN_RSA_BITS}",
                "rsa-key-size",
                bits=key.key_size,
                minimum=MIN_RSA_BITS,
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size < 256:
            raise CredentialError(
                "the elliptic-curve key is weaker than P-256; KSeF needs P-256 or stronger", "ec-key-size"
            )
        return key
    raise CredentialError("the private key is neither RSA nor elliptic-curve (ECDSA)", "key-type")


def _load_key(data: bytes, password: bytes | None) -> PrivateKey:
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key)
    wrong_password = False
    for loader in loaders:
        try:
            key = loader(data, password=password)
        except TypeError:
            wrong_password = True  # encrypted key without password, or password for a plain key
        except ValueError as exc:
            if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
                wrong_password = True
        else:
            return _check_key(key)
    if wrong_password:
        raise CredentialError(
            "the private key cannot be decrypted: wrong or missing password", "key-password"
        )
    raise CredentialError("no private key found (expected PEM or DER)", "no-key")


def _load_certificate(data: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        pass
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise CredentialError("no certificate found (expected PEM or DER)", "no-certificate") from None


def load_credential(
    data: bytes, password: str | bytes | None = None, *, key_data: bytes | None = None
) -> Credential:
    """Load a certificate and its private key from PKCS#12, one PEM blob, or certificate + ``key_data``."""
    if not data:
        raise CredentialError("the certificate file is empty", "empty")
    pwd = _password(password)
    if b"-----BEGIN" not in data and key_data is None:
        try:
            key, cert, _extra = pkcs12.load_key_and_certificates(data, pwd)
        except ValueError:
            raise CredentialError(
                "the file is not a readable PKCS#12 (.p12/.pfx) certificate, or the password is wrong",
                "pkcs12-unreadable",
            ) from None
        if key is None or cert is None:
            raise CredentialError(
                "the PKCS#12 file must contain both the certificate and its private key", "pkcs12-incomplete"
            )
        credential = Credential(cert, _check_key(key))
    else:
        cert = _load_certificate(data)
        source = key_data if key_data is not None else data
        if key_data is None and b"PRIVATE KEY-----" not in data:
            raise CredentialError("the PEM file holds no private key; add the key file", "pem-without-key")
        credential = Credential(cert, _load_key(_only_key_block(source), pwd))
    if not _matches(credential):
        raise CredentialError("the private key does not belong to the certificate", "key-mismatch")
    return credential


def _only_key_block(data: bytes) -> bytes:
    m = re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", data, re.S)
    return m.group(0) if m else data


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _matches(credential: Credential) -> bool:
    return _spki(credential.certificate.public_key()) == _spki(credential.private_key.public_key())


def generate_test_credential(
    kind: CertificateKind,
    *,
    nip: str | None = None,
    pesel: str | None = None,
    key_type: str = "RSA",
    common_name: str | None = None,
    valid_days: int = 365,
    offline: bool = False,
) -> Credential:
    """A self-signed certificate of the given kind, like the ones KSeF TEST accepts (for tests and demos).

    ``offline``: an Offline-type KSeF certificate (key usage Non-Repudiation only, signs KOD II) instead of
    one that authenticates (Digital Signature)."""
    key: PrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if key_type.upper() == "RSA"
        else ec.generate_private_key(ec.SECP256R1())
    )
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "PL")]
    if kind == CertificateKind.COMPANY_SEAL:
        if not nip:
            raise ValueError("a company seal needs the company's NIP")
        attrs += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name or f"Firma {nip}"),
            x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"VATPL-{nip}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"Pieczęć {nip}"),
        ]
    elif kind in (CertificateKind.PERSONAL_NIP, CertificateKind.PERSONAL_PESEL):
        ident = f"TINPL-{nip}" if kind == CertificateKind.PERSONAL_NIP else f"PNOPL-{pesel}"
        if (kind == CertificateKind.PERSONAL_NIP and not nip) or (
            kind == CertificateKind.PERSONAL_PESEL and not pesel
        ):
            raise ValueError("a personal certificate needs the person's NIP or PESEL")
        attrs += [
            x509.NameAttribute(NameOID.GIVEN_NAME, "Jan"),
            x509.NameAttribute(NameOID.SURNAME, "Kowalski"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, ident),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name or "Jan Kowalski"),
        ]
    else:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name or "Test certificate"))
    name = x509.Name(attrs)
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(
            now - timedelta(minutes=5) + timedelta(days=min(0, valid_days - 1))
        )  # negative: expired
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(
            x509.KeyUsage(not offline, True, False, False, False, False, False, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def credential_to_pkcs12(credential: Credential, password: str | bytes | None) -> bytes:
    pwd = _password(password)
    enc = serialization.BestAvailableEncryption(pwd) if pwd else serialization.NoEncryption()
    return pkcs12.serialize_key_and_certificates(
        b"ksef", credential.private_key, credential.certificate, None, enc
    )


def credential_to_pem(credential: Credential, password: str | bytes | None = None) -> bytes:
    pwd = _password(password)
    enc = serialization.BestAvailableEncryption(pwd) if pwd else serialization.NoEncryption()
    key = credential.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
    )
    return credential.certificate.public_bytes(serialization.Encoding.PEM) + key
