"""Sending invoices and typed errors with the core client against the simulator over real HTTP.

Online sessions (KSeF numbers, UPOs per invoice and per session, lists with continuation tokens), the
rejections KSeF gives (430, 440 with the original's references, 450), the ambiguous case (the answer is lost
after KSeF processed the invoice) reconciled by hash, batch sessions in several parts uploaded without a
bearer token, and every typed error (400, 401, 403, 429, 5xx, timeouts, unavailability, refused connection).
OpenAPI conformance checking of all traffic is on (see conftest.py).
"""

from __future__ import annotations

import re
import socket
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from ksefnet_core import fa3
from ksefnet_core.client import KsefClient, Token
from ksefnet_core.crypto import parse_datetime, sha256_b64
from ksefnet_core.environments import Environment
from ksefnet_core.errors import (
    KsefBadRequest,
    KsefForbidden,
    KsefOperationFailed,
    KsefRateLimited,
    KsefServerError,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
)
from ksefnet_core.ids import REFERENCE_NUMBER_PATTERN, make_reference_number, parse_ksef_number
from ksefnet_core.sessions import OnlineSession, send_batch

from .client_support import (
    NIP,
    UPO_NS,
    Traffic,
    control,
    invoice,
    set_rate_limits,
    token_client,
)

UPO_XSD = Path(fa3.__file__).parent / "schemas" / "upo" / "upo-v4-3.xsd"
NS = {"u": UPO_NS}
SERVICE_CODE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
WARSAW = ZoneInfo("Europe/Warsaw")
FAST = (100, 1000, 10000)  # TEST lets a context raise its limits (POST /testdata/rate-limits)


def upo_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(UPO_XSD)))


def valid_upo(data: bytes) -> etree._Element:
    root = etree.fromstring(data)
    schema = upo_schema()
    assert schema.validate(root), schema.error_log
    return root


def fast_client(simulator, **kw):
    client = token_client(simulator, **kw)
    set_rate_limits(client, invoiceSend=FAST, onlineSession=FAST, invoiceStatus=FAST)
    return client


def send_all(session: OnlineSession, xmls: list[bytes]) -> dict:
    sent = [session.send(x) for x in xmls]
    statuses = session.wait_for_invoices([s.reference_number for s in sent], timeout=10, poll_interval=0.05)
    return {s.reference_number: (s, statuses[s.reference_number]) for s in sent}


# -- online session -----------------------------------------------------------------------------------------
def test_online_session_assigns_ksef_numbers_in_the_real_format(simulator):
    client = fast_client(simulator)
    xmls = [invoice() for _ in range(5)]
    with OnlineSession(client) as session:
        assert REFERENCE_NUMBER_PATTERN.match(session.reference_number)
        assert "-SO-" in session.reference_number
        assert session.status().code == 100  # open
        results = send_all(session, xmls)
    assert session.closed
    for (sent, st), xml in zip(results.values(), xmls, strict=True):
        assert "-EE-" in sent.reference_number
        assert (st.code, st.outcome, st.is_final) == (200, "accepted", True)
        number = parse_ksef_number(st.ksef_number)  # pattern and CRC-8 checksum
        assert number.seller_nip == NIP and str(number) == st.ksef_number
        accepted = st.invoicing_date
        assert number.acceptance_date in {
            accepted.astimezone(timezone.utc).date(),
            accepted.astimezone(WARSAW).date(),
        }
        assert st.invoice_hash == sent.invoice_hash == sha256_b64(xml)
        assert st.invoice_number == fa3.parse(xml).number
        assert st.invoicing_mode == "Online"
        assert st.acquisition_date and st.permanent_storage_date
    assert len({st.ksef_number for _, st in results.values()}) == 5
    final = session.wait_until_processed(timeout=10, poll_interval=0.05)
    assert (final.code, final.invoice_count, final.successful_invoice_count, final.failed_invoice_count) == (
        200,
        5,
        5,
        0,
    )


