"""Authentication, KSeF tokens, public keys, limits and the TEST data endpoints of the simulator.

Permissions follow KSeF TEST: a company seal (``VATPL-<NIP>``) or a personal certificate (``TINPL-<NIP>``)
authenticating in the context of its own NIP is the owner (all permissions); anyone else (a PESEL
certificate, a fingerprint) needs a grant in that context (``/testdata/person``, ``/testdata/permissions``).
A KSeF token carries the permissions it was created with and works only in its own context.
"""

from __future__ import annotations

import binascii
import functools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..crypto import USAGE_KSEF_TOKEN, b64decode
from ..ids import INTERNAL_ID_PATTERN, is_valid_nip, make_reference_number
from .app import AuthContext, Simulator
from .server import ApiError, Request, Response, iso

ALL_PERMISSIONS = (
    "InvoiceRead",
    "InvoiceWrite",
    "CredentialsRead",
    "CredentialsManage",
    "SubunitManage",
    "EnforcementOperations",
    "Introspection",
    "CollectiveIdentifierManage",  # API 2.7.0
)
AUTH_STATUS = {
    100: "Uwierzytelnianie w toku",
    200: "Uwierzytelnianie zakończone sukcesem",
    415: "Uwierzytelnianie zakończone niepowodzeniem",
    425: "Uwierzytelnianie unieważnione",
    450: "Uwierzytelnianie zakończone niepowodzeniem z powodu błędnego tokenu",
    460: "Uwierzytelnianie zakończone niepowodzeniem z powodu błędu certyfikatu",
    470: "Uwierzytelnianie zakończone niepowodzeniem",
    480: "Uwierzytelnianie zablokowane",
}
METHODS = {
    "Token": {"category": "Token", "code": "token.ksef", "displayName": "Token KSeF"},
    "QualifiedSeal": {
        "category": "XadesSignature",
        "code": "seal.qualified",
        "displayName": "Pieczęć kwalifikowana",
    },
    "QualifiedSignature": {
        "category": "XadesSignature",
        "code": "signature.qualified",
        "displayName": "Podpis kwalifikowany",
    },
    "PersonalSignature": {
        "category": "XadesSignature",
        "code": "signature.personal",
        "displayName": "Podpis osobisty",
    },
    "InternalCertificate": {
        "category": "XadesSignature",
        "code": "certificate.ksef",
        "displayName": "Certyfikat KSeF",
    },
}
TOKEN_MAX_AGE_DAYS = 7  # auth operation statuses are kept 7 days, then 410
#: the day KSeF stopped sending ``authenticationMethod`` (changelog 2.1.0)
AUTHENTICATION_METHOD_REMOVED = datetime(2026, 11, 16, tzinfo=timezone.utc)


@dataclass
class AuthOperation:
    reference: str
    start: datetime
    context_type: str
    context_value: str
    subject_type: str
    subject_value: str
    method: str
    final_code: int
    final_details: list[str]
    permissions: frozenset[str]
    allowed_ips: dict | None = None
    redeemed: bool = False
    revoked: bool = False
    last_refresh: datetime | None = None
    refresh_valid_until: datetime | None = None
    #: the certificate of a XAdES authentication (KSeF certificates are requested for its subject data)
    certificate_der: bytes | None = None


@dataclass
class KsefToken:
    reference: str
    secret: str
    context_type: str
    context_value: str
    permissions: list[str]
    description: str
    author_type: str
    author_value: str
    created: datetime
    status: str = "Active"
    last_use: datetime | None = None


@dataclass
class AuthStore:
    challenges: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    operations: dict[str, AuthOperation] = field(default_factory=dict)
    tokens: dict[str, KsefToken] = field(default_factory=dict)
    #: (context type, context value) -> {(subject type, subject value): permissions}
    grants: dict[tuple[str, str], dict[tuple[str, str], set[str]]] = field(default_factory=dict)
    blocked: set[tuple[str, str]] = field(default_factory=set)
    attachments: set[str] = field(default_factory=set)
    subjects: dict[str, dict] = field(default_factory=dict)
    session_limits: dict[str, dict] = field(default_factory=dict)


def store(sim: Simulator) -> AuthStore:
    return sim.store("auth", AuthStore)  # type: ignore[no-any-return]


def _ctx_nip(value: str) -> str:
    return value.split("-", 1)[0]


