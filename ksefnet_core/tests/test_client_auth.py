"""Authentication with the core client against the simulator over real HTTP (OpenAPI conformance on).

KSeF token in a NIP context step by step (challenge, RSA-OAEP encrypted token, polling, one-time redeem),
access-token refresh (proactive and after a 401), logout, certificate (XAdES) authentication with self-signed
test credentials of every kind and key type, the PESEL context switch that needs a grant, fingerprint
identities, and public-key rotation (21470, then the keys are fetched again).
"""

from __future__ import annotations

import re

import pytest

from ksefnet_core.auth import (
    ContextIdentifier,
    authenticate_with_certificate,
    authenticate_with_ksef_token,
    logout,
    wait_for_authentication,
)
from ksefnet_core.certificates import CertificateKind, generate_test_credential
from ksefnet_core.client import Token
from ksefnet_core.crypto import (
    USAGE_KSEF_TOKEN,
    USAGE_SYMMETRIC_KEY,
    b64,
    choose_certificate,
    rsa_oaep_encrypt,
)
from ksefnet_core.errors import (
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefError,
    KsefForbidden,
    KsefUnauthorized,
    KsefUnknownPublicKey,
)
from ksefnet_core.ids import REFERENCE_NUMBER_PATTERN
from ksefnet_core.sessions import OnlineSession, send_batch

from .client_support import (
    COMPANY,
    NIP,
    PESEL,
    Traffic,
    control,
    invoice,
    mint_token,
    new_client,
    post_testdata,
    token_client,
)

CHALLENGE_PATTERN = re.compile(r"^\d{8}-CR-[0-9A-F]{10}-[0-9A-F]{10}-[0-9A-F]{2}$")


def _token_body(client, token: str, nip: str = NIP) -> dict:
    challenge = client.auth_challenge()
    cert = choose_certificate(client.public_keys(), USAGE_KSEF_TOKEN)
    plaintext = f"{token}|{challenge['timestampMs']}".encode()
    return {
        "challenge": challenge["challenge"],
        "contextIdentifier": {"type": "Nip", "value": nip},
        "encryptedToken": b64(rsa_oaep_encrypt(cert.public_key, plaintext)),
        "publicKeyId": cert.public_key_id,
    }


def _grant(simulator, subject_type: str, subject: str, *permissions: str, context: str = COMPANY) -> None:
    post_testdata(
        simulator,
        "/permissions",
        {
            "contextIdentifier": {"type": "Nip", "value": context},
            "authorizedIdentifier": {"type": subject_type, "value": subject},
            "permissions": [{"permissionType": p, "description": "Uprawnienie testowe"} for p in permissions],
        },
    )


# -- KSeF token ---------------------------------------------------------------------------------------------
def test_ksef_token_authentication_step_by_step_and_redeem_only_once(simulator):
    simulator.app.config.auth_delay = 0.3  # KSeF verifies asynchronously: the status reads 100 first
    client = new_client(simulator)
    token = mint_token(simulator)

    body = _token_body(client, token)
    assert CHALLENGE_PATTERN.match(body["challenge"])
    init = client.auth_ksef_token(body)
    reference = init["referenceNumber"]
    auth_token = init["authenticationToken"]["token"]
    assert REFERENCE_NUMBER_PATTERN.match(reference) and "-AU-" in reference

    assert client.auth_status(reference, auth_token)["status"]["code"] == 100
    status = wait_for_authentication(client, reference, auth_token, timeout=10, poll_interval=0.05)
    assert status["status"]["code"] == 200
    assert status["authenticationMethodInfo"]["category"] == "Token"
    assert status["isTokenRedeemed"] is False

    # The challenge was used up by the first attempt.
    with pytest.raises(KsefBadRequest) as reused:
        client.auth_ksef_token(body)
    assert reused.value.code == 21111

    # The authentication token opens nothing but the status and the redeem.
    with pytest.raises(KsefUnauthorized):
        client.request("GET", "/limits/context", auth=auth_token)

    tokens = client.auth_redeem(auth_token)
    with pytest.raises(KsefBadRequest) as again:
        client.auth_redeem(auth_token)
    assert again.value.http_status == 400 and again.value.code == 21301
    assert any(reference in d for d in again.value.details)
    assert client.auth_status(reference, auth_token)["isTokenRedeemed"] is True

    access, refresh = Token.from_json(tokens["accessToken"]), Token.from_json(tokens["refreshToken"])
    assert access.token != refresh.token and refresh.valid_until > access.valid_until
    client.set_tokens(access, refresh, reference)
    assert client.context_limits()["onlineSession"]["maxInvoices"] > 0
    listed = list(client.auth_sessions(page_size=10))
    assert [s["isCurrent"] for s in listed if s["referenceNumber"] == reference] == [True]


