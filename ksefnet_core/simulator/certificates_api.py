"""KSeF certificates (certyfikaty-KSeF.md) in the simulator: limits, enrollment data, enrollment from a CSR,
status, retrieval, query, revocation, and the TEST tools (``PUT /testdata/certificates/{serialNumber}``,
``/testdata/limits/subject/certificate``).

Certificates belong to the authenticated **subject** (NIP, PESEL or fingerprint), not to a context, and can
be requested only after a XAdES authentication (a KSeF token: 25001/25002), only for the subject data of
the certificate used to authenticate (``GET /certificates/enrollments/data``; other data in the CSR: 25003).
The simulator signs them with its own CA ("KSeF simulator CA"); an ``Authentication`` certificate has key
usage Digital Signature and authenticates like the certificate it was requested with; an ``Offline``
certificate has Non-Repudiation and is refused for authentication (460), it signs KOD II only.
Default limits (``GET /limits/subject``): NIP 300 requests / 100 certificates, PESEL and fingerprint 12 / 6.
Enrollment statuses are kept 30 days (then 410).
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ..crypto import parse_datetime
from ..ids import make_reference_number
from .app import Simulator
from .auth_api import store as auth_store
from .keys import private_pem, self_signed
from .server import ApiError, Request, Response, iso

TYPES = ("Authentication", "Offline")
#: (max enrollments, max active certificates) per subject type (KSEF_API_NOTES §15)
DEFAULT_SUBJECT_LIMITS = {"Nip": (300, 100), "Pesel": (12, 6), "Fingerprint": (12, 6)}
VALIDITY = timedelta(days=730)
ENROLLMENT_RETENTION = timedelta(days=30)
ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")
#: the DN attributes of the enrollment data, by their JSON names (certyfikaty-KSeF.md §2)
DN_FIELDS = {
    "commonName": NameOID.COMMON_NAME,
    "countryName": NameOID.COUNTRY_NAME,
    "givenName": NameOID.GIVEN_NAME,
    "surname": NameOID.SURNAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "uniqueIdentifier": NameOID.X500_UNIQUE_IDENTIFIER,
    "organizationName": NameOID.ORGANIZATION_NAME,
    "organizationIdentifier": ORGANIZATION_IDENTIFIER,
}
SIGNATURE_HASHES = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)


@dataclass
class IssuedCertificate:
    serial: str  # 16 upper-case hex digits
    name: str
    kind: str  # Authentication | Offline
    owner: tuple[str, str]  # (Nip | Pesel | Fingerprint, value)
    certificate_der: bytes
    requested: datetime
    revoked: datetime | None = None
    revocation_reason: str | None = None
    last_use: datetime | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)


@dataclass
class Enrollment:
    reference: str
    owner: tuple[str, str]
    requested: datetime
    code: int
    details: list[str] = field(default_factory=list)
    serial: str | None = None


@dataclass
class CertificateStore:
    ca_key_pem: bytes = b""
    ca_certificate_der: bytes = b""
    certificates: dict[str, IssuedCertificate] = field(default_factory=dict)
    enrollments: dict[str, Enrollment] = field(default_factory=dict)
    #: owner -> (max enrollments, max certificates) set on TEST
    limits: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def store(sim: Simulator) -> CertificateStore:
    st: CertificateStore = sim.store("certificates", CertificateStore)
    if not st.ca_key_pem:
        with sim.lock:
            if not st.ca_key_pem:
                _make_ca(st, sim.clock.now())
    return st


def _make_ca(st: CertificateStore, now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    st.ca_certificate_der = self_signed(key, "KSeF simulator CA", "KSeF simulator", now, 3650, ca=True)
    st.ca_key_pem = private_pem(key)


def ca_certificate(sim: Simulator) -> x509.Certificate:
    return x509.load_der_x509_certificate(store(sim).ca_certificate_der)


def issued_by_simulator(sim: Simulator, cert: x509.Certificate) -> IssuedCertificate | None:
    """The KSeF certificate record of ``cert`` if the simulator issued it (its CA signature checked).

    The record, not the certificate presented, says whether it is still valid: a certificate whose validity
    was shortened on TEST (``PUT /testdata/certificates``) stays shortened in its holder's older copy too."""
    st = store(sim)
    record = st.certificates.get(f"{cert.serial_number:016X}")
    if record is None or _spki(record.certificate.public_key()) != _spki(cert.public_key()):
        return None
    try:
        cert.verify_directly_issued_by(ca_certificate(sim))
    except (ValueError, TypeError, InvalidSignature):
        return None
    return record


