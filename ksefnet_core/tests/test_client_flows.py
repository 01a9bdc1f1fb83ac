"""The core client's flows against the simulator over real HTTP on loopback (OpenAPI conformance on).

Authentication (token, certificates of every kind, PESEL context switch, key rotation, refresh, logout),
online and batch sessions with KSeF numbers and UPOs, rejections (430, 440, 450), the ambiguous case,
typed errors (400, 401, 429, 5xx, timeouts), and downloads (metadata, single invoice, export, incremental).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from lxml import etree

from ksefnet_core import fa3
from ksefnet_core.auth import (
    ContextIdentifier,
    authenticate_with_certificate,
    authenticate_with_ksef_token,
    logout,
)
from ksefnet_core.certificates import CertificateKind, generate_test_credential
from ksefnet_core.client import KsefClient
from ksefnet_core.crypto import USAGE_KSEF_TOKEN
from ksefnet_core.download import (
    IncrementalDownloader,
    download_invoice,
    export_invoices,
    iter_metadata_pages,
)
from ksefnet_core.environments import Environment
from ksefnet_core.errors import (
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefError,
    KsefNotYetAvailable,
    KsefOperationFailed,
    KsefRateLimited,
    KsefServerError,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from ksefnet_core.ids import is_valid_ksef_number
from ksefnet_core.sessions import OnlineSession, send_batch
from ksefnet_core.simulator.sessions_api import store
from ksefnet_core.testing import sample_invoice
from ksefnet_core.throttle import Throttle

NIP = "5265877635"
COMPANY = "1111111111"
PESEL = "44051401359"
UPO_NS = "http://upo.schematy.mf.gov.pl/KSeF/v4-3"
_counter = iter(range(1, 10**9))


def new_client(simulator, timeout: float = 10) -> KsefClient:
    """A client that paces itself by KSeF's rate limits, as a real integration does."""
    return KsefClient(
        Environment.custom(simulator.api_base, name="SIM"), timeout=timeout, throttle=Throttle()
    )


def control(simulator, path: str, body: dict | None = None, method: str = "POST") -> dict:
    resp = requests.request(method, f"{simulator.base_url}/_simulator{path}", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json() if resp.content else {}


def token_client(simulator, nip: str = NIP) -> KsefClient:
    client = new_client(simulator)
    token = control(simulator, "/tokens", {"nip": nip})["token"]
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(nip), poll_interval=0.02)
    return client


def invoice(nip: str = NIP, **kw) -> bytes:
    kw.setdefault("number", f"FV/{datetime.now():%H%M%S%f}/{next(_counter)}")
    return sample_invoice(seller_nip=nip, **kw)


def generate_purchases(simulator, count: int, days: float = 20, **extra) -> dict:
    now = datetime.now(timezone.utc)
    body = {
        "buyerNip": NIP,
        "count": count,
        "dateFrom": (now - timedelta(days=days)).isoformat(),
        "dateTo": (now - timedelta(seconds=1)).isoformat(),
        **extra,
    }
    return control(simulator, "/invoices/generate", body)


# -- authentication ---------------------------------------------------------------------------------------------
def test_token_authentication_end_to_end_and_logout(simulator):
    client = token_client(simulator)
    assert client.access_token and client.refresh_token
    assert client.context_limits()["onlineSession"]["maxInvoiceSizeInMB"] >= 1
    access, refresh = client.access_token, client.refresh_token
    logout(client)
    assert client.access_token is None
    # A copy kept elsewhere can no longer be refreshed: KSeF ended the session (its access token stays
    # valid until it expires, as documented for KSeF).
    client.set_tokens(access, refresh)
    with pytest.raises(KsefUnauthorized):
        client.refresh_access_token()


def test_wrong_token_is_a_typed_authentication_failure(simulator):
    client = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_ksef_token(
            client,
            "20260101-EC-0000000000-0000000000-00|nip-5265877635|00",
            ContextIdentifier.nip(NIP),
            poll_interval=0.02,
        )
    assert info.value.code == 450


def test_expired_access_token_is_refreshed_by_the_client(simulator):
    client = token_client(simulator)
    old = client.access_token.token
    control(simulator, "/faults", {"kind": "expire_tokens"})
    assert client.context_limits()  # 401 -> refresh -> retried once
    assert client.access_token.token != old