def test_ksef_token_workflow_polls_until_authenticated(simulator):
    simulator.app.config.auth_delay = 0.2
    client = new_client(simulator)
    traffic = Traffic(client)
    result = authenticate_with_ksef_token(
        client, mint_token(simulator), ContextIdentifier.nip(NIP), poll_interval=0.05
    )
    assert client.access_token == result.access_token and client.auth_reference == result.reference_number
    polls = [c.status for c in traffic.calls if c.path == f"/auth/{result.reference_number}"]
    assert len(polls) >= 2 and polls[-1] == 200
    assert [c.path for c in traffic.calls].count("/auth/token/redeem") == 1


OTHER_NIP = "1234563218"


@pytest.mark.parametrize(
    ("foreign", "details"),
    [
        (True, "kontekstu"),  # a valid token, but of another context
        (False, "Nieprawidłowy token"),  # a made-up token
    ],
)
def test_wrong_ksef_token_fails_with_status_450(simulator, foreign, details):
    token = (
        mint_token(simulator, OTHER_NIP)
        if foreign
        else "20260101-EC-0000000000-0000000000-00|nip-5265877635|00"
    )
    client = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_ksef_token(client, token, ContextIdentifier.nip(NIP), poll_interval=0.02)
    assert info.value.code == 450 and info.value.reference_number
    assert details in str(info.value)
    assert client.access_token is None


# -- refresh ------------------------------------------------------------------------------------------------
def test_expired_access_token_is_refreshed_after_401_and_the_call_repeated(simulator):
    client = token_client(simulator)
    old = client.access_token
    simulator.app.clock.advance(simulator.app.config.access_token_ttl + 5)  # KSeF's clock: token expired
    traffic = Traffic(client)
    assert client.context_limits()
    assert traffic.summary() == [
        ("GET", "/limits/context", 401),
        ("POST", "/auth/token/refresh", 200),
        ("GET", "/limits/context", 200),
    ]
    assert client.access_token.token != old.token and client.access_token.valid_until > old.valid_until
    refresh_call = traffic.calls[1]
    assert refresh_call.headers["Authorization"] == f"Bearer {client.refresh_token.token}"


def test_expire_tokens_fault_is_handled_by_one_refresh(simulator):
    client = token_client(simulator)
    control(simulator, "/faults", {"kind": "expire_tokens"})
    traffic = Traffic(client)
    assert client.context_limits()
    assert [c.status for c in traffic.calls] == [401, 200, 200]
    traffic.clear()
    assert client.context_limits()  # the new token is not affected
    assert traffic.summary() == [("GET", "/limits/context", 200)]


def test_access_token_about_to_expire_is_refreshed_before_the_call(simulator):
    simulator.app.config.access_token_ttl = 30  # within the client's 60 s refresh margin
    client = token_client(simulator)
    old = client.access_token
    traffic = Traffic(client)
    assert client.context_limits()
    assert traffic.summary() == [("POST", "/auth/token/refresh", 200), ("GET", "/limits/context", 200)]
    assert client.access_token.token != old.token


def test_expired_refresh_token_surfaces_as_unauthorized(simulator):
    client = token_client(simulator)
    simulator.app.clock.advance(simulator.app.config.refresh_token_ttl + 60)
    traffic = Traffic(client)
    with pytest.raises(KsefUnauthorized) as info:
        client.context_limits()
    assert info.value.path == "/auth/token/refresh" and not info.value.transient
    assert [c.status for c in traffic.calls] == [401, 401]  # one refresh attempt, no loop


