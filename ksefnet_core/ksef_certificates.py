"""Obtaining KSeF certificates (certyfikaty-KSeF.md): ``Authentication`` certificates to log in without a
qualified one, and ``Offline`` certificates to sign KOD II of invoices issued offline (kody-qr.md).

:func:`enroll` does the whole process: the subject data KSeF wants in the CSR (``GET /certificates/enrollments/
data``, available only after a XAdES authentication), a new key pair (EC P-256 by default, as KSeF recommends;
or RSA 2048), the PKCS#10 request, ``POST /certificates/enrollments``, polling its status, and retrieving the
certificate; it returns a :class:`~ksefnet_core.certificates.Credential` (certificate and private key). The
private key never leaves this process; store it as safely as any signing key.
"""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .certificates import ORGANIZATION_IDENTIFIER, Credential, PrivateKey
from .client import KsefClient
from .errors import KsefProtocolError
from .polling import wait_for_operation

AUTHENTICATION = "Authentication"
OFFLINE = "Offline"
#: JSON names of ``CertificateEnrollmentDataResponse`` -> X.509 attribute OIDs, in the order written to the CSR
DN_ATTRIBUTES = (
    ("countryName", NameOID.COUNTRY_NAME),
    ("organizationName", NameOID.ORGANIZATION_NAME),
    ("organizationIdentifier", ORGANIZATION_IDENTIFIER),
    ("givenName", NameOID.GIVEN_NAME),
    ("surname", NameOID.SURNAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
    ("uniqueIdentifier", NameOID.X500_UNIQUE_IDENTIFIER),
    ("commonName", NameOID.COMMON_NAME),
)


def new_key(key_type: str = "EC") -> PrivateKey:
    """A key KSeF accepts for its certificates: EC P-256 (recommended) or RSA 2048."""
    if key_type.upper() == "EC":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type.upper() == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError("key type must be EC (P-256) or RSA (2048 bits)")


def build_csr(enrollment_data: dict, private_key: PrivateKey) -> bytes:
    """A PKCS#10 request (DER) with exactly the subject attributes of ``enrollment_data``, signed SHA-256."""
    attributes = [
        x509.NameAttribute(oid, str(enrollment_data[name]))
        for name, oid in DN_ATTRIBUTES
        if enrollment_data.get(name)
    ]
    if not any(a.oid == NameOID.COMMON_NAME for a in attributes):
        raise ValueError("the enrollment data has no commonName")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(private_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def is_offline_certificate(certificate: x509.Certificate) -> bool:
    """A KSeF ``Offline`` certificate: key usage Non-Repudiation (content commitment), for KOD II."""
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bool(usage.content_commitment)


def wait_for_enrollment(
    client: KsefClient, reference_number: str, *, timeout: float = 120.0, poll_interval: float = 1.0
) -> str:
    """Poll the enrollment until the certificate is issued; its serial number. Failures raise
    :class:`~ksefnet_core.errors.KsefOperationFailed` (e.g. 400: the key is certified by someone else)."""
    status = wait_for_operation(
        lambda: client.certificate_enrollment_status(reference_number),
        what=f"certificate enrollment {reference_number}",
        reference_number=reference_number,
        timeout=timeout,
        poll_interval=poll_interval,
        max_delay=10.0,
    )
    serial = status.get("certificateSerialNumber")
    if not serial:
        raise KsefProtocolError(f"certificate enrollment {reference_number} ended without a serial number")
    return str(serial)


def retrieve(client: KsefClient, serial_number: str) -> x509.Certificate:
    found = [
        c
        for c in client.retrieve_certificates([serial_number])
        if c.get("certificateSerialNumber") == serial_number
    ]
    if not found:
        raise KsefProtocolError(f"KSeF returned no certificate {serial_number}")
    return x509.load_der_x509_certificate(base64.b64decode(found[0]["certificate"]))


def enroll(
    client: KsefClient,
    name: str,
    certificate_type: str = AUTHENTICATION,
    *,
    private_key: PrivateKey | None = None,
    key_type: str = "EC",
    valid_from: datetime | None = None,
    timeout: float = 120.0,
    poll_interval: float = 1.0,
) -> Credential:
    """Request a KSeF certificate of ``certificate_type`` for the authenticated subject and wait for it."""
    if certificate_type not in (AUTHENTICATION, OFFLINE):
        raise ValueError("certificate type must be Authentication or Offline")
    key = private_key or new_key(key_type)
    csr = build_csr(client.certificate_enrollment_data(), key)
    reference = client.enroll_certificate(name, certificate_type, csr, valid_from)["referenceNumber"]
    serial = wait_for_enrollment(client, reference, timeout=timeout, poll_interval=poll_interval)
    certificate = retrieve(client, serial)
    public = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise KsefProtocolError(f"certificate {serial} does not hold the requested public key")
    return Credential(certificate, key)
