"""KSeF verification QR codes: KOD I / KOD II links (examples from kody-qr.md), signatures, labels, images."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from ksefnet_core import qr
from ksefnet_core.environments import DEMO, PRODUCTION, TEST
from ksefnet_core.ids import make_ksef_number

# The worked examples of kody-qr.md.
DOC_NIP = "1111111111"
DOC_DATE = date(2026, 2, 1)  # "01-02-2026" is DD-MM-YYYY
DOC_HASH = "UtQp9Gpc51y-u3xApZjIjgkpZ01js-J8KflSPW8WzIE"
DOC_SERIAL = "01F20A5D352AE590"
DOC_KOD1 = f"https://qr-test.ksef.mf.gov.pl/invoice/1111111111/01-02-2026/{DOC_HASH}"
DOC_SIGNED = f"qr-test.ksef.mf.gov.pl/certificate/Nip/1111111111/1111111111/01F20A5D352AE590/{DOC_HASH}"
DOC_SIGNATURE = (
    "mSkm_XmM9fq7PgAJwiL32L9ujhyguOEV48cDB0ncemD2r9TMGa3lr0iRoFk588agCi8QPsOuscUY1rZ7ff76STbGquO-gZtQys5_fHdf2H"
    "UfDqPqVTnUS6HknBu0zLkyf9ygoW7WbH06Ty_8BgQTlOmJFzNWSt9WZa7tAGuAE9JOooNps-KG2PYkkIP4q4jPMp3FKypAygHVnXtS0RDGgOx"
    "hhM7LWtFP7D-dWINbh5yXD8Lr-JVbeOpyQjHa6WmMYavCDQJ3X_Z-iS01LZu2s1B3xuOykl1h0sLObCdADrbxOONsXrvQa61Xt_rxyprVraj2"
    "Uf9pANQgR4-12HEcMw"
)
DOC_KOD2 = f"https://{DOC_SIGNED}/{DOC_SIGNATURE}"
DOC_KSEF_NUMBER = "5265877635-20250729-01004014E040-00"  # the label in docs/qr/qr-ksef.png

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def kod2(key: qr.PrivateKey, **kw: object) -> str:
    args: dict = {
        "context_type": "Nip",
        "context_value": DOC_NIP,
        "seller_nip": DOC_NIP,
        "certificate_serial_hex": DOC_SERIAL,
        "private_key": key,
        "invoice_hash_b64url": DOC_HASH,
    }
    args.update(kw)
    return qr.certificate_verification_url(TEST, **args)


# --- KOD I ----------------------------------------------------------------------------------------------


def test_kod1_reproduces_the_documented_example():
    assert qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE, invoice_hash_b64url=DOC_HASH) == DOC_KOD1
    assert qr.invoice_verification_url(DEMO, DOC_NIP, DOC_DATE, invoice_hash_b64url=DOC_HASH).startswith(
        "https://qr-demo.ksef.mf.gov.pl/invoice/1111111111/01-02-2026/"
    )
    assert qr.invoice_verification_url(PRODUCTION, DOC_NIP, DOC_DATE, invoice_hash_b64url=DOC_HASH) == (
        DOC_KOD1.replace("qr-test.", "qr.")
    )


def test_kod1_hashes_the_invoice_bytes_as_base64url_without_padding():
    xml = b'<?xml version="1.0" encoding="UTF-8"?><Faktura>\xc5\xbc\xc3\xb3\xc5\x82w</Faktura>'
    url = qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE, xml)
    digest = url.rsplit("/", 1)[1]
    assert digest == base64.urlsafe_b64encode(hashlib.sha256(xml).digest()).decode().rstrip("=")
    assert len(digest) == 43 and "=" not in digest and "+" not in digest and "/" not in digest
    # the standard-Base64 hash the KSeF API returns gives the same link
    std = base64.b64encode(hashlib.sha256(xml).digest()).decode()
    assert qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE, invoice_hash_b64url=std) == url


def test_kod1_accepts_p1_text_datetimes_and_formatted_nips():
    assert qr.invoice_verification_url(
        TEST, "PL 111-111-11-11", "2026-02-01", invoice_hash_b64url=DOC_HASH
    ) == (DOC_KOD1)
    assert qr.invoice_verification_url(
        TEST, DOC_NIP, datetime(2026, 2, 1, 23, 59), invoice_hash_b64url=DOC_HASH
    ) == (DOC_KOD1)


@pytest.mark.parametrize("nip", ["1111111112", "123", "0111111111", "", None, 1111111111])
def test_kod1_rejects_invalid_nip(nip):
    with pytest.raises(ValueError, match="seller NIP is not a valid NIP"):
        qr.invoice_verification_url(TEST, nip, DOC_DATE, invoice_hash_b64url=DOC_HASH)


@pytest.mark.parametrize("day", ["2026-02-30", "01-02-2026", "2026/02/01", "", None, 20260201])
def test_kod1_rejects_invalid_issue_date(day):
    with pytest.raises(ValueError, match=r"issue date \(P_1\)"):
        qr.invoice_verification_url(TEST, DOC_NIP, day, invoice_hash_b64url=DOC_HASH)


@pytest.mark.parametrize(
    "digest",
    [DOC_HASH[:-1], DOC_HASH + "=", DOC_HASH[:-1] + "J", DOC_HASH.replace("-", "+"), "", "x" * 44],
)
def test_rejects_malformed_hashes(digest):
    with pytest.raises(ValueError, match="SHA-256"):
        qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE, invoice_hash_b64url=digest)


def test_needs_exactly_one_of_xml_or_hash():
    with pytest.raises(ValueError, match="exactly one"):
        qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE)
    with pytest.raises(ValueError, match="exactly one"):
        qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE, b"<x/>", invoice_hash_b64url=DOC_HASH)
    with pytest.raises(ValueError, match="bytes"):
        qr.invoice_verification_url(TEST, DOC_NIP, DOC_DATE, "<x/>")  # type: ignore[arg-type]


# --- KOD II ---------------------------------------------------------------------------------------------


def test_kod2_signed_string_matches_the_documented_example():
    signed = qr.certificate_signed_string(
        TEST, "Nip", DOC_NIP, DOC_NIP, DOC_SERIAL, invoice_hash_b64url=DOC_HASH
    )
    assert signed == DOC_SIGNED
    url = kod2(RSA_KEY)
    assert url.startswith(f"https://{DOC_SIGNED}/")
    assert url.count("/") == DOC_KOD2.count("/")


def test_kod2_documented_link_parses():
    link = qr.parse_certificate_url(DOC_KOD2)
    assert link.signed_string == DOC_SIGNED
    assert (link.context_type, link.context_value, link.seller_nip) == ("Nip", DOC_NIP, DOC_NIP)
    assert (link.certificate_serial_hex, link.invoice_hash_b64url) == (DOC_SERIAL, DOC_HASH)
    assert len(link.signature) == 256  # the example is signed with an RSA-2048 key (we lack its public key)
    assert not qr.verify_certificate_url(DOC_KOD2, RSA_KEY.public_key())


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["rsa-2048-pss", "ecdsa-p256"])
def test_kod2_round_trip(key):
    url = kod2(key)
    signed, _, signature = url.removeprefix("https://").rpartition("/")
    assert signed == DOC_SIGNED
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert "=" not in signature
    assert len(raw) == (256 if isinstance(key, rsa.RSAPrivateKey) else 64)  # P1363: R || S, 32 bytes each
    assert qr.verify_certificate_url(url, key.public_key())
    other = (
        rsa.generate_private_key(65537, 2048)
        if isinstance(key, rsa.RSAPrivateKey)
        else ec.generate_private_key(ec.SECP256R1())
    )
    assert not qr.verify_certificate_url(url, other.public_key())


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["rsa", "ec"])
def test_kod2_tampered_links_fail(key):
    url = kod2(key)
    signed, _, signature = url.rpartition("/")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    for bad in [
        url.replace("/Nip/1111111111/1111111111/", "/Nip/1111111111/2222222222/"),
        url.replace(DOC_SERIAL, "01F20A5D352AE591"),
        url.replace(DOC_HASH, DOC_HASH[:-1] + "I"),
        url.replace("qr-test.", "qr."),
        f"{signed}/{flipped}",
        f"{signed}/{signature[:-4]}",
        signed,
        url + "/",
        url.replace("https://", ""),
        "",
    ]:
        assert not qr.verify_certificate_url(bad, key.public_key()), bad


def test_kod2_accepts_ecdsa_der_signatures():
    der = EC_KEY.sign(DOC_SIGNED.encode(), ec.ECDSA(hashes.SHA256()))
    url = f"https://{DOC_SIGNED}/{base64.urlsafe_b64encode(der).decode().rstrip('=')}"
    assert qr.verify_certificate_url(url, EC_KEY.public_key())


def test_kod2_rejects_weak_or_wrong_keys():
    weak = rsa.generate_private_key(65537, 1024)
    with pytest.raises(ValueError, match="2048"):
        kod2(weak)
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    sig = base64.urlsafe_b64encode(weak.sign(DOC_SIGNED.encode(), pss, hashes.SHA256())).decode().rstrip("=")
    assert not qr.verify_certificate_url(f"https://{DOC_SIGNED}/{sig}", weak.public_key())
    with pytest.raises(ValueError, match="P-256"):
        kod2(ec.generate_private_key(ec.SECP384R1()))


def _certificate(key: qr.PrivateKey, serial: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KSeF offline test")])
    now = datetime.now(timezone.utc)
    builder = x509.CertificateBuilder(name, name, key.public_key(), serial, now, now + timedelta(days=1))
    return builder.sign(key, hashes.SHA256())


def test_kod2_from_a_credential_like_object():
    cert = _certificate(EC_KEY, int(DOC_SERIAL, 16))
    assert qr.certificate_serial(cert) == DOC_SERIAL  # leading zero of the first byte kept
    cred = SimpleNamespace(certificate=cert, private_key=EC_KEY)
    url = qr.certificate_verification_url(
        TEST, "Nip", DOC_NIP, DOC_NIP, invoice_hash_b64url=DOC_HASH, credential=cred
    )
    assert url.startswith(f"https://{DOC_SIGNED}/")
    assert qr.verify_certificate_url(url, cert)
    cred.serial_hex = "0321C82DA41B4362"
    url = qr.certificate_verification_url(TEST, "Nip", DOC_NIP, DOC_NIP, invoice_xml=b"<x/>", credential=cred)
    assert "/0321C82DA41B4362/" in url and qr.verify_certificate_url(url, EC_KEY.public_key())
    with pytest.raises(ValueError, match="private key"):
        qr.certificate_verification_url(TEST, "Nip", DOC_NIP, DOC_NIP, DOC_SERIAL, b"<x/>")


@pytest.mark.parametrize(
    ("ctx_type", "ctx_value", "expected"),
    [
        ("nip", "PL1111111111", "Nip/1111111111"),
        ("InternalId", "1111111111-00001", "InternalId/1111111111-00001"),
        ("NipVatUe", "1111111111-DE123456789", "NipVatUe/1111111111-DE123456789"),
        ("PeppolId", "PPL123456", "PeppolId/PPL123456"),
    ],
)
def test_kod2_context_types(ctx_type, ctx_value, expected):
    url = kod2(EC_KEY, context_type=ctx_type, context_value=ctx_value)
    assert f"/certificate/{expected}/1111111111/" in url
    assert qr.verify_certificate_url(url, EC_KEY.public_key())


@pytest.mark.parametrize(
    ("ctx_type", "ctx_value", "message"),
    [
        ("Pesel", "44051401359", "context type must be one of"),
        ("Nip", "1111111112", "not a valid Nip"),
        ("InternalId", "1111111111", "not a valid InternalId"),
        ("NipVatUe", "1111111111/DE1", "not a valid NipVatUe"),
        ("PeppolId", "PPL12345/", "not a valid PeppolId"),
    ],
)
def test_kod2_rejects_bad_contexts(ctx_type, ctx_value, message):
    with pytest.raises(ValueError, match=message):
        kod2(EC_KEY, context_type=ctx_type, context_value=ctx_value)


def test_kod2_rejects_bad_serial_and_seller():
    with pytest.raises(ValueError, match="serial"):
        kod2(EC_KEY, certificate_serial_hex="01F2/../X")
    with pytest.raises(ValueError, match="seller NIP"):
        kod2(EC_KEY, seller_nip="1234567890")


# --- labels ---------------------------------------------------------------------------------------------


def test_labels():
    assert qr.label_for_invoice(None) == qr.label_for_invoice("") == "OFFLINE"
    assert qr.label_for_invoice(DOC_KSEF_NUMBER) == DOC_KSEF_NUMBER
    number = make_ksef_number(DOC_NIP, date(2026, 2, 1))
    assert qr.label_for_invoice(f" {number} ") == number
    with pytest.raises(ValueError, match="KSeF number"):
        qr.label_for_invoice(DOC_KSEF_NUMBER[:-1] + "1")
    assert qr.CERTIFICATE_LABEL == "CERTYFIKAT"


# --- images ---------------------------------------------------------------------------------------------


def png_pixels(png: bytes) -> tuple[int, int, list[list[bool]]]:
    """Check the PNG structure (signature, chunk CRCs, IHDR) and return its dark pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        tag, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        chunks.append((tag, body))
        pos += 12 + length
    assert [t for t, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color, compression, filtering, interlace) == (1, 0, 0, 0, 0)  # 1-bit grayscale
    raw, stride = zlib.decompress(chunks[1][1]), (width + 7) // 8
    assert len(raw) == height * (stride + 1)
    rows = []
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        assert line[0] == 0  # filter type None
        bits = "".join(f"{b:08b}" for b in line[1:])[:width]
        rows.append([bit == "0" for bit in bits])
    return width, height, rows