# -- helpers -------------------------------------------------------------------------------------------------


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def _validation(detail: str) -> ApiError:
    return ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", [detail])


def _owner(req: Request) -> tuple[str, str]:
    return req.auth.subject_type, req.auth.subject_value


def _auth_certificate(sim: Simulator, req: Request) -> x509.Certificate | None:
    op = auth_store(sim).operations.get(req.auth.auth_reference)
    der = getattr(op, "certificate_der", None)
    return x509.load_der_x509_certificate(der) if der else None


def enrollment_data(cert: x509.Certificate) -> dict[str, str]:
    """The DN attributes of ``cert`` a CSR must carry (``CertificateEnrollmentDataResponse``)."""
    out = {}
    for name, oid in DN_FIELDS.items():
        values = [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]
        if values:
            out[name] = " ".join(values)
    return out


def _limits(sim: Simulator, owner: tuple[str, str]) -> tuple[int, int]:
    return store(sim).limits.get(owner) or DEFAULT_SUBJECT_LIMITS.get(owner[0], (12, 6))


def _status(sim: Simulator, cert: IssuedCertificate) -> str:
    if cert.revoked:
        return "Revoked"
    if cert.certificate.not_valid_after_utc < sim.clock.now():
        return "Expired"
    return "Active"


def _counts(sim: Simulator, owner: tuple[str, str]) -> tuple[int, int]:
    st = store(sim)
    enrollments = sum(1 for e in st.enrollments.values() if e.owner == owner)
    active = sum(1 for c in st.certificates.values() if c.owner == owner and _status(sim, c) == "Active")
    return enrollments, active


def _own_certificate(sim: Simulator, req: Request, serial: str) -> IssuedCertificate:
    cert = store(sim).certificates.get(serial)
    if cert is None or cert.owner != _owner(req):
        raise ApiError.bad_request(
            25008, "Certyfikat o podanym numerze seryjnym nie istnieje.", [f"Certyfikat {serial}."]
        )
    return cert


# -- handlers ------------------------------------------------------------------------------------------------


def get_limits(sim: Simulator, req: Request) -> Response:
    owner = _owner(req)
    max_enrollments, max_certificates = _limits(sim, owner)
    enrollments, active = _counts(sim, owner)
    can = req.auth.subject_type != "Token" and enrollments < max_enrollments and active < max_certificates
    return Response.json(
        {
            "canRequest": can,
            "enrollment": {"limit": max_enrollments, "remaining": max(0, max_enrollments - enrollments)},
            "certificate": {"limit": max_certificates, "remaining": max(0, max_certificates - active)},
        }
    )


def get_enrollment_data(sim: Simulator, req: Request) -> Response:
    cert = _auth_certificate(sim, req)
    data = enrollment_data(cert) if cert is not None else {}
    if cert is None or "commonName" not in data or "countryName" not in data:
        raise ApiError.bad_request(
            25001, "Brak możliwości pobrania danych do CSR dla wykorzystanego sposobu uwierzytelnienia."
        )
    return Response.json(data)


