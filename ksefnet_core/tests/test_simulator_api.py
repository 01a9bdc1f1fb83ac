"""The simulator's KSeF TEST features through the core client (conformance on): KSeF tokens, authentication
sessions, context blocking, test-data subjects and rate limits, and many concurrent clients."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token
from ksefnet_core.client import KsefClient
from ksefnet_core.environments import Environment
from ksefnet_core.errors import KsefAuthenticationFailed, KsefUnauthorized
from ksefnet_core.ids import is_valid_ksef_number, nip_with_checksum
from ksefnet_core.sessions import OnlineSession
from ksefnet_core.testing import sample_invoice
from ksefnet_core.throttle import Throttle

NIP = "5265877635"


def client_of(simulator) -> KsefClient:
    return KsefClient(Environment.custom(simulator.api_base, name="SIM"), timeout=30, throttle=Throttle())


def login(simulator, nip: str = NIP) -> KsefClient:
    token = requests.post(f"{simulator.base_url}/_simulator/tokens", json={"nip": nip}, timeout=30).json()[
        "token"
    ]
    client = client_of(simulator)
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(nip), poll_interval=0.02)
    return client


def test_ksef_tokens_are_created_listed_and_revoked_like_on_test(simulator):
    admin = login(simulator)
    created = admin.create_token(["InvoiceRead", "InvoiceWrite"], "Bufor KSeFNet")
    reference, token = created["referenceNumber"], created["token"]
    assert any(t["referenceNumber"] == reference for t in admin.list_tokens())
    assert admin.get_token(reference)["status"] in ("Pending", "Active")
    other = client_of(simulator)
    authenticate_with_ksef_token(other, token, ContextIdentifier.nip(NIP), poll_interval=0.02)
    assert other.context_limits()
    admin.revoke_token(reference)
    again = client_of(simulator)
    with pytest.raises(KsefAuthenticationFailed):
        authenticate_with_ksef_token(again, token, ContextIdentifier.nip(NIP), poll_interval=0.02)


def test_authentication_sessions_are_listed_and_one_can_be_ended_from_another(simulator):
    first, second = login(simulator), login(simulator)
    items = list(first.auth_sessions())
    current = [s for s in items if s.get("isCurrent")]
    others = [s for s in items if not s.get("isCurrent")]
    assert len(current) == 1 and others
    for s in others:
        first.revoke_auth_session(s["referenceNumber"])
    # Its refresh token is dead (its access token lives on until it expires, as on KSeF).
    with pytest.raises(KsefUnauthorized):
        second.refresh_access_token()
    assert first.context_limits()


def test_blocked_context_refuses_authentication_until_unblocked(simulator):
    client = login(simulator)
    body = {"contextIdentifier": {"type": "Nip", "value": NIP}}
    client.request("POST", "/testdata/context/block", json_body=body)
    with pytest.raises(KsefAuthenticationFailed) as info:
        login(simulator)
    assert info.value.code == 480
    client.request("POST", "/testdata/context/unblock", json_body=body)
    assert login(simulator).context_limits()


def test_test_data_subject_and_rate_limit_reset(simulator):
    new_nip = nip_with_checksum("777777777")
    requests.post(
        f"{simulator.api_base}/testdata/subject",
        json={"subjectNip": new_nip, "subjectType": "EnforcementAuthority", "description": "Gmina testowa"},
        timeout=30,
    ).raise_for_status()
    client = login(simulator, new_nip)
    defaults = client.rate_limits()
    changed = {g: {k: v * 2 for k, v in lim.items()} for g, lim in defaults.items()}
    client.set_test_rate_limits(changed)
    assert client.rate_limits() == changed
    client.request("DELETE", "/testdata/rate-limits", expect=(200, 204))
    assert client.rate_limits() == defaults


def test_many_concurrent_clients_lose_nothing(simulator):
    nips = [n for n in (nip_with_checksum(f"5265877{i:02d}") for i in range(10, 30)) if n][:5]
    assert len(nips) == 5

    def work(nip: str) -> list[str]:
        client = login(simulator, nip)
        with OnlineSession(client) as session:
            sent = [session.send(sample_invoice(seller_nip=nip, number=f"C/{nip}/{i}")) for i in range(8)]
            statuses = session.wait_for_invoices(
                [s.reference_number for s in sent], timeout=60, poll_interval=0.05
            )
        return [st.ksef_number for st in statuses.values()]

    with ThreadPoolExecutor(len(nips)) as pool:
        results = list(pool.map(work, nips))
    numbers = [n for chunk in results for n in chunk]
    assert len(numbers) == 8 * len(nips) == len(set(numbers))
    assert all(is_valid_ksef_number(n) for n in numbers)