def test_upo_per_invoice_and_per_session(simulator):
    client = fast_client(simulator)
    with OnlineSession(client) as session:
        results = send_all(session, [invoice() for _ in range(3)])
    traffic = Traffic(client)
    for sent, st in results.values():
        by_reference = session.upo(sent.reference_number)
        by_number = client.invoice_upo_by_ksef_number(session.reference_number, st.ksef_number)
        presigned = client.download_presigned(st.upo_download_url, "invoice UPO")
        for upo in (by_reference, by_number, presigned):
            root = valid_upo(upo)  # UPO v4-3 schema
            assert root.findtext("u:NumerReferencyjnySesji", namespaces=NS) == session.reference_number
            assert root.findtext("u:Uwierzytelnienie/u:IdKontekstu/u:Nip", namespaces=NS) == NIP
            doc = root.find("u:Dokument", NS)
            assert doc.findtext("u:NumerKSeFDokumentu", namespaces=NS) == st.ksef_number
            assert doc.findtext("u:SkrotDokumentu", namespaces=NS) == sent.invoice_hash
            assert doc.findtext("u:NumerFaktury", namespaces=NS) == st.invoice_number
    storage = [c for c in traffic.calls if c.path.startswith("/storage/")]
    assert storage and all("Authorization" not in c.headers for c in storage)  # pre-signed: no bearer

    final = session.wait_until_processed(timeout=10, poll_interval=0.05)
    assert final.code == 200 and len(final.upo_pages) == 1
    (page,) = session.session_upo_pages()
    root = valid_upo(page)
    assert root.findtext("u:OpisPotwierdzenia/u:CalkowitaLiczbaDokumentow", namespaces=NS) == "3"
    numbers = {d.findtext("u:NumerKSeFDokumentu", namespaces=NS) for d in root.findall("u:Dokument", NS)}
    assert numbers == {st.ksef_number for _, st in results.values()}
    assert client.download_presigned(final.upo_pages[0]["downloadUrl"], "session UPO") == page


def test_session_invoice_list_pages_with_continuation_tokens(simulator):
    client = fast_client(simulator)
    xmls = [invoice() for _ in range(12)]  # more than the smallest page the spec allows (10)
    with OnlineSession(client) as session:
        results = send_all(session, xmls)
    traffic = Traffic(client)
    listed = list(session.invoices(page_size=10))
    calls = [c for c in traffic.calls if c.path == f"/sessions/{session.reference_number}/invoices"]
    assert len(calls) == 2
    assert "x-continuation-token" not in calls[0].headers and calls[1].headers["x-continuation-token"]
    assert [i.ordinal_number for i in listed] == list(range(1, 13))
    assert {i.reference_number for i in listed} == set(results)
    assert {i.invoice_hash for i in listed} == {sha256_b64(x) for x in xmls}
    assert all(i.code == 200 and i.ksef_number for i in listed)
    assert list(session.failed_invoices(page_size=10)) == []


def test_session_invoice_list_is_paced_by_its_own_rate_limit_group(simulator):
    client = fast_client(simulator)
    with OnlineSession(client) as session:
        send_all(session, [invoice() for _ in range(11)])
    set_rate_limits(client, sessionInvoiceList=(1, 20, 200), other=FAST)
    traffic = Traffic(client)
    assert len(list(session.invoices(page_size=10))) == 11  # two pages, the second one paced
    assert [c.status for c in traffic.calls] == [200, 200]


def test_session_list_pages_with_continuation_tokens_newest_first(simulator):
    client = fast_client(simulator)
    opened = [OnlineSession(client) for _ in range(11)]
    for s in opened:
        s.open()
    set_rate_limits(client, sessionList=FAST)
    traffic = Traffic(client)
    listed = list(client.list_sessions("Online", page_size=10))
    calls = [c for c in traffic.calls if c.path == "/sessions"]
    assert len(calls) == 2 and calls[1].headers["x-continuation-token"]
    assert [s["referenceNumber"] for s in listed] == [s.reference_number for s in reversed(opened)]
    created = [parse_datetime(s["dateCreated"]) for s in listed]
    assert created == sorted(created, reverse=True)  # the spec: sorted by dateCreated, descending
    assert all(s["status"]["code"] == 100 and s["totalInvoiceCount"] == 0 for s in listed)
    assert list(client.list_sessions("Batch", page_size=10)) == []


