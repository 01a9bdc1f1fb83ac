"""Authentication workflows: KSeF token and certificate (XAdES), for Nip / InternalId / NipVatUe contexts.

Both end with the client holding an access token and a refresh token; the client refreshes the access token
by itself before it expires. ``logout`` ends the authentication session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .client import KsefClient, Token
from .crypto import USAGE_KSEF_TOKEN, b64, choose_certificate, rsa_oaep_encrypt
from .errors import KsefAuthenticationFailed, KsefUnknownPublicKey
from .ids import INTERNAL_ID_PATTERN, is_valid_nip
from .polling import poll_until_final, status_text

if TYPE_CHECKING:
    from .certificates import Credential

CONTEXT_TYPES = ("Nip", "InternalId", "NipVatUe", "PeppolId")
SUBJECT_IDENTIFIER_TYPES = ("certificateSubject", "certificateFingerprint")


@dataclass(frozen=True)
class ContextIdentifier:
    """The context to authenticate in: ``ContextIdentifier.nip("5265877635")``."""

    type: str
    value: str

    def __post_init__(self) -> None:
        if self.type not in CONTEXT_TYPES:
            raise ValueError(f"context type must be one of {', '.join(CONTEXT_TYPES)}")
        if self.type == "Nip" and not is_valid_nip(self.value):
            raise ValueError(f"{self.value!r} is not a valid NIP (10 digits with a correct checksum)")
        if self.type == "InternalId" and not INTERNAL_ID_PATTERN.match(self.value):
            raise ValueError(f"{self.value!r} is not an internal identifier (NIP-5 digits)")

    @classmethod
    def nip(cls, value: str) -> ContextIdentifier:
        return cls("Nip", value)

    def to_json(self) -> dict:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True)
class AuthResult:
    reference_number: str
    access_token: Token
    refresh_token: Token
    method: dict | None = None


def authenticate_with_ksef_token(
    client: KsefClient,
    ksef_token: str,
    context: ContextIdentifier,
    *,
    allowed_ips: dict | None = None,
    wait_timeout: float = 120.0,
    poll_interval: float = 0.5,
) -> AuthResult:
    """Authenticate with a KSeF token: challenge, encrypt ``token|timestampMs`` (RSA-OAEP), poll, redeem.

    The ``KsefTokenEncryption`` key is cached by the client and fetched again once when KSeF answers 21470.
    """
    if not ksef_token or "\n" in ksef_token:
        raise ValueError("a KSeF token is a non-empty single-line string")
    for attempt in (1, 2):
        challenge = client.auth_challenge()
        cert = choose_certificate(client.public_keys(refresh=attempt == 2), USAGE_KSEF_TOKEN)
        plaintext = f"{ksef_token}|{challenge['timestampMs']}".encode()
        body: dict[str, Any] = {
            "challenge": challenge["challenge"],
            "contextIdentifier": context.to_json(),
            "encryptedToken": b64(rsa_oaep_encrypt(cert.public_key, plaintext)),
            "publicKeyId": cert.public_key_id,
        }
        if allowed_ips:
            body["authorizationPolicy"] = {"allowedIps": allowed_ips}
        try:
            init = client.auth_ksef_token(body)
            break
        except KsefUnknownPublicKey:
            if attempt == 2:
                raise
    return _finish(client, init, wait_timeout, poll_interval)


def authenticate_with_certificate(
    client: KsefClient,
    credential: Credential,
    context: ContextIdentifier,
    *,
    subject_identifier_type: str = "certificateSubject",
    allowed_ips: dict | None = None,
    verify_certificate_chain: bool | None = None,
    wait_timeout: float = 120.0,
    poll_interval: float = 0.5,
    signature_options: dict | None = None,
) -> AuthResult:
    """Authenticate with a certificate: sign an ``AuthTokenRequest`` (XAdES) and send it.

    Works for a company seal, a personal certificate, a personal PESEL certificate used in the company's
    NIP context (KSeF checks that the person holds permissions in that context), and a KSeF certificate of
    type Authentication. ``signature_options`` go to :func:`~ksefnet_core.xades.sign_xades` (e.g.
    ``canonicalization``, ``signature_method``, ``reference_key_info``).
    """
    from .xades import build_auth_token_request, sign_xades

    if subject_identifier_type not in SUBJECT_IDENTIFIER_TYPES:
        raise ValueError(f"subject identifier type must be one of {', '.join(SUBJECT_IDENTIFIER_TYPES)}")
    challenge = client.auth_challenge()
    request_xml = build_auth_token_request(
        challenge["challenge"], context.type, context.value, subject_identifier_type, allowed_ips=allowed_ips
    )
    signed = sign_xades(request_xml, credential, **(signature_options or {}))
    init = client.auth_xades_signature(signed, verify_certificate_chain=verify_certificate_chain)
    return _finish(client, init, wait_timeout, poll_interval)


def wait_for_authentication(
    client: KsefClient,
    reference_number: str,
    authentication_token: str,
    *,
    timeout: float = 120.0,
    poll_interval: float = 0.5,
) -> dict:
    """Poll ``GET /auth/{referenceNumber}`` until the status is final; return it or raise on failure."""
    return poll_until_final(
        lambda: client.auth_status(reference_number, authentication_token),
        what="authentication",
        reference_number=reference_number,
        is_failure=lambda code: code >= 400,
        failure=lambda code, st: KsefAuthenticationFailed(
            f"authentication failed: {status_text(st)}",
            status_code=code,
            reference_number=reference_number,
            ksef_text=status_text(st),
        ),
        timeout=timeout,
        poll_interval=poll_interval,
        max_delay=5.0,
    )


def _finish(client: KsefClient, init: dict, wait_timeout: float, poll_interval: float) -> AuthResult:
    reference = init["referenceNumber"]
    auth_token = init["authenticationToken"]["token"]
    status = wait_for_authentication(
        client, reference, auth_token, timeout=wait_timeout, poll_interval=poll_interval
    )
    tokens = client.auth_redeem(auth_token)
    access = Token.from_json(tokens["accessToken"])
    refresh = Token.from_json(tokens["refreshToken"])
    client.set_tokens(access, refresh, reference)
    return AuthResult(reference, access, refresh, status.get("authenticationMethodInfo"))


def logout(client: KsefClient) -> None:
    """End the current authentication session (``DELETE /auth/sessions/current``) and forget the tokens."""
    try:
        if client.refresh_token is not None or client.access_token is not None:
            client.revoke_current_auth_session()
    finally:
        client.access_token = client.refresh_token = None