def permissions_for(
    sim: Simulator, context_type: str, context_value: str, subject_type: str, subject_value: str
) -> frozenset[str]:
    """The permissions a subject holds in a context (owner: all; else the TEST grants and the API grants)."""
    if subject_type == "Nip" and context_type == "Nip" and subject_value == context_value:
        return frozenset(ALL_PERMISSIONS)
    from .permissions_api import granted as api_granted

    by_api = api_granted(sim, (context_type, context_value), (subject_type, subject_value))
    if by_api:
        return frozenset(
            by_api
            | set(
                store(sim).grants.get((context_type, context_value), {}).get((subject_type, subject_value))
                or ()
            )
        )
    granted = store(sim).grants.get((context_type, context_value), {}).get((subject_type, subject_value))
    if granted is None and context_type == "InternalId":
        granted = (
            store(sim).grants.get(("Nip", _ctx_nip(context_value)), {}).get((subject_type, subject_value))
        )
        if granted is None and subject_type == "Nip" and subject_value == _ctx_nip(context_value):
            return frozenset(ALL_PERMISSIONS)
    return frozenset(granted or ())


def _extra(sim: Simulator, name: str, factory: Any) -> Any:
    """A store field added after state files were first written (older pickles lack it)."""
    return store(sim).__dict__.setdefault(name, factory())


def attachment_revoked(sim: Simulator, nip: str) -> datetime | None:
    return _extra(sim, "attachment_revoked", dict).get(nip)  # type: ignore[no-any-return]


def attachments_allowed(sim: Simulator, nip: str) -> bool:
    """Invoices with attachments allowed (``/testdata/attachment``; until the revocation's end date)."""
    revoked = attachment_revoked(sim, nip)
    return nip in store(sim).attachments and (revoked is None or revoked > sim.clock.now())


def is_bailiff(sim: Simulator, nip: str) -> bool:
    return nip in _extra(sim, "bailiffs", set)


def _issue_tokens(sim: Simulator, op: AuthOperation) -> dict:
    now = sim.clock.now()
    access_until = now + timedelta(seconds=sim.config.access_token_ttl)
    refresh_until = now + timedelta(seconds=sim.config.refresh_token_ttl)
    op.refresh_valid_until = refresh_until
    return {
        "accessToken": {
            "token": sim.tokens.issue("access", op.reference, access_until),
            "validUntil": iso(access_until),
        },
        "refreshToken": {
            "token": sim.tokens.issue("refresh", op.reference, refresh_until),
            "validUntil": iso(refresh_until),
        },
    }


def issue_test_tokens(
    sim: Simulator, nip: str, permissions: list[str] | None = None, context_type: str = "Nip"
) -> dict:
    """Access and refresh tokens for ``nip`` without going through HTTP (tests, control API)."""
    now = sim.clock.now()
    op = AuthOperation(
        reference=make_reference_number("AU", now),
        start=now,
        context_type=context_type,
        context_value=nip,
        subject_type="Nip",
        subject_value=_ctx_nip(nip),
        method="Token",
        final_code=200,
        final_details=[],
        permissions=frozenset(permissions or ALL_PERMISSIONS),
        redeemed=True,
    )
    with sim.lock:
        store(sim).operations[op.reference] = op
        tokens = _issue_tokens(sim, op)
    return {**tokens, "referenceNumber": op.reference}


def mint_ksef_token(
    sim: Simulator, nip: str, permissions: list[str] | None = None, description: str = ""
) -> dict:
    """A ready KSeF token for ``nip`` (simulator-only shortcut for demos and integration tests)."""
    now = sim.clock.now()
    ref = make_reference_number("EC", now)
    secret = f"{ref}|nip-{nip}|{secrets.token_hex(32)}"
    with sim.lock:
        store(sim).tokens[ref] = KsefToken(
            ref,
            secret,
            "Nip",
            nip,
            list(permissions or ALL_PERMISSIONS),
            description or "Token symulatora",
            "Nip",
            nip,
            now,
        )
    return {"referenceNumber": ref, "token": secret}


def auth_context_for(sim: Simulator, claims: dict) -> AuthContext:
    op = store(sim).operations.get(claims.get("ref", ""))
    # Revoking an auth session kills its refresh token; access tokens stay valid until they expire (auth/sesje.md).
    if op is None or op.revoked and claims.get("typ") == "refresh":
        raise ApiError.unauthorized("Sesja uwierzytelnienia została unieważniona lub nie istnieje.")
    if claims.get("typ") == "access" and sim.faults.token_expired(claims.get("iat", 0)):
        raise ApiError.unauthorized("Token wygasł.")
    return AuthContext(
        token_kind=claims["typ"],
        auth_reference=op.reference,
        context_type=op.context_type,
        context_value=op.context_value,
        subject_type=op.subject_type,
        subject_value=op.subject_value,
        permissions=op.permissions,
        allowed_ips=op.allowed_ips,
    )