# -- rejections ---------------------------------------------------------------------------------------------
def test_rejections_are_typed_and_a_duplicate_points_to_the_original(simulator):
    client = fast_client(simulator)
    original_xml = invoice(number="FV/2026/DUP")
    with OnlineSession(client) as first:
        (original_sent, original), *_ = send_all(first, [original_xml]).values()
    assert original.code == 200

    broken = invoice().replace(b"<P_15>", b"<P_15>x", 1)  # not FA(3): P_15 is an amount
    duplicate = invoice(number="FV/2026/DUP", net_amounts=("1.00",))  # other content, same seller+kind+P_2
    other_kind = invoice(number="FV/2026/DUP", kind="UPR")  # same P_2, another RodzajFaktury: no duplicate
    future = invoice(issue_date=date.today() + timedelta(days=3))  # P_1 after the day KSeF receives it
    with OnlineSession(client) as second:
        results = send_all(second, [broken, duplicate, other_kind, future])
    invalid, dup, distinct, too_early = (st for _, st in results.values())

    assert (invalid.code, invalid.outcome, invalid.ksef_number) == (430, "rejected", None)
    assert invalid.details and "P_15" in invalid.message

    assert (dup.code, dup.outcome, dup.ksef_number) == (440, "duplicate", None)
    assert dup.original_ksef_number == original.ksef_number
    assert dup.original_session_reference_number == first.reference_number != second.reference_number
    assert dup.invoice_number == "FV/2026/DUP"
    assert original.ksef_number in dup.message

    assert (distinct.code, distinct.outcome) == (200, "accepted")
    assert distinct.ksef_number != original.ksef_number

    assert (too_early.code, too_early.outcome, too_early.ksef_number) == (450, "rejected", None)
    assert "P_1" in too_early.message

    failed = {i.reference_number: i.code for i in second.failed_invoices(page_size=10)}
    assert failed == {
        invalid.reference_number: 430,
        dup.reference_number: 440,
        too_early.reference_number: 450,
    }
    final = second.wait_until_processed(timeout=10, poll_interval=0.05)
    assert (final.code, final.successful_invoice_count, final.failed_invoice_count) == (200, 1, 3)
    with pytest.raises(KsefBadRequest) as no_upo:
        second.upo(invalid.reference_number)
    assert no_upo.value.code == 21178


def test_issue_date_is_compared_with_the_calendar_day_in_poland(simulator):
    """At 23:30 UTC it is already tomorrow in Warsaw: an invoice dated that day is not "in the future"."""
    clock = simulator.app.clock
    now = clock.now()
    late = datetime.combine(now.date(), dtime(23, 30), tzinfo=timezone.utc)
    clock.advance((late - now).total_seconds() % 86400)  # KSeF's clock to the next 23:30 UTC
    polish_day = clock.now().astimezone(WARSAW).date()
    assert polish_day == clock.now().date() + timedelta(days=1)
    client = fast_client(simulator)
    with OnlineSession(client) as session:
        results = send_all(
            session, [invoice(issue_date=polish_day), invoice(issue_date=polish_day - timedelta(days=1))]
        )
    today, yesterday = (st for _, st in results.values())
    assert (today.code, today.invoicing_mode) == (200, "Online")
    assert (yesterday.code, yesterday.invoicing_mode) == (200, "Offline")  # issued on an earlier day


def test_session_with_only_rejected_invoices_ends_with_445(simulator):
    client = fast_client(simulator)
    with OnlineSession(client) as session:
        send_all(session, [invoice(issue_date=fa3.poland_today() + timedelta(days=1))])
    with pytest.raises(KsefOperationFailed) as info:
        session.wait_until_processed(timeout=10, poll_interval=0.05)
    assert info.value.code == 445 and info.value.reference_number == session.reference_number


# -- the ambiguous case -------------------------------------------------------------------------------------
def test_lost_answer_after_processing_is_ambiguous_and_reconciled_by_hash(simulator):
    client = fast_client(simulator)
    xml = invoice()
    with OnlineSession(client) as session:
        control(
            simulator,
            "/faults",
            {"kind": "drop_response", "method": "POST", "path": "/sessions/online/*/invoices", "times": 1},
        )
        with pytest.raises(KsefTimeoutError) as info:
            session.send(xml)
        err = info.value
        assert err.ambiguous and err.transient and err.method == "POST"
        found = session.find_by_hash(sha256_b64(xml))
        assert found is not None and found.code == 200  # KSeF has it: adopt it, do not send again
        # Sending it again anyway would only produce a duplicate of the one KSeF already has.
        (_, again), *_ = send_all(session, [xml]).values()
        assert again.outcome == "duplicate" and again.original_ksef_number == found.ksef_number
    assert [i.code for i in session.invoices()] == [200, 440]


def test_request_dropped_before_processing_is_ambiguous_and_not_found(simulator):
    client = fast_client(simulator)
    xml = invoice()
    with OnlineSession(client) as session:
        control(
            simulator, "/faults", {"kind": "drop_request", "path": "/sessions/online/*/invoices", "times": 1}
        )
        with pytest.raises(KsefTransportError) as info:
            session.send(xml)
        assert info.value.ambiguous  # the client cannot tell the two cases apart...
        assert session.find_by_hash(sha256_b64(xml)) is None  # ...reconciling can: it is safe to resend
        (_, st), *_ = send_all(session, [xml]).values()
    assert st.code == 200