@pytest.mark.parametrize(
    ("kind", "key_type"),
    [
        (CertificateKind.COMPANY_SEAL, "RSA"),
        (CertificateKind.COMPANY_SEAL, "EC"),
        (CertificateKind.PERSONAL_NIP, "EC"),
        (CertificateKind.PERSONAL_NIP, "RSA"),
    ],
)
def test_certificate_authentication(simulator, kind, key_type):
    cred = generate_test_credential(kind, nip=COMPANY, key_type=key_type)
    assert cred.kind is kind
    client = new_client(simulator)
    result = authenticate_with_certificate(
        client,
        cred,
        ContextIdentifier.nip(COMPANY),
        subject_identifier_type="certificateSubject",
        poll_interval=0.02,
    )
    assert result.reference_number
    assert client.context_limits()


def test_certificate_fingerprint_identity_needs_its_own_permission(simulator):
    """Identified by fingerprint, a certificate is not the company itself: KSeF requires a grant (415)."""
    cred = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=COMPANY)
    client = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(
            client,
            cred,
            ContextIdentifier.nip(COMPANY),
            subject_identifier_type="certificateFingerprint",
            poll_interval=0.02,
        )
    assert info.value.code == 415


def test_pesel_certificate_switches_to_the_company_context_only_with_permissions(simulator):
    cred = generate_test_credential(CertificateKind.PERSONAL_PESEL, pesel=PESEL)
    assert cred.kind is CertificateKind.PERSONAL_PESEL
    client = new_client(simulator)
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(client, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    assert info.value.code == 415
    requests.post(
        f"{simulator.api_base}/testdata/person",
        json={"nip": COMPANY, "pesel": PESEL, "isBailiff": False, "description": "Księgowa"},
        timeout=30,
    ).raise_for_status()
    authenticate_with_certificate(client, cred, ContextIdentifier.nip(COMPANY), poll_interval=0.02)
    with OnlineSession(client) as session:
        session.send(invoice(COMPANY))


def test_rotated_public_key_is_fetched_again_after_21470(simulator):
    client = token_client(simulator)
    client.public_keys()  # cached now
    simulator.app.keys.rotate(USAGE_KSEF_TOKEN, simulator.app.clock.now())
    token = control(simulator, "/tokens", {"nip": NIP})["token"]
    result = authenticate_with_ksef_token(client, token, ContextIdentifier.nip(NIP), poll_interval=0.02)
    assert result.reference_number


# -- sending --------------------------------------------------------------------------------------------------
def test_online_session_numbers_upos_and_paged_lists(simulator):
    client = token_client(simulator)
    xmls = [invoice() for _ in range(12)]
    with OnlineSession(client) as session:
        sent = [session.send(x) for x in xmls]
        statuses = session.wait_for_invoices(
            [s.reference_number for s in sent], timeout=30, poll_interval=0.05
        )
    for s in sent:
        st = statuses[s.reference_number]
        assert st.outcome == "accepted" and st.code == 200
        assert is_valid_ksef_number(st.ksef_number) and st.ksef_number.startswith(NIP)
        upo = etree.fromstring(session.upo(s.reference_number))
        assert etree.QName(upo).namespace == UPO_NS
        assert st.ksef_number.encode() in etree.tostring(upo)
    listed = list(client.session_invoices(session.reference_number, page_size=10))  # two pages
    assert sorted(i["referenceNumber"] for i in listed) == sorted(s.reference_number for s in sent)
    final = session.wait_until_processed(timeout=30, poll_interval=0.05)
    assert final.code == 200 and final.successful_invoice_count == 12
    pages = session.session_upo_pages()
    assert pages and all(st.ksef_number.encode() in pages[0] for st in statuses.values())
    assert any(
        s["referenceNumber"] == session.reference_number for s in client.list_sessions("Online", page_size=10)
    )


def test_rejections_are_typed(simulator):
    client = token_client(simulator)
    first = invoice(number="FV/DUP/1")
    broken = invoice().replace(b"<P_15>", b"<P_15>x", 1)
    future = invoice(issue_date=date.today() + timedelta(days=3))
    with OnlineSession(client) as session:
        ok = session.send(first)
        refs = [
            session.send(x).reference_number
            for x in (broken, invoice(number="FV/DUP/1", net_amounts=("1.00",)), future)
        ]
        st = session.wait_for_invoices([ok.reference_number, *refs], timeout=30, poll_interval=0.05)
    original = st[ok.reference_number]
    invalid, duplicate, too_early = (st[r] for r in refs)
    assert (invalid.code, invalid.outcome) == (430, "rejected")
    assert (duplicate.code, duplicate.outcome) == (440, "duplicate")
    assert duplicate.original_ksef_number == original.ksef_number
    assert duplicate.original_session_reference_number == session.reference_number
    assert (too_early.code, too_early.outcome) == (450, "rejected")
    failed = {i["referenceNumber"] for i in client.session_failed_invoices(session.reference_number)}
    assert failed == set(refs)


def test_dropped_answer_is_ambiguous_and_reconciled_by_hash(simulator):
    client = token_client(simulator)
    xml = invoice()
    with OnlineSession(client) as session:
        control(
            simulator,
            "/faults",
            {"kind": "drop_response", "method": "POST", "path": "/sessions/online/*/invoices", "times": 1},
        )
        with pytest.raises(KsefTransportError) as info:
            session.send(xml)
        assert info.value.ambiguous
        found = session.find_by_hash(fa3.parse(xml).sha256_b64)
        assert found is not None  # KSeF has it: the caller adopts it instead of sending again
        st = session.wait_for_invoices([found.reference_number], timeout=30, poll_interval=0.05)[
            found.reference_number
        ]
        assert st.outcome == "accepted"
    assert len(list(client.session_invoices(session.reference_number))) == 1


@pytest.mark.parametrize("compression", ["Zip", "TarGz"])
def test_batch_session_in_several_parts(simulator, compression):
    client = token_client(simulator)
    xmls = {f"{i}.xml": invoice() for i in range(60)}
    session, hashes = send_batch(client, xmls.items(), part_size=1_000, compression=compression)
    assert len(hashes) == 60
    final = session.wait_until_processed(timeout=60, poll_interval=0.05)
    assert final.code == 200 and final.successful_invoice_count == 60
    statuses = list(session.invoices())
    assert {s.invoice_file_name for s in statuses} == set(xmls)
    assert all(is_valid_ksef_number(s.ksef_number) for s in statuses)
    sim_session = store(simulator.app).sessions[session.reference_number]
    assert len(sim_session.parts) > 1, "the archive was split into several encrypted parts"
    assert sim_session.batch_file["compressionType"] == compression


def test_batch_declared_as_targz_but_zipped_fails_to_decompress(simulator):
    from ksefnet_core import sessions

    client = token_client(simulator)
    batch = sessions.prepare_batch([("1.xml", invoice())], compression="Zip")
    batch.compression = "TarGz"  # a wrong declaration: KSeF cannot unpack the archive (430)
    try:
        session = sessions.BatchSession(client)
        session.open(batch)
        session.upload(batch)
        session.close()
    finally:
        batch.cleanup()
    with pytest.raises(KsefOperationFailed) as info:
        session.wait_until_processed(timeout=10, poll_interval=0.05)
    assert info.value.code == 430


# -- typed errors ---------------------------------------------------------------------------------------------
def test_bad_request_exposes_code_details_and_reference(simulator):
    client = token_client(simulator)
    with simulator.app.conformance.expect_invalid_requests(), pytest.raises(KsefBadRequest) as info:
        client.request("POST", "/sessions/online", json_body={"formCode": {}}, expect=(201,))
    err = info.value
    assert err.http_status == 400 and err.code == 21405 and err.description
    assert err.reference_number  # the request's reference, for KSeF support


def test_rate_limit_answer_carries_retry_after(simulator):
    client = token_client(simulator)
    control(
        simulator, "/faults", {"kind": "rate_limit", "retry_after": 7, "path": "/limits/context", "times": 1}
    )
    with pytest.raises(KsefRateLimited) as info:
        client.context_limits()
    assert info.value.retry_after == 7 and info.value.transient


def test_server_errors_and_timeouts_are_transient(simulator):
    client = token_client(simulator)
    control(simulator, "/faults", {"kind": "status", "status": 503, "path": "/limits/context", "times": 1})
    with pytest.raises(KsefServerError) as info:
        client.context_limits()
    assert info.value.transient and info.value.http_status == 503
    slow = new_client(simulator, timeout=0.3)
    slow.access_token, slow.refresh_token = client.access_token, client.refresh_token
    control(simulator, "/faults", {"kind": "delay", "seconds": 1.0, "path": "/limits/context", "times": 1})
    with pytest.raises(KsefTimeoutError) as timeout:
        slow.context_limits()
    assert timeout.value.transient and timeout.value.ambiguous
    control(simulator, "/faults", {"kind": "unavailable"})
    with pytest.raises(KsefError) as down:
        client.context_limits()
    assert down.value.transient
    control(simulator, "/faults", method="DELETE")
    assert client.context_limits()


# -- downloading ----------------------------------------------------------------------------------------------
def test_metadata_paging_and_single_download(simulator):
    client = token_client(simulator)
    generate_purchases(simulator, 25)
    filters = {
        "subjectType": "Subject2",
        "dateRange": {
            "dateType": "PermanentStorage",
            "from": (datetime.now(timezone.utc) - timedelta(days=30)).isoformat(),
        },
    }
    pages = list(iter_metadata_pages(client, filters, page_size=10))
    metas = [m for p in pages for m in p.invoices]
    assert len(pages) >= 3 and len({m["ksefNumber"] for m in metas}) == 25
    meta = metas[0]
    xml = download_invoice(client, meta["ksefNumber"])
    assert fa3.parse(xml).sha256_b64 == meta["invoiceHash"]
    assert fa3.parse(xml).buyer.nip == NIP
    control(simulator, "/faults", {"kind": "not_yet_available", "times": 1})
    with pytest.raises(KsefNotYetAvailable) as info:
        client.get_invoice(meta["ksefNumber"])
    assert info.value.code == 21165 and info.value.transient
    assert client.get_invoice(meta["ksefNumber"]) == xml
    own = list(iter_metadata_pages(client, {**filters, "subjectType": "Subject1"}, page_size=10))
    assert sum(len(p.invoices) for p in own) == 0


@pytest.mark.parametrize("compression", [None, "Zip", "TarGz"])
def test_export_package_is_decrypted_and_matches_its_metadata(simulator, compression):
    client = token_client(simulator)
    numbers = generate_purchases(simulator, 30)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    result = export_invoices(
        client,
        {"subjectType": "Subject2", "dateRange": {"dateType": "PermanentStorage", "from": start.isoformat()}},
        poll_interval=0.05,
        compression=compression,
    )
    package = result.raw["package"]
    assert package["compressionType"] == (compression or "Zip")  # required since API 2.9
    suffix = ".tar.gz.aes" if compression == "TarGz" else ".zip.aes"
    assert all(p["partName"].endswith(suffix) for p in package["parts"])
    got = {meta["ksefNumber"]: xml for meta, xml in result.invoices()}
    assert len(got) == numbers["count"] == 30
    assert all(fa3.parse(x).buyer.nip == NIP for x in got.values())
    assert not result.is_truncated and result.permanent_storage_hwm_date is not None


def test_export_stuck_times_out_cleanly(simulator):
    client = token_client(simulator)
    control(simulator, "/faults", {"kind": "export_stuck"})
    with pytest.raises(KsefError):
        export_invoices(
            client,
            {
                "subjectType": "Subject2",
                "dateRange": {"dateType": "PermanentStorage", "from": "2026-01-01T00:00:00Z"},
            },
            timeout=1.0,
            poll_interval=0.1,
        )


@pytest.mark.parametrize("mode", ["metadata", "export"])
def test_incremental_download_resumes_without_repeats(simulator, mode):
    client = token_client(simulator)
    if mode == "metadata":  # one download per invoice: raise the limits, as KSeF TEST allows
        limits = client.rate_limits()
        client.set_test_rate_limits({g: {k: v * 100 for k, v in lim.items()} for g, lim in limits.items()})
        client.throttle.update_limits(client.rate_limits())
    generate_purchases(simulator, 20)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    first = IncrementalDownloader(client, "Subject2", start, mode=mode, poll_interval=0.05)
    run1 = [inv.ksef_number for inv in first]
    assert len(run1) == len(set(run1)) == 20
    generate_purchases(simulator, 6, days=40)  # back-dated issue dates; stored now
    second = IncrementalDownloader(client, "Subject2", first.resume_point, mode=mode, poll_interval=0.05)
    run2 = [inv.ksef_number for inv in second]
    assert len(run2) == len(set(run2)) == 6 and not set(run1) & set(run2)
    third = IncrementalDownloader(client, "Subject2", second.resume_point, mode=mode, poll_interval=0.05)
    assert list(third) == []


def test_internal_id_and_vat_ue_contexts(simulator):
    cred = generate_test_credential(CertificateKind.COMPANY_SEAL, nip=COMPANY)
    client = new_client(simulator)
    # The company's own internal unit (NIP-5 digits): its seal holds every permission there.
    authenticate_with_certificate(
        client, cred, ContextIdentifier("InternalId", f"{COMPANY}-00001"), poll_interval=0.02
    )
    assert client.context_limits()
    # A NIP+EU VAT context is a different subject: without a grant the seal is refused.
    with pytest.raises(KsefAuthenticationFailed) as info:
        authenticate_with_certificate(
            new_client(simulator),
            cred,
            ContextIdentifier("NipVatUe", f"{NIP}-DE123456789"),
            poll_interval=0.02,
        )
    assert info.value.code == 415
