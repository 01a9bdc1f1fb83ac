"""Latarnia: the simulator's status service and its control endpoint, the client, the availability state;
and the simulator honouring offlineMode per invoice of an online session."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from ksefnet_core import latarnia
from ksefnet_core.errors import KsefServerError
from ksefnet_core.latarnia import LatarniaClient, LatarniaError, LatarniaMessage, LatarniaStatus
from ksefnet_core.offline import OutageKind
from ksefnet_core.sessions import OnlineSession

from .client_support import invoice, token_client


def set_state(simulator, **body):
    resp = requests.post(f"{simulator.base_url}/_simulator/latarnia", json=body, timeout=10)
    resp.raise_for_status()
    return resp.json()


def test_the_simulator_serves_latarnia_and_tests_set_its_state(simulator):
    client = LatarniaClient(simulator.base_url)
    assert client.status() == LatarniaStatus("AVAILABLE", ())
    assert client.messages() == []
    kv = token_client(simulator)
    assert kv.context_limits()  # the API answers
    set_state(simulator, status="FAILURE", message={"title": "Awaria KSeF", "text": "Trwają prace."})
    down = client.status()
    assert down.status == "FAILURE"
    (message,) = down.messages
    assert (message.title, message.text, message.category, message.kind) == (
        "Awaria KSeF", "Trwają prace.", "01", OutageKind.FAILURE,
    )  # fmt: skip
    outage = message.outage()
    assert outage.kind is OutageKind.FAILURE and outage.end is None and outage.start.tzinfo
    with pytest.raises(KsefServerError):  # the API is down with it; Latarnia itself still answers
        kv.context_limits()
    set_state(simulator, status="AVAILABLE")
    assert client.status().status == "AVAILABLE"
    (closed,) = client.messages()
    assert closed.end is not None and closed.outage().end == closed.end
    assert kv.context_limits()
    set_state(simulator, status="MAINTENANCE", apiUnavailable=False)
    assert client.status().messages[0].kind is OutageKind.UNAVAILABILITY
    assert kv.context_limits()  # announced, but the API still up
    assert len(client.messages()) == 2
    assert requests.delete(f"{simulator.base_url}/_simulator/latarnia", timeout=10).status_code == 204
    assert client.status() == LatarniaStatus("AVAILABLE", ())


def test_the_control_endpoint_refuses_unknown_states(simulator):
    resp = requests.post(f"{simulator.base_url}/_simulator/latarnia", json={"status": "BROKEN"}, timeout=10)
    assert resp.status_code == 400
    assert "AVAILABLE" in resp.text


def test_latarnia_that_cannot_be_read():
    with pytest.raises(LatarniaError, match="cannot be reached"):
        LatarniaClient("http://127.0.0.1:9", timeout=2).status()
    with pytest.raises(LatarniaError, match="no known status"):
        LatarniaStatus.from_json({"status": "SUNNY"})
    with pytest.raises(LatarniaError):
        LatarniaStatus.from_json({"status": "FAILURE", "messages": "down"})
    with pytest.raises(ValueError):
        LatarniaClient("ftp://example.org")
    assert LatarniaClient.for_environment("test").base_url == "https://api-latarnia-test.ksef.mf.gov.pl"
    with pytest.raises(ValueError, match="DEMO"):
        LatarniaClient.for_environment("DEMO")


def test_messages_of_the_documented_shape():
    message = LatarniaMessage.from_json(
        {
            "id": "1", "eventId": "E1", "category": "02", "type": "AWARIA", "title": "Awaria całkowita",
            "text": "KSeF nie działa.", "start": "2026-03-02T08:00:00+01:00", "end": "2026-03-03T10:00:00+01:00",
            "version": 2, "published": "2026-03-02T08:05:00+01:00",
        }
    )  # fmt: skip
    outage = message.outage()
    assert outage.kind is OutageKind.TOTAL_FAILURE
    assert outage.start == datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc)
    assert outage.end == datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)
    news = LatarniaMessage.from_json({"id": "2", "category": "99", "title": "Nowa wersja"})
    assert news.outage() is None


@pytest.mark.parametrize(
    ("status", "answers", "state"),
    [
        ("AVAILABLE", True, "available"),
        ("AVAILABLE", None, "available"),
        ("AVAILABLE", False, "unreachable"),
        ("MAINTENANCE", True, "maintenance"),
        ("FAILURE", False, "failure"),
        ("TOTAL_FAILURE", None, "total_failure"),
        (None, True, "available"),
        (None, False, "unreachable"),
        (None, None, "unreachable"),
    ],
)
def test_availability(status, answers, state):
    seen = LatarniaStatus(status) if status else None
    assert latarnia.availability(seen, answers) == state
    assert state in latarnia.STATES


def test_offline_mode_per_invoice_of_an_online_session(simulator):
    from ksefnet_core.simulator.sessions_api import store

    client = token_client(simulator)
    with OnlineSession(client) as session:
        online = session.send(invoice())
        offline = session.send(invoice(), offline_mode=True)
        statuses = session.wait_for_invoices(
            [online.reference_number, offline.reference_number], timeout=10, poll_interval=0.05
        )
    assert statuses[online.reference_number].invoicing_mode == "Online"
    assert statuses[offline.reference_number].invoicing_mode == "Offline"
    repo = store(simulator.app).repository
    assert repo.invoices[statuses[offline.reference_number].ksef_number].invoicing_mode == "Offline"