def test_slow_answer_times_out_ambiguously_while_ksef_processes_the_invoice(simulator):
    client = fast_client(simulator, timeout=(5, 0.4))
    xml = invoice()
    with OnlineSession(client) as session:
        control(
            simulator,
            "/faults",
            {"kind": "delay", "seconds": 1.0, "path": "/sessions/online/*/invoices", "times": 1},
        )
        with pytest.raises(KsefTimeoutError) as info:
            session.send(xml)
        assert info.value.ambiguous and info.value.transient
        deadline = time.monotonic() + 5
        found = None
        while found is None and time.monotonic() < deadline:
            found = session.find_by_hash(sha256_b64(xml))
            time.sleep(0.1)
    assert found is not None and found.code == 200


# -- typed errors -------------------------------------------------------------------------------------------
def test_bad_request_exposes_code_description_details_and_reference(simulator):
    client = token_client(simulator)
    unknown = make_reference_number("SO")
    with pytest.raises(KsefBadRequest) as info:
        client.session_status(unknown)
    err = info.value
    assert (err.http_status, err.code, err.codes) == (400, 21173, (21173,))
    assert err.description == "Brak sesji o wskazanym numerze referencyjnym."
    assert any(unknown in d for d in err.details)
    assert SERVICE_CODE.match(err.reference_number)  # the failed request's reference for KSeF support
    assert (err.method, err.path) == ("GET", f"/sessions/{unknown}")
    assert not err.transient and not err.ambiguous
    assert "21173" in str(err) and err.reference_number in str(err)


def test_bad_request_in_problem_details_format(simulator):
    client = token_client(simulator, problem_details=True)
    unknown = make_reference_number("SO")
    with pytest.raises(KsefBadRequest) as info:
        client.session_status(unknown)
    err = info.value
    assert err.code == 21173 and any(unknown in d for d in err.details)
    assert re.fullmatch(r"[0-9a-f]{32}", err.reference_number)  # the traceId


def test_malformed_request_is_a_validation_error(simulator):
    client = token_client(simulator)
    with simulator.app.conformance.expect_invalid_requests(), pytest.raises(KsefBadRequest) as info:
        client.open_online_session({"systemCode": "FA (9)"}, {"encryptedSymmetricKey": ""})
    assert info.value.code == 21405 and info.value.details


def test_sending_to_a_closed_session_is_refused_with_21180(simulator):
    client = fast_client(simulator)
    session = OnlineSession(client)
    session.open()
    session.close()
    with pytest.raises(KsefBadRequest) as info:
        session.send(invoice())
    assert info.value.code == 21180


def test_unauthorized_without_refresh_token_is_not_retried(simulator):
    client = token_client(simulator)
    client.set_tokens(Token("not-a-jwt", client.access_token.valid_until), None)
    traffic = Traffic(client)
    with pytest.raises(KsefUnauthorized) as info:
        client.context_limits()
    assert info.value.http_status == 401 and not info.value.transient
    assert len(traffic.calls) == 1


def test_missing_permission_is_forbidden_with_reason(simulator):
    client = token_client(simulator, permissions=["InvoiceRead"])
    with pytest.raises(KsefForbidden) as info:
        OnlineSession(client).open()
    assert info.value.reason_code == "missing-permissions" and not info.value.transient
    assert "InvoiceWrite" in info.value.security["requiredAnyOfPermissions"]


def test_rate_limit_from_lowered_limits_carries_retry_after(simulator):
    client = token_client(simulator, throttle=False)
    set_rate_limits(client, other=(2, 30, 120))
    with pytest.raises(KsefRateLimited) as info:
        for _ in range(5):
            client.context_limits()
    err = info.value
    assert err.http_status == 429 and err.transient and not err.ambiguous
    assert err.retry_after is not None and err.retry_after >= 1
    assert "other" in err.message  # KSeF names the exceeded group
    simulator.app.clock.advance(err.retry_after)  # wait as told (on KSeF's clock)
    assert client.context_limits()


def test_429_despite_the_throttle_holds_the_group_for_retry_after(simulator):
    client = token_client(simulator)  # paces by the default limits: 10 per second for "other"
    limits = client.rate_limits()
    limits["other"] = {"perSecond": 1, "perMinute": 30, "perHour": 120}  # someone lowered them meanwhile
    client.set_test_rate_limits(limits)
    client.context_limits()  # each endpoint of "other" has its own counter (limity-api.md): the first passes
    with pytest.raises(KsefRateLimited) as info:
        client.context_limits()
    assert client.throttle.delay("other") > info.value.retry_after - 0.5