# -- logout -------------------------------------------------------------------------------------------------
def test_logout_ends_the_auth_session(simulator):
    client = token_client(simulator)
    witness = token_client(simulator)  # a second authentication in the same context
    reference = client.auth_reference
    kept = new_client(simulator)
    kept.set_tokens(client.access_token, client.refresh_token, reference)  # a copy kept elsewhere

    logout(client)
    assert client.access_token is None and client.refresh_token is None
    with pytest.raises(KsefError, match="not authenticated"):
        client.context_limits()

    active = [s["referenceNumber"] for s in witness.auth_sessions(page_size=10)]
    assert reference not in active and witness.auth_reference in active
    with pytest.raises(KsefUnauthorized):  # the refresh token is dead
        kept.refresh_access_token()
    # KSeF: "aktywne accessTokeny pozostają ważne do upływu ich terminu ważności"...
    assert kept.context_limits()
    # ...and once it expires nothing brings the session back.
    simulator.app.clock.advance(simulator.app.config.access_token_ttl + 5)
    with pytest.raises(KsefUnauthorized) as info:
        kept.context_limits()
    assert info.value.path == "/auth/token/refresh"
    assert witness.context_limits()  # the other authentication is untouched (refreshed by itself)


def test_revoking_another_auth_session_kills_its_refresh_token(simulator):
    first = token_client(simulator)
    second = token_client(simulator)
    first.revoke_auth_session(second.auth_reference)
    with pytest.raises(KsefUnauthorized):
        second.refresh_access_token()
    assert first.refresh_access_token()


# -- certificates (XAdES) -----------------------------------------------------------------------------------
@pytest.mark.parametrize("key_type", ["RSA", "EC"])
@pytest.mark.parametrize(
    ("kind", "method_code"),
    [(CertificateKind.COMPANY_SEAL, "seal.qualified"), (CertificateKind.PERSONAL_NIP, "signature.qualified")],
)
def test_certificate_authentication_in_own_nip_context(simulator, kind, method_code, key_type):
    cred = generate_test_credential(kind, nip=COMPANY, key_type=key_type)
    assert cred.kind is kind and cred.key_type.startswith("RSA" if key_type == "RSA" else "EC-secp256r1")
    client = new_client(simulator)
    result = authenticate_with_certificate(client, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    assert (result.method["category"], result.method["code"]) == ("XadesSignature", method_code)
    # The owner of the context holds InvoiceWrite: it may open a session.
    with OnlineSession(client) as session:
        assert session.reference_number


def test_personal_pesel_certificate_needs_a_grant_in_the_company_context(simulator):
    cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL, key_type="EC")
    assert cred.kind is CertificateKind.PERSONAL_PESEL and cred.subject_pesel == PESEL
    context = ContextIdentifier.nip(COMPANY)
    client = new_client(simulator)

    with pytest.raises(KsefAuthenticationFailed) as refused:
        authenticate_with_certificate(client, cred, context, poll_interval=0.02)
    assert refused.value.code == 415 and client.access_token is None

    _grant(simulator, "Pesel", PESEL, "InvoiceWrite", "InvoiceRead")
    result = authenticate_with_certificate(client, cred, context, poll_interval=0.02)
    assert result.method["code"] == "signature.personal"
    with OnlineSession(client) as session:
        sent = session.send(invoice(COMPANY))
        status = session.wait_for_invoices([sent.reference_number], timeout=10, poll_interval=0.05)
    assert status[sent.reference_number].ksef_number.startswith(f"{COMPANY}-")

    post_testdata(
        simulator,
        "/permissions/revoke",
        {
            "contextIdentifier": {"type": "Nip", "value": COMPANY},
            "authorizedIdentifier": {"type": "Pesel", "value": PESEL},
        },
    )
    with pytest.raises(KsefAuthenticationFailed) as again:
        authenticate_with_certificate(new_client(simulator), cred, context, poll_interval=0.02)
    assert again.value.code == 415


