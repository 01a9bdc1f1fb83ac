"""KSeF verification QR codes (kody-qr.md): links, KOD II signatures, labels and labelled PNG/SVG images.

* KOD I (every invoice): ``{qr_base}/invoice/{seller NIP}/{issue date DD-MM-YYYY}/{SHA-256 Base64URL}``,
  labelled with the KSeF number, or ``OFFLINE`` while the invoice has none.
* KOD II (offline invoices): ``{qr_base}/certificate/{context type}/{context value}/{seller NIP}/{certificate
  serial}/{SHA-256 Base64URL}/{signature Base64URL}``, labelled ``CERTYFIKAT``. The signed string is the link
  without the scheme and without the trailing ``/{signature}``; RSA keys sign with RSASSA-PSS (SHA-256,
  MGF1-SHA-256, 32-byte salt, at least 2048 bits), EC keys with ECDSA P-256/SHA-256 as IEEE P1363 ``R || S``.

Images are drawn from segno's module matrix at error correction level M (the level of the reference images in
the documentation). The label goes under the code, outside its quiet zone, in a built-in 5x7 bitmap font, so
neither Pillow nor any installed font is needed and the PNG and the SVG paint exactly the same pixels.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any

import segno
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .crypto import b64url_nopad, sha256_b64url
from .environments import Environment
from .ids import INTERNAL_ID_PATTERN, is_valid_ksef_number, is_valid_nip, normalize_nip

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

OFFLINE_LABEL = "OFFLINE"
CERTIFICATE_LABEL = "CERTYFIKAT"
ERROR_LEVEL = "M"
MIN_RSA_BITS = 2048
PSS_SALT_LENGTH = 32
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT_LENGTH)

# Context identifier types of a KOD II link and the shape of their values (OpenAPI patterns; the NIP part of
# Nip/InternalId/NipVatUe is also checksum-verified).
_CONTEXT_VALUE = {
    "Nip": re.compile(r"\d{10}"),
    "InternalId": INTERNAL_ID_PATTERN,
    "NipVatUe": re.compile(r"\d{10}-[A-Z]{2}[A-Z0-9+*]{2,12}"),
    "PeppolId": re.compile(r"P[A-Z]{2}\d{6}"),
}
_HASH = re.compile(r"[A-Za-z0-9_-]{43}")
_SERIAL = re.compile(r"[0-9A-F]+")


# --- links -----------------------------------------------------------------------------------------------


def normalize_invoice_hash(invoice_hash: str) -> str:
    """Validate an invoice SHA-256 and return it as Base64URL without padding (43 characters).

    Accepts Base64URL or the standard Base64 ``Sha256HashBase64`` that the KSeF API returns (44 characters).
    """
    value = invoice_hash.strip() if isinstance(invoice_hash, str) else ""
    if len(value) == 44 and value.endswith("="):
        try:
            value = b64url_nopad(base64.b64decode(value, validate=True))
        except binascii.Error:
            pass
    if not _HASH.fullmatch(value) or b64url_nopad(_b64url_decode(value)) != value:
        raise ValueError(f"not a SHA-256 hash in Base64URL without padding (43 characters): {invoice_hash!r}")
    return value


def invoice_verification_url(
    environment: Environment,
    seller_nip: str,
    issue_date: date | str,
    invoice_xml: bytes | None = None,
    *,
    invoice_hash_b64url: str | None = None,
) -> str:
    """KOD I link: ``{qr_base}/invoice/{NIP}/{DD-MM-YYYY}/{hash}``.

    ``issue_date`` is the invoice's ``P_1`` (a ``date`` or its ISO ``YYYY-MM-DD`` text); give the invoice XML
    bytes or their hash.
    """
    nip = _nip(seller_nip, "seller NIP")
    day = _issue_date(issue_date)
    digest = _digest(invoice_xml, invoice_hash_b64url)
    return f"{environment.qr_base}/invoice/{nip}/{day:%d-%m-%Y}/{digest}"


def certificate_signed_string(
    environment: Environment,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial_hex: str,
    invoice_xml: bytes | None = None,
    *,
    invoice_hash_b64url: str | None = None,
) -> str:
    """The part of a KOD II link that is signed: the link without ``https://`` and without ``/{signature}``."""
    ctx_type, ctx_value = _context(context_type, context_value)
    nip = _nip(seller_nip, "seller NIP")
    serial = (certificate_serial_hex or "").strip().upper()
    if not _SERIAL.fullmatch(serial):
        raise ValueError(f"certificate serial number must be hexadecimal, got {certificate_serial_hex!r}")
    digest = _digest(invoice_xml, invoice_hash_b64url)
    return f"{environment.qr_host}/certificate/{ctx_type}/{ctx_value}/{nip}/{serial}/{digest}"