def test_png_of_the_documented_link_has_the_expected_size():
    # Level M gives version 6 (41 modules) for the KOD I example, like docs/qr/qr-ksef.png.
    width, height, rows = png_pixels(qr.qr_png(DOC_KOD1))
    assert (width, height) == ((41 + 8) * 4, (41 + 8) * 4)
    assert not any(rows[0]) and rows[16][16]  # quiet zone, then the finder pattern's corner
    width, height, _ = png_pixels(qr.qr_png(DOC_KOD1, "OFFLINE", scale=5, border=4))
    # 245 px code with its quiet zone, then the label in a 2 px font (41 x 7 units) and a 10 px margin
    assert (width, height) == (245, 245 + 14 + 10)
    width, height, rows = png_pixels(qr.qr_png(DOC_KOD1, DOC_KSEF_NUMBER))
    assert width == 209 + 2 * 16 and height == 196 + 7 + 8  # a 35-character label widens the image
    assert any(rows[196]) and not any(rows[195]) and not any(rows[-1])  # label just below the quiet zone


def test_png_and_svg_paint_the_same_pixels_and_svg_is_well_formed():
    png, svg = qr.qr_png(DOC_KOD2, "CERTYFIKAT", scale=3), qr.qr_svg(DOC_KOD2, "CERTYFIKAT", scale=3)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("aria-label") == "CERTYFIKAT"
    assert root.findtext(f"{ns}title") == "CERTYFIKAT"
    width, height, rows = png_pixels(png)
    assert (root.get("width"), root.get("height")) == (str(width), str(height))
    painted = [[False] * width for _ in range(height)]
    for x, y, w, h in (
        map(int, m) for m in re.findall(r"M(\d+) (\d+)h(\d+)v(\d+)h-\d+z", root.find(f"{ns}path").get("d"))
    ):
        for yy in range(y, y + h):
            painted[yy][x : x + w] = [True] * w
    assert painted == rows