# -- handlers -----------------------------------------------------------------------------------------------


def _validation(details: str) -> ApiError:
    return ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", [details])


def _check_context(ctx: Any) -> tuple[str, str]:
    if not isinstance(ctx, dict) or ctx.get("type") not in ("Nip", "InternalId", "NipVatUe", "PeppolId"):
        raise _validation("Nieprawidłowy identyfikator kontekstu.")
    value = str(ctx.get("value") or "")
    if ctx["type"] == "Nip" and not is_valid_nip(value):
        raise ApiError.bad_request(
            21117, "Nieprawidłowy identyfikator podmiotu dla wskazanego typu kontekstu."
        )
    if ctx["type"] == "InternalId" and not INTERNAL_ID_PATTERN.match(value):
        raise ApiError.bad_request(
            21117, "Nieprawidłowy identyfikator podmiotu dla wskazanego typu kontekstu."
        )
    return ctx["type"], value


def _take_challenge(sim: Simulator, challenge: str) -> int:
    with sim.lock:
        entry = store(sim).challenges.pop(challenge, None)
    if entry is None:
        raise ApiError.bad_request(21111, "Nieprawidłowe wyzwanie autoryzacyjne.")
    timestamp_ms, created = entry
    if sim.clock.now() - created > timedelta(seconds=sim.config.challenge_ttl):
        raise ApiError.bad_request(21111, "Nieprawidłowe wyzwanie autoryzacyjne.", ["Wyzwanie wygasło."])
    return timestamp_ms


def _start(sim: Simulator, op: AuthOperation) -> Response:
    with sim.lock:
        store(sim).operations[op.reference] = op
    until = sim.clock.now() + timedelta(seconds=sim.config.authentication_token_ttl)
    token = sim.tokens.issue("authentication", op.reference, until)
    return Response.json(
        {"referenceNumber": op.reference, "authenticationToken": {"token": token, "validUntil": iso(until)}},
        202,
    )


def _decide(
    sim: Simulator, ctx: tuple[str, str], subject: tuple[str, str]
) -> tuple[int, list[str], frozenset[str]]:
    if ctx in store(sim).blocked:
        return 480, ["Uwierzytelnianie w tym kontekście zostało zablokowane."], frozenset()
    if subject[0] == "Pesel" and subject[1] in _extra(sim, "deceased", set):
        return 470, ["Próba wykorzystania metod autoryzacyjnych osoby zmarłej."], frozenset()
    perms = permissions_for(sim, ctx[0], ctx[1], subject[0], subject[1])
    if not perms:
        return 415, ["Brak przypisanych uprawnień w kontekście."], frozenset()
    return 200, [], perms


def post_challenge(sim: Simulator, req: Request) -> Response:
    now = sim.clock.now()
    challenge = make_reference_number("CR", now)
    ts = int(now.timestamp() * 1000)
    with sim.lock:
        chal = store(sim).challenges
        chal[challenge] = (ts, now)
        if len(chal) > 10000:  # forget the oldest
            for key in list(chal)[:1000]:
                chal.pop(key, None)
    return Response.json(
        {"challenge": challenge, "timestamp": iso(now), "timestampMs": ts, "clientIp": req.client_ip}
    )