def certificate_verification_url(
    environment: Environment,
    context_type: str,
    context_value: str,
    seller_nip: str,
    certificate_serial_hex: str | None = None,
    invoice_xml: bytes | None = None,
    private_key: PrivateKey | None = None,
    *,
    invoice_hash_b64url: str | None = None,
    credential: Any = None,
) -> str:
    """KOD II link, signed with the private key of the issuer's KSeF ``Offline`` certificate.

    Give the certificate serial and the key, or ``credential``: any object with ``.private_key`` and
    ``.certificate`` (an x509 certificate; its ``.serial_hex`` is used when present).
    """
    if credential is not None:
        private_key = private_key or credential.private_key
        certificate_serial_hex = certificate_serial_hex or getattr(credential, "serial_hex", None)
        certificate_serial_hex = certificate_serial_hex or certificate_serial(credential.certificate)
    if private_key is None or not certificate_serial_hex:
        raise ValueError("KOD II needs the certificate serial number and its private key (or a credential)")
    signed = certificate_signed_string(
        environment,
        context_type,
        context_value,
        seller_nip,
        certificate_serial_hex,
        invoice_xml,
        invoice_hash_b64url=invoice_hash_b64url,
    )
    scheme = environment.qr_base.split("://", 1)[0]
    return f"{scheme}://{signed}/{b64url_nopad(sign(signed, private_key))}"


def certificate_serial(certificate: x509.Certificate) -> str:
    """A certificate's serial number as uppercase hex of whole bytes (``01F20A5D352AE590``)."""
    text = f"{certificate.serial_number:X}"
    return text.zfill(len(text) + len(text) % 2)


def sign(data: str, private_key: PrivateKey) -> bytes:
    """Sign a KOD II string: RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) or ECDSA P-256 as IEEE P1363 R||S."""
    message = data.encode("utf-8")
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"KOD II needs an RSA key of at least {MIN_RSA_BITS} bits")
        return private_key.sign(message, _PSS, hashes.SHA256())
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("KOD II needs an EC key on curve P-256 (secp256r1)")
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise ValueError(f"KOD II needs an RSA or EC private key, got {type(private_key).__name__}")


@dataclass(frozen=True)
class CertificateLink:
    """The parts of a KOD II link (see :func:`parse_certificate_url`)."""

    signed_string: str
    context_type: str
    context_value: str
    seller_nip: str
    certificate_serial_hex: str
    invoice_hash_b64url: str
    signature: bytes


def parse_certificate_url(url: str) -> CertificateLink:
    """Split a KOD II link into its parts; raises ``ValueError`` when it is not one."""
    scheme, sep, rest = (url or "").partition("://")
    signed, _, signature = rest.rpartition("/")
    parts = signed.split("/")
    if not sep or scheme not in ("https", "http") or len(parts) < 7 or parts[-6] != "certificate":
        raise ValueError(f"not a KOD II link: {url!r}")
    ctx_type, ctx_value, nip, serial, digest = parts[-5:]
    if (
        ctx_type not in _CONTEXT_VALUE
        or not _SERIAL.fullmatch(serial)
        or not _HASH.fullmatch(digest)
        or not re.fullmatch(r"[A-Za-z0-9_-]+", signature)
    ):
        raise ValueError(f"malformed KOD II link: {url!r}")
    return CertificateLink(signed, ctx_type, ctx_value, nip, serial, digest, _b64url_decode(signature))