def test_labels_outside_the_font_are_rejected():
    with pytest.raises(ValueError, match="cannot draw"):
        qr.qr_png(DOC_KOD1, "Faktura ŻÓŁW")
    with pytest.raises(ValueError, match="scale"):
        qr.qr_svg(DOC_KOD1, scale=0)


ZBARIMG = shutil.which("zbarimg")


@pytest.mark.skipif(
    ZBARIMG is None, reason="zbarimg not installed (apt-get install zbar-tools) - decoding not checked"
)
@pytest.mark.parametrize(
    ("url", "label", "scale"),
    [
        (DOC_KOD1, DOC_KSEF_NUMBER, 4),
        (DOC_KOD1, "OFFLINE", 2),
        ("KOD2", "CERTYFIKAT", 3),
    ],
)
def test_png_decodes_back_to_the_link(tmp_path, url, label, scale):
    if url == "KOD2":
        url = kod2(EC_KEY)
    path = tmp_path / "qr.png"
    path.write_bytes(qr.qr_png(url, label, scale=scale))
    done = subprocess.run([ZBARIMG, "--raw", "-q", str(path)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().rstrip("\n") == url


@pytest.mark.skipif(
    ZBARIMG is None, reason="zbarimg not installed (apt-get install zbar-tools) - decoding not checked"
)
def test_svg_decodes_back_to_the_link(tmp_path):
    url = kod2(RSA_KEY)
    path = tmp_path / "qr.svg"
    path.write_bytes(qr.qr_svg(url, qr.CERTIFICATE_LABEL))
    done = subprocess.run([ZBARIMG, "--raw", "-q", str(path)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr  # zbarimg rasterises SVG through its ImageMagick library
    assert done.stdout.decode().rstrip("\n") == url