def post_ksef_token(sim: Simulator, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not body.get("challenge") or not body.get("encryptedToken"):
        raise _validation("Wymagane pola: challenge, contextIdentifier, encryptedToken.")
    ctx = _check_context(body.get("contextIdentifier"))
    key = sim.keys.by_public_key_id(body.get("publicKeyId"), USAGE_KSEF_TOKEN)
    if key is None:
        raise ApiError.bad_request(
            21470,
            "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
            [f"Klucz o identyfikatorze {body.get('publicKeyId')} nie jest wspierany."],
        )
    timestamp_ms = _take_challenge(sim, body["challenge"])
    now = sim.clock.now()
    code, details, token = 450, ["Nieprawidłowy token."], None
    perms: frozenset[str] = frozenset()
    try:
        plain = key.decrypt(b64decode(body["encryptedToken"])).decode("utf-8")
        secret, _, ts = plain.rpartition("|")
        ref = secret.split("|", 1)[0]
        token = store(sim).tokens.get(ref)
        if ts != str(timestamp_ms):
            details = ["Nieprawidłowy czas tokena."]
        elif token is None or not secrets.compare_digest(token.secret, secret):
            details = ["Nieprawidłowy token."]
        elif token.status != "Active":
            details = ["Token jest nieaktywny lub unieważniony."]
        elif (token.context_type, token.context_value) != ctx and not (
            ctx[0] == "InternalId" and _ctx_nip(ctx[1]) == token.context_value
        ):
            details = ["Token nie jest przypisany do wskazanego kontekstu."]
        else:
            code, details = _decide(sim, ctx, ("Nip", token.context_value))[:2]
            perms = frozenset(token.permissions) if code == 200 else frozenset()
            token.last_use = now
    except (ValueError, binascii.Error, UnicodeDecodeError):
        details = ["Nie można odszyfrować tokena."]
    op = AuthOperation(
        make_reference_number("AU", now),
        now,
        ctx[0],
        ctx[1],
        "Token",
        token.reference if token else "-",
        "Token",
        code,
        details,
        perms,
        (body.get("authorizationPolicy") or {}).get("allowedIps"),
    )
    return _start(sim, op)


def post_xades(sim: Simulator, req: Request) -> Response:
    from ..xades import XadesVerificationError, parse_auth_token_request, verify_xades

    if not req.body:
        raise ApiError.bad_request(21001, "Nieczytelna treść.")
    try:
        verified = verify_xades(req.body)
    except XadesVerificationError as exc:
        raise ApiError.bad_request(exc.code, exc.message) from None
    try:
        data = parse_auth_token_request(verified.root)
    except ValueError as exc:
        raise ApiError.bad_request(21401, "Dokument nie jest zgodny ze schemą (xsd).", [str(exc)]) from None
    ctx = _check_context({"type": data.context_type, "value": data.context_value})
    _take_challenge(sim, data.challenge)
    from ..certificates import CertificateKind, Credential
    from .certificates_api import issued_by_simulator

    cert = verified.certificate
    now = sim.clock.now()
    kind = Credential(cert, None).kind  # type: ignore[arg-type]  # kind reads the certificate only
    code, details = 460, ["Certyfikat jest nieważny."]
    perms: frozenset[str] = frozenset()
    ksef_cert = issued_by_simulator(sim, cert)  # a KSeF certificate: its owner is who authenticates
    valid = ksef_cert.certificate if ksef_cert is not None else cert  # KSeF's record of its validity
    if not (valid.not_valid_before_utc <= now <= valid.not_valid_after_utc):
        pass
    elif ksef_cert is not None and ksef_cert.revoked:
        details = ["Certyfikat odwołany."]
    elif ksef_cert is not None and ksef_cert.kind != "Authentication":
        details = ["Niepoprawny certyfikat."]  # an Offline certificate signs KOD II only
    else:
        if ksef_cert is not None:
            subject = ksef_cert.owner
            ksef_cert.last_use = now
        elif data.subject_identifier_type == "certificateFingerprint":
            subject = ("Fingerprint", cert.fingerprint(_sha256()).hex().upper())
        elif kind in (CertificateKind.COMPANY_SEAL, CertificateKind.PERSONAL_NIP):
            subject = ("Nip", Credential(cert, None).subject_nip or "")  # type: ignore[arg-type]
        elif kind == CertificateKind.PERSONAL_PESEL:
            subject = ("Pesel", Credential(cert, None).subject_pesel or "")  # type: ignore[arg-type]
        else:
            raise ApiError.bad_request(
                21406,
                "Konflikt podpisu i typu uwierzytelnienia.",
                ["Certyfikat nie zawiera identyfikatora podmiotu."],
            )
        code, details, perms = _decide(sim, ctx, subject)
    method = {
        CertificateKind.COMPANY_SEAL: "QualifiedSeal",
        CertificateKind.PERSONAL_NIP: "QualifiedSignature",
        CertificateKind.PERSONAL_PESEL: "PersonalSignature",
    }.get(kind, "QualifiedSignature")
    if ksef_cert is not None:
        method = "InternalCertificate"
    subj = subject if code != 460 else ("Fingerprint", "")
    op = AuthOperation(
        make_reference_number("AU", now),
        now,
        ctx[0],
        ctx[1],
        subj[0],
        subj[1],
        method,
        code,
        details,
        perms,
        data.allowed_ips,
        certificate_der=cert.public_bytes(_der()),
    )
    return _start(sim, op)


def _der() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.DER


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _op_status(sim: Simulator, op: AuthOperation) -> dict:
    now = sim.clock.now()
    code = op.final_code
    if (now - op.start).total_seconds() < sim.config.auth_delay:
        code = 100
    status: dict[str, Any] = {"code": code, "description": AUTH_STATUS.get(code, "Uwierzytelnianie")}
    if code >= 400 and op.final_details:
        status["details"] = op.final_details
    out: dict[str, Any] = {"startDate": iso(op.start)}
    if now < AUTHENTICATION_METHOD_REMOVED:  # gone since 2026-11-16: authenticationMethodInfo says it
        out["authenticationMethod"] = op.method
    out["authenticationMethodInfo"] = METHODS.get(op.method, METHODS["QualifiedSignature"])
    out["status"] = status
    if code == 200:
        out["isTokenRedeemed"] = op.redeemed
        if op.last_refresh:
            out["lastTokenRefreshDate"] = iso(op.last_refresh)
        if op.refresh_valid_until:
            out["refreshTokenValidUntil"] = iso(op.refresh_valid_until)
    return out


def get_auth_status(sim: Simulator, req: Request) -> Response:
    ref = req.path_params["referenceNumber"]
    op = store(sim).operations.get(ref)
    if op is None or op.reference != req.auth.auth_reference:
        raise ApiError.bad_request(21304, "Brak uwierzytelnienia.", [f"Operacja {ref} nie istnieje."])
    if sim.clock.now() - op.start > timedelta(days=TOKEN_MAX_AGE_DAYS):
        raise ApiError.gone(f"Status operacji uwierzytelniania {ref} nie jest już dostępny.")
    return Response.json(_op_status(sim, op))


def post_redeem(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        op = store(sim).operations[req.auth.auth_reference]
        code = _op_status(sim, op)["status"]["code"]
        if op.redeemed:
            raise ApiError.bad_request(
                21301,
                "Brak autoryzacji.",
                [f"Tokeny dla operacji uwierzytelniania {op.reference} zostały już pobrane."],
            )
        if code != 200:
            raise ApiError.bad_request(
                21301,
                "Brak autoryzacji.",
                [f"Status uwierzytelniania ({code}) nie pozwala na pobranie tokenów."],
            )
        op.redeemed = True
        tokens = _issue_tokens(sim, op)
    return Response.json(tokens)


def post_refresh(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        op = store(sim).operations[req.auth.auth_reference]
        now = sim.clock.now()
        until = now + timedelta(seconds=sim.config.access_token_ttl)
        op.last_refresh = now
        token = sim.tokens.issue("access", op.reference, until)
    return Response.json({"accessToken": {"token": token, "validUntil": iso(until)}})


def _paginate(
    req: Request, items: list[Any], default: int, low: int, high: int
) -> tuple[list[Any], str | None]:
    try:
        size = int(req.q("pageSize") or default)
        start = int(req.headers.get("x-continuation-token") or 0)
    except ValueError:
        raise ApiError.bad_request(21418, "Przekazany token kontynuacji ma nieprawidłowy format.") from None
    if not low <= size <= high:
        raise _validation(f"pageSize musi mieścić się w zakresie {low}-{high}.")
    page = items[start : start + size]
    nxt = str(start + size) if start + size < len(items) else None
    return page, nxt


def get_auth_sessions(sim: Simulator, req: Request) -> Response:
    ctx = (req.auth.context_type, req.auth.context_value)
    ops = [
        o
        for o in store(sim).operations.values()
        if (o.context_type, o.context_value) == ctx and o.redeemed and not o.revoked
    ]
    page, nxt = _paginate(req, ops, 10, 10, 100)
    items = []
    for op in page:
        item = _op_status(sim, op)
        item["referenceNumber"] = op.reference
        item["isCurrent"] = op.reference == req.auth.auth_reference
        items.append(item)
    body: dict[str, Any] = {"items": items}
    if nxt:
        body["continuationToken"] = nxt
    return Response.json(body)


def delete_current_session(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        store(sim).operations[req.auth.auth_reference].revoked = True
    return Response.empty()


def delete_session(sim: Simulator, req: Request) -> Response:
    ref = req.path_params["referenceNumber"]
    with sim.lock:
        op = store(sim).operations.get(ref)
        if op is None or (op.context_type, op.context_value) != (
            req.auth.context_type,
            req.auth.context_value,
        ):
            raise ApiError.bad_request(21304, "Brak uwierzytelnienia.", [f"Sesja {ref} nie istnieje."])
        op.revoked = True
    return Response.empty()


def get_public_keys(sim: Simulator, req: Request) -> Response:
    return Response.json([k.to_json() for k in sim.keys.keys])


# -- KSeF tokens --------------------------------------------------------------------------------------------


def _token_json(t: KsefToken) -> dict:
    out: dict[str, Any] = {
        "referenceNumber": t.reference,
        "authorIdentifier": {"type": t.author_type, "value": t.author_value},
        "contextIdentifier": {"type": t.context_type, "value": t.context_value},
        "description": t.description,
        "requestedPermissions": t.permissions,
        "dateCreated": iso(t.created),
        "status": t.status,
    }
    if t.last_use:
        out["lastUseDate"] = iso(t.last_use)
    return out


def post_token(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    body = req.json()
    perms = body.get("permissions") if isinstance(body, dict) else None
    description = (body or {}).get("description") or ""
    if not perms or any(p not in ALL_PERMISSIONS for p in perms) or not 5 <= len(description) <= 256:
        raise _validation("Wymagane: permissions (lista uprawnień) oraz description (5-256 znaków).")
    if req.auth.context_type not in ("Nip", "InternalId"):
        raise ApiError.bad_request(26002, "Nie można wygenerować tokena dla obecnego typu kontekstu.")
    minted = mint_ksef_token(sim, req.auth.context_value, perms, description)
    with sim.lock:
        tok = store(sim).tokens[minted["referenceNumber"]]
        tok.author_type = "Pesel" if req.auth.subject_type == "Pesel" else "Nip"
        tok.author_value = req.auth.subject_value
    return Response.json(minted, 202)


def get_tokens(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead")
    statuses = set(req.q_all("status"))
    desc = req.q("description")
    items = [
        t
        for t in store(sim).tokens.values()
        if t.context_value == req.auth.context_value
        and (not statuses or t.status in statuses)
        and (not desc or desc.lower() in t.description.lower())
    ]
    page, nxt = _paginate(req, items, 10, 10, 100)
    body: dict[str, Any] = {"tokens": [_token_json(t) for t in page]}
    if nxt:
        body["continuationToken"] = nxt
    return Response.json(body)


def _own_token(sim: Simulator, req: Request) -> KsefToken:
    t = store(sim).tokens.get(req.path_params["referenceNumber"])
    if t is None or t.context_value != req.auth.context_value:
        raise ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", ["Token nie istnieje."])
    return t


def get_token(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead")
    return Response.json(_token_json(_own_token(sim, req)))


def delete_token(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage")
    with sim.lock:
        _own_token(sim, req).status = "Revoked"
    return Response.empty()


# -- limits and TEST data -----------------------------------------------------------------------------------


SESSION_LIMITS = {"maxInvoiceSizeInMB": 1, "maxInvoiceWithAttachmentSizeInMB": 3, "maxInvoices": 10000}
#: the most invoices in one collective identifier (API 2.7.0: 500; ``collectiveIdentifier`` of 2.9.0)
COLLECTIVE_IDENTIFIER_LIMITS = {"maxInvoices": 500}


def context_limits(sim: Simulator, context_value: str) -> dict:
    """The effective limits of a context (``GET /limits/context``): the TEST override, else the defaults."""
    override = store(sim).session_limits.get(context_value) or {}
    return {
        "onlineSession": dict(override.get("onlineSession") or SESSION_LIMITS),
        "batchSession": dict(override.get("batchSession") or SESSION_LIMITS),
        "collectiveIdentifier": dict(override.get("collectiveIdentifier") or COLLECTIVE_IDENTIFIER_LIMITS),
    }


def get_context_limits(sim: Simulator, req: Request) -> Response:
    return Response.json(context_limits(sim, req.auth.context_value))


def get_rate_limits(sim: Simulator, req: Request) -> Response:
    return Response.json(sim.rate_limiter.limits())


def post_rate_limits(sim: Simulator, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("rateLimits"), dict):
        raise _validation("Wymagane pole rateLimits.")
    sim.rate_limiter.set_limits(body["rateLimits"])
    return Response(200)


def delete_rate_limits(sim: Simulator, req: Request) -> Response:
    sim.rate_limiter.reset()
    return Response(200)


def post_rate_limits_production(sim: Simulator, req: Request) -> Response:
    sim.rate_limiter.set_production()
    return Response(200)


def post_session_limits(sim: Simulator, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or "onlineSession" not in body or "batchSession" not in body:
        raise _validation("Wymagane pola onlineSession i batchSession.")
    override = {k: body[k] for k in ("onlineSession", "batchSession", "collectiveIdentifier") if k in body}
    for name, value in override.items():
        if not isinstance(value, dict) or any(
            not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in value.values()
        ):
            raise _validation(f"Nieprawidłowe limity {name}.")
    with sim.lock:
        store(sim).session_limits[req.auth.context_value] = override
    return Response(200)


def delete_session_limits(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        store(sim).session_limits.pop(req.auth.context_value, None)
    return Response(200)


def _grant(sim: Simulator, ctx: tuple[str, str], subject: tuple[str, str], perms: set[str]) -> None:
    with sim.lock:
        store(sim).grants.setdefault(ctx, {}).setdefault(subject, set()).update(perms)


def post_person(sim: Simulator, req: Request) -> Response:
    body = req.json()
    nip, pesel = str(body.get("nip") or ""), str(body.get("pesel") or "")
    if not is_valid_nip(nip) or len(pesel) != 11 or not pesel.isdigit():
        raise _validation("Nieprawidłowy NIP lub PESEL.")
    _test_description(body)
    _grant(sim, ("Nip", nip), ("Pesel", pesel), set(ALL_PERMISSIONS))  # the owner (and a bailiff's office)
    _grant(sim, ("Nip", nip), ("Nip", nip), set(ALL_PERMISSIONS))
    with sim.lock:
        if body.get("isBailiff"):
            _extra(sim, "bailiffs", set).add(nip)
        if body.get("isDeceased"):
            _extra(sim, "deceased", set).add(pesel)
    return Response(200)


def _test_description(body: dict) -> None:
    text = body.get("description")
    if not isinstance(text, str) or not 5 <= len(text) <= 256:
        raise _validation("Pole description musi mieć od 5 do 256 znaków.")


def post_person_remove(sim: Simulator, req: Request) -> Response:
    nip = str(req.json().get("nip") or "")
    with sim.lock:
        grants = store(sim).grants.get(("Nip", nip), {})
        for subject in [s for s in grants if s[0] == "Pesel"]:
            grants.pop(subject)
    return Response(200)


def post_subject(sim: Simulator, req: Request) -> Response:
    body = req.json()
    nip = str(body.get("subjectNip") or "")
    if not is_valid_nip(nip):
        raise _validation("Nieprawidłowy NIP.")
    _test_description(body)
    if body.get("subjectType") not in ("EnforcementAuthority", "VatGroup", "JST"):
        raise _validation("Pole subjectType: EnforcementAuthority, VatGroup lub JST.")
    with sim.lock:
        if nip in store(sim).subjects:
            raise ApiError.bad_request(30001, "Podmiot lub osoba już istnieje.")
        store(sim).subjects[nip] = {**body, "_created": sim.clock.now()}
    return Response(200)


def post_subject_remove(sim: Simulator, req: Request) -> Response:
    with sim.lock:
        store(sim).subjects.pop(str(req.json().get("subjectNip") or ""), None)
    return Response(200)


def _identifier(value: Any) -> tuple[str, str]:
    if not isinstance(value, dict) or not value.get("type") or not value.get("value"):
        raise _validation("Nieprawidłowy identyfikator.")
    return str(value["type"]), str(value["value"])


def post_permissions(sim: Simulator, req: Request) -> Response:
    body = req.json()
    ctx = _identifier(body.get("contextIdentifier"))
    subject = _identifier(body.get("authorizedIdentifier"))
    perms = {p.get("permissionType") for p in body.get("permissions") or [] if isinstance(p, dict)}
    if not perms or None in perms:
        raise _validation("Wymagana lista uprawnień.")
    _grant(sim, ctx, subject, {p for p in perms if p})
    return Response(200)


def post_permissions_revoke(sim: Simulator, req: Request) -> Response:
    body = req.json()
    ctx = _identifier(body.get("contextIdentifier"))
    subject = _identifier(body.get("authorizedIdentifier"))
    with sim.lock:
        store(sim).grants.get(ctx, {}).pop(subject, None)
    return Response(200)


def post_attachment(sim: Simulator, req: Request) -> Response:
    nip = str(req.json().get("nip") or "")
    with sim.lock:
        store(sim).attachments.add(nip)
        _extra(sim, "attachment_revoked", dict).pop(nip, None)
    return Response(200)


def post_attachment_revoke(sim: Simulator, req: Request) -> Response:
    """Attachments end now, or at ``expectedEndDate`` (the end of that day in Poland, approximated as UTC)."""
    body = req.json()
    nip = str(body.get("nip") or "")
    end = sim.clock.now()
    if body.get("expectedEndDate"):
        try:
            day = datetime.strptime(str(body["expectedEndDate"]), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise _validation("Nieprawidłowa data expectedEndDate.") from None
        end = max(end, day + timedelta(days=1))
    with sim.lock:
        _extra(sim, "attachment_revoked", dict)[nip] = end
    return Response(200)


def post_block(sim: Simulator, req: Request) -> Response:
    ctx = _identifier(req.json().get("contextIdentifier"))
    with sim.lock:
        store(sim).blocked.add(ctx)
    return Response(200)


def post_unblock(sim: Simulator, req: Request) -> Response:
    ctx = _identifier(req.json().get("contextIdentifier"))
    with sim.lock:
        store(sim).blocked.discard(ctx)
    return Response(200)


def get_attachment_status(sim: Simulator, req: Request) -> Response:
    req.auth.require("CredentialsManage", "CredentialsRead")
    nip = req.auth.context_nip
    out: dict[str, Any] = {"isAttachmentAllowed": attachments_allowed(sim, nip)}
    revoked = attachment_revoked(sim, nip)
    if revoked is not None and nip in store(sim).attachments:
        out["revokedDate"] = iso(revoked)
    return Response.json(out)


def register(sim: Simulator) -> None:
    def add(
        method: str, path: str, handler: Any, auth: str | None = "access", group: str | None = "other"
    ) -> None:
        sim.router.add(method, path, functools.partial(handler, sim), auth=auth, rate_group=group)

    add("POST", "/auth/challenge", post_challenge, None, "anonymous")
    add("POST", "/auth/ksef-token", post_ksef_token, None, "anonymous")
    add("POST", "/auth/xades-signature", post_xades, None, "anonymous")
    add("POST", "/auth/token/redeem", post_redeem, "authentication", "auth")
    add("POST", "/auth/token/refresh", post_refresh, "refresh", "auth")
    add("GET", "/auth/sessions", get_auth_sessions)
    add("DELETE", "/auth/sessions/current", delete_current_session, "access_or_refresh")
    add("DELETE", "/auth/sessions/{referenceNumber}", delete_session)
    add("GET", "/auth/{referenceNumber}", get_auth_status, "authentication", "auth")
    add("GET", "/security/public-key-certificates", get_public_keys, None, "anonymous")
    add("POST", "/tokens", post_token)
    add("GET", "/tokens", get_tokens)
    add("GET", "/tokens/{referenceNumber}", get_token)
    add("DELETE", "/tokens/{referenceNumber}", delete_token)
    add("GET", "/limits/context", get_context_limits)
    add("GET", "/rate-limits", get_rate_limits)
    add("POST", "/testdata/rate-limits", post_rate_limits)
    add("DELETE", "/testdata/rate-limits", delete_rate_limits)
    add("POST", "/testdata/rate-limits/production", post_rate_limits_production)
    add("POST", "/testdata/limits/context/session", post_session_limits)
    add("DELETE", "/testdata/limits/context/session", delete_session_limits)
    add("POST", "/testdata/subject", post_subject, None, "anonymous")
    add("POST", "/testdata/subject/remove", post_subject_remove, None, "anonymous")
    add("POST", "/testdata/person", post_person, None, "anonymous")
    add("POST", "/testdata/person/remove", post_person_remove, None, "anonymous")
    add("POST", "/testdata/permissions", post_permissions, None, "anonymous")
    add("POST", "/testdata/permissions/revoke", post_permissions_revoke, None, "anonymous")
    add("POST", "/testdata/attachment", post_attachment, None, "anonymous")
    add("POST", "/testdata/attachment/revoke", post_attachment_revoke, None, "anonymous")
    add("POST", "/testdata/context/block", post_block, None, "other")
    add("POST", "/testdata/context/unblock", post_unblock, None, "other")
    add("GET", "/permissions/attachments/status", get_attachment_status)