def test_rate_limit_storm_on_sending(simulator):
    client = fast_client(simulator, throttle=False)  # a throttle would rightly wait 7 s after each 429
    with OnlineSession(client) as session:
        control(
            simulator,
            "/faults",
            {"kind": "rate_limit", "retry_after": 7, "path": "/sessions/online/*/invoices"},
        )
        for _ in range(3):
            with pytest.raises(KsefRateLimited) as info:
                session.send(invoice())
            assert info.value.retry_after == 7 and not info.value.ambiguous
        control(simulator, "/faults", method="DELETE")
        results = send_all(session, [invoice()])
    assert [st.code for _, st in results.values()] == [200]
    assert len(list(session.invoices())) == 1  # the refused ones never reached KSeF


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(simulator, status):
    client = token_client(simulator)
    control(simulator, "/faults", {"kind": "status", "status": status, "path": "/limits/context", "times": 1})
    with pytest.raises(KsefServerError) as info:
        client.context_limits()
    err = info.value
    assert err.http_status == status and err.transient and err.ambiguous
    assert client.context_limits()  # the next call goes through


def test_slow_answers_time_out_as_transient_errors(simulator):
    client = token_client(simulator, timeout=(5, 0.3))
    control(simulator, "/faults", {"kind": "delay", "seconds": 0.1, "path": "/limits/context", "times": 1})
    assert client.context_limits()  # slow but in time
    control(simulator, "/faults", {"kind": "delay", "seconds": 1.0, "path": "/limits/context", "times": 1})
    with pytest.raises(KsefTimeoutError) as info:
        client.context_limits()
    assert info.value.transient and info.value.ambiguous and info.value.path == "/limits/context"


def test_ksef_unavailable_is_transient_until_it_is_back(simulator):
    client = token_client(simulator)
    control(simulator, "/faults", {"kind": "unavailable"})
    for call in (client.context_limits, client.auth_challenge, client.get_public_key_certificates):
        with pytest.raises(KsefServerError) as info:
            call()
        assert info.value.http_status == 503 and info.value.transient
    control(simulator, "/faults", method="DELETE")
    assert client.context_limits()


def test_refused_connection_is_transient_but_not_ambiguous():
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = KsefClient(Environment.custom(f"http://127.0.0.1:{port}/v2"), timeout=5)
    with pytest.raises(KsefTransportError) as info:
        client.auth_challenge()
    err = info.value
    assert err.transient and not err.ambiguous and not isinstance(err, KsefTimeoutError)


# -- batch --------------------------------------------------------------------------------------------------
def test_batch_session_in_several_parts_uploaded_without_bearer(simulator):
    client = token_client(simulator)
    xmls = {f"FV-{i:03d}.xml": invoice() for i in range(40)}
    xmls["broken.xml"] = invoice().replace(b"<P_15>", b"<P_15>x", 1)
    traffic = Traffic(client)
    session, hashes = send_batch(client, xmls.items(), part_size=15_000)
    assert hashes == {name: sha256_b64(x) for name, x in xmls.items()}

    uploads = [c for c in traffic.calls if c.path.startswith("/storage/upload/")]
    assert len(uploads) == len(session.upload_requests) > 1  # several parts
    for call in uploads:
        assert call.method == "PUT" and call.status == 201
        assert "Authorization" not in call.headers  # pre-signed URL: no bearer token
        assert call.headers["x-ms-blob-type"] == "BlockBlob"
    opened = next(c for c in traffic.calls if c.path == "/sessions/batch")
    assert opened.headers["Authorization"].startswith("Bearer ")
    assert "-SB-" in session.reference_number

    final = session.wait_until_processed(timeout=30, poll_interval=0.05)
    assert (final.code, final.invoice_count, final.successful_invoice_count, final.failed_invoice_count) == (
        200,
        41,
        40,
        1,
    )
    statuses = {s.invoice_file_name: s for s in session.invoices(page_size=100)}
    assert set(statuses) == set(xmls)
    for name, st in statuses.items():
        assert st.invoice_hash == hashes[name]
        if name == "broken.xml":
            assert (st.code, st.outcome) == (430, "rejected")
        else:
            assert st.code == 200 and parse_ksef_number(st.ksef_number).seller_nip == NIP
    assert len({st.ksef_number for st in statuses.values()}) == 41  # 40 numbers and one None
    (page,) = session.session_upo_pages()
    assert valid_upo(page).findtext("u:OpisPotwierdzenia/u:CalkowitaLiczbaDokumentow", namespaces=NS) == "40"