def _read_csr(text: Any) -> x509.CertificateSigningRequest:
    refused = ApiError.bad_request(25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.")
    try:
        csr = x509.load_der_x509_csr(base64.b64decode(str(text), validate=True))
    except (ValueError, binascii.Error):
        raise refused from None
    if not csr.is_signature_valid:
        raise refused
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size != 2048:
            raise ApiError.bad_request(
                25004,
                "Niepoprawny format CSR lub niepoprawny podpis CSR.",
                ["Klucz RSA musi mieć 2048 bitów."],
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ApiError.bad_request(
                25004, "Niepoprawny format CSR lub niepoprawny podpis CSR.", ["Dozwolona krzywa: NIST P-256."]
            )
    else:
        raise refused
    if not isinstance(csr.signature_hash_algorithm, SIGNATURE_HASHES):
        raise refused
    return csr


def post_enrollment(sim: Simulator, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    name, kind = body.get("certificateName"), body.get("certificateType")
    if not isinstance(name, str) or not 5 <= len(name) <= 100 or kind not in TYPES or not body.get("csr"):
        raise _validation("Wymagane: certificateName (5-100 znaków), certificateType, csr.")
    valid_from = None
    if body.get("validFrom"):
        try:
            valid_from = parse_datetime(str(body["validFrom"]))
        except ValueError:
            raise _validation("Nieprawidłowa data validFrom.") from None
    auth_cert = _auth_certificate(sim, req)
    if auth_cert is None:
        raise ApiError.bad_request(
            25002,
            "Brak możliwości złożenia wniosku certyfikacyjnego dla wykorzystanego sposobu uwierzytelnienia.",
        )
    csr = _read_csr(body["csr"])
    wanted = enrollment_data(auth_cert)
    given = {
        n: " ".join(str(a.value) for a in csr.subject.get_attributes_for_oid(o)) for n, o in DN_FIELDS.items()
    }
    given = {k: v for k, v in given.items() if v}
    if given != wanted or any(a.oid not in DN_FIELDS.values() for a in csr.subject):
        raise ApiError.bad_request(
            25003, "Dane w CSR nie zgadzają się z danymi w użytym wektorze uwierzytelniającym."
        )
    owner = _owner(req)
    max_enrollments, max_certificates = _limits(sim, owner)
    now = sim.clock.now()
    st = store(sim)
    with sim.lock:
        enrollments, active = _counts(sim, owner)
        if enrollments >= max_enrollments:
            raise ApiError.bad_request(
                25006, "Osiągnięto limit możliwych do złożenia wniosków certyfikacyjnych."
            )
        if active >= max_certificates:
            raise ApiError.bad_request(
                25007, "Osiągnięto limit dopuszczalnej liczby posiadanych certyfikatów."
            )
        enrollment = Enrollment(make_reference_number("EH", now), owner, now, 200)
        spki = _spki(csr.public_key())
        taken = any(
            c.owner != owner and _spki(c.certificate.public_key()) == spki for c in st.certificates.values()
        )
        if taken:  # processed asynchronously: the status says why
            enrollment.code, enrollment.details = (
                400,
                ["Klucz publiczny został już certyfikowany przez inny podmiot."],
            )
        else:
            issued = _issue(sim, csr, name, kind, owner, valid_from or now, now)
            enrollment.serial = issued.serial
        st.enrollments[enrollment.reference] = enrollment
    return Response.json({"referenceNumber": enrollment.reference, "timestamp": iso(now)}, 202)


def _sign(
    sim: Simulator,
    subject: x509.Name,
    public_key: Any,
    serial: int,
    kind: str,
    valid_from: datetime,
    valid_to: datetime,
) -> bytes:
    st = store(sim)
    ca_key = serialization.load_pem_private_key(st.ca_key_pem, password=None)
    offline = kind == "Offline"
    # KeyUsage(digital_signature, content_commitment (= non-repudiation), key_encipherment, ...)
    usage = x509.KeyUsage(not offline, offline, False, False, False, False, False, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_certificate(sim).subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(valid_from)
        .not_valid_after(valid_to)
        .add_extension(usage, critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _issue(
    sim: Simulator,
    csr: x509.CertificateSigningRequest,
    name: str,
    kind: str,
    owner: tuple[str, str],
    valid_from: datetime,
    now: datetime,
) -> IssuedCertificate:
    st = store(sim)
    while True:
        serial = secrets.randbits(63) | (1 << 62)  # 16 hex digits, positive
        if f"{serial:016X}" not in st.certificates:
            break
    der = _sign(sim, csr.subject, csr.public_key(), serial, kind, valid_from, valid_from + VALIDITY)
    issued = IssuedCertificate(f"{serial:016X}", name, kind, owner, der, now)
    st.certificates[issued.serial] = issued
    return issued


def get_enrollment(sim: Simulator, req: Request) -> Response:
    ref = req.path_params["referenceNumber"]
    enrollment = store(sim).enrollments.get(ref)
    if enrollment is None or enrollment.owner != _owner(req):
        raise ApiError.bad_request(
            25005, "Wniosek certyfikacyjny o podanym numerze referencyjnym nie istnieje."
        )
    if sim.clock.now() - enrollment.requested > ENROLLMENT_RETENTION:
        raise ApiError.gone(f"Status wniosku certyfikacyjnego {ref} nie jest już dostępny.")
    code = enrollment.code
    if (sim.clock.now() - enrollment.requested).total_seconds() < sim.config.auth_delay:
        code = 100
    descriptions = {100: "Wniosek przyjęty do realizacji", 200: "Wniosek obsłużony (certyfikat wygenerowany)"}
    status: dict[str, Any] = {"code": code, "description": descriptions.get(code, "Wniosek odrzucony")}
    if code >= 400 and enrollment.details:
        status["details"] = enrollment.details
    out: dict[str, Any] = {"requestDate": iso(enrollment.requested), "status": status}
    if code == 200:
        out["certificateSerialNumber"] = enrollment.serial
    return Response.json(out)


def post_retrieve(sim: Simulator, req: Request) -> Response:
    body = req.json()
    serials = body.get("certificateSerialNumbers") if isinstance(body, dict) else None
    if not isinstance(serials, list) or not serials or not all(isinstance(s, str) for s in serials):
        raise _validation("Wymagane pole certificateSerialNumbers (lista numerów seryjnych).")
    st = store(sim)
    found = [st.certificates[s] for s in dict.fromkeys(serials) if s in st.certificates]
    return Response.json(
        {
            "certificates": [
                {
                    "certificate": base64.b64encode(c.certificate_der).decode(),
                    "certificateName": c.name,
                    "certificateSerialNumber": c.serial,
                    "certificateType": c.kind,
                }
                for c in found
                if c.owner == _owner(req)
            ]
        }
    )


def _list_item(sim: Simulator, c: IssuedCertificate) -> dict:
    cert = c.certificate
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    item = {
        "certificateSerialNumber": c.serial,
        "name": c.name,
        "type": c.kind,
        "commonName": str(common[0].value) if common else "",
        "status": _status(sim, c),
        "subjectIdentifier": {"type": c.owner[0], "value": c.owner[1]},
        "validFrom": iso(cert.not_valid_before_utc),
        "validTo": iso(cert.not_valid_after_utc),
        "requestDate": iso(c.requested),
    }
    if c.last_use:
        item["lastUseDate"] = iso(c.last_use)
    return item


def post_query(sim: Simulator, req: Request) -> Response:
    body = req.json() if req.body else {}
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    try:
        size = int(req.q("pageSize") or 10)
        offset = int(req.q("pageOffset") or 0)
        expires_after = parse_datetime(str(body["expiresAfter"])) if body.get("expiresAfter") else None
    except ValueError:
        raise _validation("Nieprawidłowe parametry zapytania.") from None
    if not 10 <= size <= 50 or offset < 0:
        raise _validation("pageSize musi mieścić się w zakresie 10-50.")
    found = []
    for c in store(sim).certificates.values():
        if c.owner != _owner(req):
            continue
        if body.get("certificateSerialNumber") and c.serial != body["certificateSerialNumber"]:
            continue
        if body.get("name") and body["name"].lower() not in c.name.lower():
            continue
        if body.get("type") and c.kind != body["type"]:
            continue
        if body.get("status") and _status(sim, c) != body["status"]:
            continue
        if expires_after and c.certificate.not_valid_after_utc <= expires_after:
            continue
        found.append(c)
    found.sort(key=lambda c: (c.requested, c.serial), reverse=True)  # requestDate descending
    page = found[offset * size : offset * size + size]
    return Response.json(
        {"certificates": [_list_item(sim, c) for c in page], "hasMore": offset * size + size < len(found)}
    )


def post_revoke(sim: Simulator, req: Request) -> Response:
    body = req.json() if req.body else {}
    reason = (body or {}).get("revocationReason") or "Unspecified"
    if reason not in ("Unspecified", "Superseded", "KeyCompromise"):
        raise _validation("Nieprawidłowy powód odwołania.")
    with sim.lock:
        cert = _own_certificate(sim, req, req.path_params["certificateSerialNumber"])
        if _status(sim, cert) != "Active":
            raise ApiError.bad_request(
                25009,
                "Nie można odwołać wskazanego certyfikatu, ponieważ jest już odwołany, zablokowany lub nieważny.",
            )
        cert.revoked, cert.revocation_reason = sim.clock.now(), reason
    return Response.empty()


def put_testdata_certificate(sim: Simulator, req: Request) -> Response:
    """TEST only (API 2.7.0): shorten a certificate's validity, to play its expiry."""
    body = req.json()
    try:
        valid_to = parse_datetime(str(body["validTo"]))
    except (KeyError, TypeError, ValueError):
        raise _validation("Wymagane pole validTo (data i czas).") from None
    with sim.lock:
        record = _own_certificate(sim, req, req.path_params["serialNumber"])
        cert = record.certificate
        if valid_to > cert.not_valid_after_utc:
            raise _validation("Nowa data ważności nie może być późniejsza niż obecna.")
        if valid_to <= cert.not_valid_before_utc:
            raise _validation("Nowa data ważności musi być późniejsza niż początek ważności certyfikatu.")
        record.certificate_der = _sign(
            sim,
            cert.subject,
            cert.public_key(),
            cert.serial_number,
            record.kind,
            cert.not_valid_before_utc,
            valid_to,
        )
    return Response(200)


def get_subject_limits(sim: Simulator, req: Request) -> Response:
    max_enrollments, max_certificates = _limits(sim, _owner(req))
    return Response.json(
        {
            "enrollment": {"maxEnrollments": max_enrollments},
            "certificate": {"maxCertificates": max_certificates},
        }
    )


def post_subject_limits(sim: Simulator, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    current = _limits(sim, _owner(req))
    try:
        enrollments = int((body.get("enrollment") or {}).get("maxEnrollments", current[0]))
        certificates = int((body.get("certificate") or {}).get("maxCertificates", current[1]))
    except (TypeError, ValueError):
        raise _validation("Limity muszą być liczbami całkowitymi.") from None
    if enrollments < 0 or certificates < 0:
        raise _validation("Limity nie mogą być ujemne.")
    with sim.lock:
        store(sim).limits[_owner(req)] = (enrollments, certificates)
    return Response(200)


def delete_subject_limits(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        store(sim).limits.pop(_owner(req), None)
    return Response(200)


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any) -> None:
        sim.router.add(method, path, functools.partial(handler, sim))

    add("GET", "/certificates/limits", get_limits)
    add("GET", "/certificates/enrollments/data", get_enrollment_data)
    add("POST", "/certificates/enrollments", post_enrollment)
    add("GET", "/certificates/enrollments/{referenceNumber}", get_enrollment)
    add("POST", "/certificates/retrieve", post_retrieve)
    add("POST", "/certificates/query", post_query)
    add("POST", "/certificates/{certificateSerialNumber}/revoke", post_revoke)
    add("PUT", "/testdata/certificates/{serialNumber}", put_testdata_certificate)
    add("GET", "/limits/subject", get_subject_limits)
    add("POST", "/testdata/limits/subject/certificate", post_subject_limits)
    add("DELETE", "/testdata/limits/subject/certificate", delete_subject_limits)
