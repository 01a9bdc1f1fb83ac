"""The simulator's own public-key certificates, one per usage, as ``GET /security/public-key-certificates``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ..crypto import USAGE_KSEF_TOKEN, USAGE_SYMMETRIC_KEY, b64, public_key_id, rsa_oaep_decrypt, sha256_b64
from .server import iso


@dataclass
class SimulatorKey:
    usage: str
    private_key_pem: bytes
    certificate_der: bytes

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    @property
    def public_key_id(self) -> str:
        pub = self.certificate.public_key()
        assert isinstance(pub, rsa.RSAPublicKey)
        return public_key_id(pub)

    def decrypt(self, data: bytes) -> bytes:
        return rsa_oaep_decrypt(self.private_key, data)

    def to_json(self) -> dict:
        cert = self.certificate
        return {
            "certificate": b64(self.certificate_der),
            "certificateId": sha256_b64(self.certificate_der),
            "publicKeyId": self.public_key_id,
            "validFrom": iso(cert.not_valid_before_utc),
            "validTo": iso(cert.not_valid_after_utc),
            "usage": [self.usage],
        }


@dataclass
class SimulatorKeys:
    keys: list[SimulatorKey]

    @classmethod
    def generate(cls, now: datetime) -> SimulatorKeys:
        return cls([_make_key(USAGE_KSEF_TOKEN, now), _make_key(USAGE_SYMMETRIC_KEY, now)])

    def for_usage(self, usage: str) -> SimulatorKey:
        return next(k for k in self.keys if k.usage == usage)

    def by_public_key_id(self, key_id: str | None, usage: str) -> SimulatorKey | None:
        """The key named by ``publicKeyId`` (None: the current key for ``usage``); None when unknown."""
        if not key_id:
            return self.for_usage(usage)
        for k in self.keys:
            if k.public_key_id == key_id and k.usage == usage:
                return k
        return None

    def rotate(self, usage: str, now: datetime) -> SimulatorKey:
        """Withdraw the key for ``usage`` and publish a new one (clients then get 21470 and must re-fetch)."""
        new = _make_key(usage, now)
        self.keys = [k for k in self.keys if k.usage != usage] + [new]
        return new


def self_signed(
    key: Any, common_name: str, organization: str, now: datetime, days: int, *, ca: bool = False
) -> bytes:
    """A self-signed certificate (DER) of the simulator: its public keys and its KSeF-certificate CA."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "PL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def private_pem(key: Any) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _make_key(usage: str, now: datetime) -> SimulatorKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = self_signed(key, f"KSeF simulator {usage}", "KSeF simulator (not KSeF)", now, 730)
    return SimulatorKey(usage, private_pem(key), der)