def test_testdata_person_makes_the_pesel_holder_an_owner_of_the_company(simulator):
    cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL, key_type="RSA")
    client = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed):
        authenticate_with_certificate(client, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    post_testdata(
        simulator,
        "/person",
        {"nip": COMPANY, "pesel": PESEL, "isBailiff": False, "description": "Księgowa firmy"},
    )
    authenticate_with_certificate(client, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    token = client.create_token(["InvoiceRead"], "Token księgowej")
    assert token["token"] and token["referenceNumber"]  # an owner may manage credentials


def test_pesel_person_with_read_only_grant_cannot_open_a_session(simulator):
    cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL)
    _grant(simulator, "Pesel", PESEL, "InvoiceRead")
    client = new_client(simulator)
    authenticate_with_certificate(client, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    with pytest.raises(KsefForbidden) as info:
        OnlineSession(client).open()
    err = info.value
    assert err.http_status == 403 and err.reason_code == "missing-permissions"
    assert "InvoiceWrite" in err.security["requiredAnyOfPermissions"]
    assert err.security["presentPermissions"] == ["InvoiceRead"]


@pytest.mark.parametrize("key_type", ["RSA", "EC"])
def test_certificate_fingerprint_identity_versus_certificate_subject(simulator, key_type):
    cred = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=COMPANY, key_type=key_type)
    context = ContextIdentifier.nip(COMPANY)

    # By subject the seal is the company itself.
    by_subject = new_client(simulator)
    authenticate_with_certificate(
        by_subject, cred, context, subject_identifier_type="certificateSubject", poll_interval=0.02
    )
    OnlineSession(by_subject).open()

    # By fingerprint it is just a certificate: refused until the fingerprint holds a permission...
    by_fingerprint = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed) as refused:
        authenticate_with_certificate(
            by_fingerprint,
            cred,
            context,
            subject_identifier_type="certificateFingerprint",
            poll_interval=0.02,
        )
    assert refused.value.code == 415
    _grant(simulator, "Fingerprint", cred.fingerprint_sha256_hex, "InvoiceRead")
    authenticate_with_certificate(
        by_fingerprint, cred, context, subject_identifier_type="certificateFingerprint", poll_interval=0.02
    )
    # ...and then it holds exactly what the fingerprint was granted, not the owner's permissions.
    with pytest.raises(KsefForbidden):
        OnlineSession(by_fingerprint).open()


# -- public-key rotation ------------------------------------------------------------------------------------
def _rotate(simulator, usage: str) -> str:
    return simulator.app.keys.rotate(usage, simulator.app.clock.now()).public_key_id


def test_rotated_token_key_gets_21470_and_the_keys_are_fetched_again(simulator):
    client = new_client(simulator)
    stale = choose_certificate(client.public_keys(), USAGE_KSEF_TOKEN).public_key_id
    new_id = _rotate(simulator, USAGE_KSEF_TOKEN)
    assert new_id != stale

    # A bare call with the withdrawn key is a typed, transient 21470.
    with pytest.raises(KsefUnknownPublicKey) as info:
        client.auth_ksef_token(_token_body(client, mint_token(simulator)))
    assert info.value.code == 21470 and info.value.transient

    traffic = Traffic(client)
    result = authenticate_with_ksef_token(
        client, mint_token(simulator), ContextIdentifier.nip(NIP), poll_interval=0.02
    )
    assert result.reference_number
    calls = traffic.summary()
    assert calls[:4] == [
        ("POST", "/auth/challenge", 200),
        ("POST", "/auth/ksef-token", 400),
        ("POST", "/auth/challenge", 200),
        ("GET", "/security/public-key-certificates", 200),
    ]
    assert ("POST", "/auth/ksef-token", 202) in calls
    assert choose_certificate(client.public_keys(), USAGE_KSEF_TOKEN).public_key_id == new_id


def test_rotated_symmetric_key_is_refetched_for_online_and_batch_sessions(simulator):
    client = token_client(simulator)
    client.public_keys()  # cached
    _rotate(simulator, USAGE_SYMMETRIC_KEY)
    traffic = Traffic(client)
    with OnlineSession(client) as session:
        sent = session.send(invoice())
        status = session.wait_for_invoices([sent.reference_number], timeout=10, poll_interval=0.05)
    assert status[sent.reference_number].code == 200  # the simulator decrypted it with the new key
    assert traffic.summary()[:3] == [
        ("POST", "/sessions/online", 400),
        ("GET", "/security/public-key-certificates", 200),
        ("POST", "/sessions/online", 201),
    ]

    _rotate(simulator, USAGE_SYMMETRIC_KEY)
    traffic.clear()
    batch, _ = send_batch(client, [("a.xml", invoice())])
    assert batch.wait_until_processed(timeout=10, poll_interval=0.05).code == 200
    assert traffic.summary()[:3] == [
        ("POST", "/sessions/batch", 400),
        ("GET", "/security/public-key-certificates", 200),
        ("POST", "/sessions/batch", 201),
    ]