def verify_certificate_url(url: str, public_key: PublicKey | x509.Certificate) -> bool:
    """True when ``url`` is a KOD II link whose signature verifies under ``public_key`` (or a certificate's).

    RSA (>= 2048 bits): RSASSA-PSS with a 32-byte salt. EC P-256: IEEE P1363 ``R || S`` (recommended) or
    ASN.1 DER. Malformed links give False; a key that is neither RSA nor EC raises ``ValueError``.
    """
    key = public_key.public_key() if isinstance(public_key, x509.Certificate) else public_key
    try:
        link = parse_certificate_url(url)
    except ValueError:
        return False
    message, sig = link.signed_string.encode("utf-8"), link.signature
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < MIN_RSA_BITS:
                return False
            key.verify(sig, message, _PSS, hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if len(sig) == 64:
                sig = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        else:
            raise ValueError(f"KOD II is signed with RSA or EC keys, got {type(key).__name__}")
    except InvalidSignature:
        return False
    return True


def label_for_invoice(ksef_number: str | None) -> str:
    """Label under KOD I: the invoice's KSeF number, or ``OFFLINE`` while it has none."""
    if not ksef_number or not ksef_number.strip():
        return OFFLINE_LABEL
    number = ksef_number.strip()
    if not is_valid_ksef_number(number):
        raise ValueError(f"not a valid KSeF number: {ksef_number!r}")
    return number


def _digest(invoice_xml: bytes | None, invoice_hash: str | None) -> str:
    if (invoice_xml is None) == (invoice_hash is None):
        raise ValueError("give exactly one of the invoice XML bytes or its SHA-256 hash")
    if invoice_xml is None:
        return normalize_invoice_hash(invoice_hash or "")
    if not isinstance(invoice_xml, bytes):
        raise ValueError("the invoice XML must be bytes (the exact file sent to KSeF)")
    return sha256_b64url(invoice_xml)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _nip(value: str, what: str) -> str:
    nip = normalize_nip(value if isinstance(value, str) else "")
    if not is_valid_nip(nip):
        raise ValueError(f"{what} is not a valid NIP (10 digits with a correct checksum): {value!r}")
    return nip


def _issue_date(value: date | str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"invoice issue date (P_1) must be a date or YYYY-MM-DD, got {value!r}")


def _context(context_type: str, context_value: str) -> tuple[str, str]:
    canonical = {name.lower(): name for name in _CONTEXT_VALUE}
    ctx_type = canonical.get(str(context_type).strip().lower())
    if ctx_type is None:
        raise ValueError(f"context type must be one of {', '.join(_CONTEXT_VALUE)}, got {context_type!r}")
    value = normalize_nip(context_value) if ctx_type == "Nip" else (context_value or "").strip()
    if not _CONTEXT_VALUE[ctx_type].fullmatch(value) or (
        ctx_type != "PeppolId" and not is_valid_nip(value[:10])
    ):
        raise ValueError(f"not a valid {ctx_type} context identifier: {context_value!r}")
    return ctx_type, value


# --- images ----------------------------------------------------------------------------------------------

# 5x7 glyphs, one byte per column, bit 0 = top row.
_FONT: dict[str, bytes] = {
    " ": bytes(5),
    "-": bytes.fromhex("0808080808"),
    "0": bytes.fromhex("3e5149453e"),
    "1": bytes.fromhex("00427f4000"),
    "2": bytes.fromhex("4261514946"),
    "3": bytes.fromhex("2141454b31"),
    "4": bytes.fromhex("1814127f10"),
    "5": bytes.fromhex("2745454539"),
    "6": bytes.fromhex("3c4a494930"),
    "7": bytes.fromhex("0171090503"),
    "8": bytes.fromhex("3649494936"),
    "9": bytes.fromhex("064949291e"),
    "A": bytes.fromhex("7e1111117e"),
    "B": bytes.fromhex("7f49494936"),
    "C": bytes.fromhex("3e41414122"),
    "D": bytes.fromhex("7f4141221c"),
    "E": bytes.fromhex("7f49494941"),
    "F": bytes.fromhex("7f09090901"),
    "G": bytes.fromhex("3e4149497a"),
    "H": bytes.fromhex("7f0808087f"),
    "I": bytes.fromhex("00417f4100"),
    "J": bytes.fromhex("2040413f01"),
    "K": bytes.fromhex("7f08142241"),
    "L": bytes.fromhex("7f40404040"),
    "M": bytes.fromhex("7f020c027f"),
    "N": bytes.fromhex("7f0408107f"),
    "O": bytes.fromhex("3e4141413e"),
    "P": bytes.fromhex("7f09090906"),
    "Q": bytes.fromhex("3e4151215e"),
    "R": bytes.fromhex("7f09192946"),
    "S": bytes.fromhex("4649494931"),
    "T": bytes.fromhex("01017f0101"),
    "U": bytes.fromhex("3f4040403f"),
    "V": bytes.fromhex("1f2040201f"),
    "W": bytes.fromhex("3f4038403f"),
    "X": bytes.fromhex("6314081463"),
    "Y": bytes.fromhex("0708700807"),
    "Z": bytes.fromhex("6151494543"),
}
_GLYPH_H = 7
_ADVANCE = 6  # 5 columns + 1 column of spacing

Rect = tuple[int, int, int, int]  # x, y, width, height in pixels


def qr_png(url: str, label: str | None = None, *, scale: int = 4, border: int = 4) -> bytes:
    """A 1-bit grayscale PNG of the QR code for ``url`` with ``label`` under it.

    ``scale`` is pixels per module, ``border`` the quiet zone in modules (ISO/IEC 18004 asks for 4).
    """
    width, height, rects = _layout(url, label, scale, border)
    rows = [bytearray(b"1" * width) for _ in range(height)]  # ASCII bits, "1" = white
    for x, y, w, h in rects:
        for row in rows[y : y + h]:
            row[x : x + w] = b"0" * w
    pad = b"1" * (-width % 8)
    raw = b"".join(b"\0" + int(bytes(row) + pad, 2).to_bytes((width + 7) // 8, "big") for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def qr_svg(url: str, label: str | None = None, *, scale: int = 4, border: int = 4) -> bytes:
    """An SVG of the QR code for ``url`` with ``label`` under it, pixel-identical to :func:`qr_png`.

    The label is drawn as the same bitmap glyphs (one path with the modules), not as ``<text>``: it then
    renders the same with no fonts installed (PDF engines, headless renderers) and always fits under the
    code. The label text is also kept in ``<title>`` and ``aria-label`` for search and accessibility.
    """
    width, height, rects = _layout(url, label, scale, border)
    path = "".join(f"M{x} {y}h{w}v{h}h-{w}z" for x, y, w, h in rects)
    title = escape(_label_text(label) or url)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" shape-rendering="crispEdges" role="img" aria-label="{title}">'
        f'<title>{title}</title><rect width="{width}" height="{height}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>\n'
    ).encode()


def _layout(url: str, label: str | None, scale: int, border: int) -> tuple[int, int, list[Rect]]:
    """Canvas size and the black rectangles: the code (with its quiet zone) on top, the label centred below."""
    if not isinstance(url, str) or not url:
        raise ValueError("the QR code content must be a non-empty string")
    if scale < 1 or border < 0:
        raise ValueError("scale must be >= 1 and border >= 0")
    matrix = segno.make(url, error=ERROR_LEVEL, boost_error=False, micro=False).matrix
    text = _label_text(label)
    size = len(matrix) * scale
    quiet = border * scale
    code = size + 2 * quiet
    text_units = _ADVANCE * len(text) - 1
    # Font pixel: at most half a module, and as large as fits under the symbol (at least 1).
    t = max(1, min(scale // 2, size // max(text_units, 1)))
    gap = max(quiet, 2 * t)
    width = max(code, text_units * t + 2 * gap) if text else code
    height = code + (gap - quiet + _GLYPH_H * t + max(quiet // 2, 2 * t) if text else 0)
    left = (width - code) // 2 + quiet
    rects = [
        (left + c * scale, quiet + r * scale, n * scale, scale)
        for r, row in enumerate(matrix)
        for c, n in _runs([bool(v) for v in row])
    ]
    if text:
        tx, ty = (width - text_units * t) // 2, quiet + size + gap
        for gy in range(_GLYPH_H):
            bits = [bool(col >> gy & 1) for ch in text for col in _FONT[ch] + b"\0"]
            rects += [(tx + c * t, ty + gy * t, n * t, t) for c, n in _runs(bits)]
    return width, height, rects


def _label_text(label: str | None) -> str:
    text = (label or "").strip().upper()
    bad = sorted({ch for ch in text if ch not in _FONT})
    if bad:
        raise ValueError(f"label has characters the built-in font cannot draw: {''.join(bad)!r}")
    return text


def _runs(bits: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """(start, length) of each run of true values."""
    start = None
    for i, bit in enumerate([*bits, False]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            yield start, i - start
            start = None


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
