"""Cryptographic primitives of KSeF API 2.0.

* SHA-256 in standard Base64 (hashes in requests) and Base64URL without padding (QR links);
* AES-256-CBC with PKCS#7 padding for invoices, batch parts and export packages (the IV travels separately in
  ``EncryptionInfo.initializationVector`` and is *not* prefixed to the ciphertext, as the official clients do);
* RSAES-OAEP with SHA-256 / MGF1-SHA-256 and an empty label for the KSeF token and the symmetric key;
* the KSeF public-key certificates (``GET /security/public-key-certificates``).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_BLOCK = 16
KEY_SIZE = 32

USAGE_KSEF_TOKEN = "KsefTokenEncryption"  # noqa: S105 - a key usage name, not a secret
USAGE_SYMMETRIC_KEY = "SymmetricKeyEncryption"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict standard Base64 decoding (raises ``ValueError`` on anything else)."""
    return base64.b64decode(text, validate=True)


def b64url_nopad(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sha256_b64(data: bytes) -> str:
    """SHA-256 as standard Base64 with padding (44 characters), the ``Sha256HashBase64`` type."""
    return b64(hashlib.sha256(data).digest())


def sha256_b64url(data: bytes) -> str:
    """SHA-256 as Base64URL without padding (43 characters), as used in QR links."""
    return b64url_nopad(hashlib.sha256(data).digest())


def encrypted_size(plain_size: int) -> int:
    """Size of AES-CBC/PKCS#7 ciphertext for ``plain_size`` bytes (always at least one byte of padding)."""
    return (plain_size // AES_BLOCK + 1) * AES_BLOCK


@dataclass(frozen=True, repr=False)
class SymmetricKey:
    """An AES-256 key and IV for one session or export. ``repr`` never shows the key."""

    key: bytes
    iv: bytes

    @classmethod
    def generate(cls) -> SymmetricKey:
        return cls(os.urandom(KEY_SIZE), os.urandom(AES_BLOCK))

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE or len(self.iv) != AES_BLOCK:
            raise ValueError("AES-256-CBC needs a 32-byte key and a 16-byte IV")

    def __repr__(self) -> str:
        return "SymmetricKey(<hidden>)"

    def encrypt(self, data: bytes) -> bytes:
        return aes_encrypt(data, self.key, self.iv)

    def decrypt(self, data: bytes) -> bytes:
        return aes_decrypt(data, self.key, self.iv)

    def encryption_info(self, cert: PublicKeyCertificate) -> dict:
        """The ``EncryptionInfo`` object: the key wrapped with RSA-OAEP under ``cert``, the IV, the key id."""
        return {
            "encryptedSymmetricKey": b64(rsa_oaep_encrypt(cert.public_key, self.key)),
            "initializationVector": b64(self.iv),
            "publicKeyId": cert.public_key_id,
        }


def aes_encrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()


def aes_decrypt(data: bytes, key: bytes, iv: bytes) -> bytes:
    """Decrypt AES-256-CBC/PKCS#7; raises ``ValueError`` on a wrong length or padding."""
    if not data or len(data) % AES_BLOCK:
        raise ValueError("ciphertext length is not a positive multiple of 16")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(dec.update(data) + dec.finalize()) + unpadder.finalize()


def aes_encrypt_stream(chunks: Iterable[bytes], key: bytes, iv: bytes) -> Iterator[bytes]:
    """Encrypt a stream of chunks with one CBC chain; memory stays bounded by the chunk size."""
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    for chunk in chunks:
        out = enc.update(padder.update(chunk))
        if out:
            yield out
    yield enc.update(padder.finalize()) + enc.finalize()


def aes_decrypt_stream(chunks: Iterable[bytes], key: bytes, iv: bytes) -> Iterator[bytes]:
    """Decrypt a stream of chunks with one CBC chain (inverse of :func:`aes_encrypt_stream`)."""
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        out = unpadder.update(dec.update(chunk))
        if out:
            yield out
    if total == 0 or total % AES_BLOCK:
        raise ValueError("ciphertext length is not a positive multiple of 16")
    yield unpadder.update(dec.finalize()) + unpadder.finalize()


def read_chunks(fp: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        chunk = fp.read(size)
        if not chunk:
            return
        yield chunk


_OAEP = asym_padding.OAEP(
    mgf=asym_padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


def rsa_oaep_encrypt(public_key: rsa.RSAPublicKey, data: bytes) -> bytes:
    """RSAES-OAEP, SHA-256, MGF1-SHA-256, empty label."""
    return public_key.encrypt(data, _OAEP)


def rsa_oaep_decrypt(private_key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    return private_key.decrypt(data, _OAEP)


def public_key_id(public_key: rsa.RSAPublicKey) -> str:
    """``publicKeyId``: SHA-256 of the DER SubjectPublicKeyInfo, standard Base64."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return sha256_b64(spki)


@dataclass(frozen=True)
class PublicKeyCertificate:
    """One entry of ``GET /security/public-key-certificates``."""

    certificate_der: bytes
    certificate_id: str
    public_key_id: str
    valid_from: datetime
    valid_to: datetime
    usage: tuple[str, ...]

    @classmethod
    def from_json(cls, item: dict) -> PublicKeyCertificate:
        der = b64decode(item["certificate"])
        cert = x509.load_der_x509_certificate(der)
        pub = cert.public_key()
        if not isinstance(pub, rsa.RSAPublicKey):
            raise ValueError("KSeF public-key certificate does not hold an RSA key")
        return cls(
            certificate_der=der,
            certificate_id=item.get("certificateId") or sha256_b64(der),
            public_key_id=item.get("publicKeyId") or public_key_id(pub),
            valid_from=_parse_dt(item["validFrom"]),
            valid_to=_parse_dt(item["validTo"]),
            usage=tuple(item.get("usage") or ()),
        )

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        pub = x509.load_der_x509_certificate(self.certificate_der).public_key()
        assert isinstance(pub, rsa.RSAPublicKey)
        return pub

    def is_valid_at(self, when: datetime) -> bool:
        return self.valid_from <= when <= self.valid_to


def choose_certificate(
    certs: Iterable[PublicKeyCertificate], usage: str, now: datetime | None = None
) -> PublicKeyCertificate:
    """The certificate for ``usage`` valid now; among several, the one with the latest ``validFrom``."""
    now = now or datetime.now(timezone.utc)
    candidates = [c for c in certs if usage in c.usage and c.is_valid_at(now)]
    if not candidates:
        raise LookupError(f"KSeF published no valid public-key certificate for {usage}")
    return max(candidates, key=lambda c: c.valid_from)


def _parse_dt(value: str) -> datetime:
    """Parse an ISO-8601 date-time as KSeF sends it (``Z`` suffix, 7-digit fractions); naive means UTC."""
    text = value.strip().replace("Z", "+00:00")
    # Python < 3.11 accepts at most 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


parse_datetime = _parse_dt


# -- secrets at rest ------------------------------------------------------------------------------------------
SEALED_PREFIX = "sealed:v1:"


def derive_key(secret: str | bytes, purpose: str) -> bytes:
    """A 256-bit key for ``purpose`` derived (HKDF-SHA256) from an installation secret."""
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = secret.encode("utf-8") if isinstance(secret, str) else secret
    return HKDF(hashes.SHA256(), 32, salt=b"ksefnet", info=purpose.encode("utf-8")).derive(material)


def seal(key: bytes, plaintext: bytes, prefix: str = SEALED_PREFIX) -> str:
    """AES-256-GCM with a random nonce, as text (``prefix`` + Base64 of nonce and ciphertext); the prefix
    says which key sealed it (e.g. one from the database, one from a configuration file)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return prefix + b64(nonce + AESGCM(key).encrypt(nonce, plaintext, None))


def unseal(key: bytes, sealed: str, prefix: str = SEALED_PREFIX) -> bytes:
    """The plaintext of :func:`seal`'s output; ValueError when it was sealed with another key or altered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not sealed.startswith(prefix):
        raise ValueError("not a sealed value")
    blob = b64decode(sealed[len(prefix) :])
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], None)
    except InvalidTag:
        raise ValueError(
            "the sealed value cannot be opened with this key (altered, or another installation)"
        ) from None
