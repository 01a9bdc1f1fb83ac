"""KSeF API 2.8's error 21184 (session temporarily unavailable) as an injectable fault, and system warnings
(``X-System-Warning``, forced on TEST by ``X-Test-System-Warning``) as the client logs and keeps them; over
real HTTP with conformance on."""

from __future__ import annotations

import logging

import pytest

from ksefnet_core import outcomes
from ksefnet_core.client import parse_system_warnings
from ksefnet_core.errors import KsefSessionUnavailable
from ksefnet_core.sessions import OnlineSession

from .client_support import control, invoice, new_client, token_client


def test_session_unavailable_strikes_a_session_after_some_invoices_and_a_new_one_takes_the_rest(simulator):
    client = token_client(simulator)
    control(simulator, "/faults", {"kind": "session_unavailable", "after": 2, "times": 1})
    xmls = [invoice() for _ in range(4)]
    first = OnlineSession(client)
    first.open()
    accepted = [first.send(xmls[0]), first.send(xmls[1])]
    with pytest.raises(KsefSessionUnavailable) as info:
        first.send(xmls[2])
    err = info.value
    assert err.code == 21184 and err.http_status == 400
    assert outcomes.classify(err, outcomes.SEND).kind == outcomes.SESSION
    with pytest.raises(KsefSessionUnavailable):  # the session stays unavailable
        first.send(xmls[2])
    first.close()  # it can still be closed
    with OnlineSession(client) as second:  # the rule struck once: a new session takes the rest
        later = [second.send(x) for x in xmls[2:]]
        statuses = second.wait_for_invoices(
            [s.reference_number for s in later], timeout=10, poll_interval=0.05
        )
    assert [st.code for st in statuses.values()] == [200, 200]
    assert len(list(first.invoices())) == 2  # the refused sends never entered the first session
    assert {s.reference_number for s in accepted} == {st.reference_number for st in first.invoices()}


def test_session_unavailable_can_target_one_session_by_path(simulator):
    client = token_client(simulator)
    one, other = OnlineSession(client), OnlineSession(client)
    one.open()
    other.open()
    control(
        simulator,
        "/faults",
        {"kind": "session_unavailable", "path": f"/sessions/online/{one.reference_number}/invoices"},
    )
    with pytest.raises(KsefSessionUnavailable):
        one.send(invoice())
    assert other.send(invoice()).reference_number


def test_bad_session_unavailable_rules_are_refused(simulator):
    import requests

    url = f"{simulator.base_url}/_simulator/faults"
    assert requests.post(url, json={"kind": "session_unavailable", "after": -1}, timeout=5).status_code == 400
    assert requests.post(url, json={"kind": "system_warning"}, timeout=5).status_code == 400


def test_test_system_warning_header_comes_back_as_a_system_warning(simulator, caplog):
    client = token_client(simulator)
    seen = []
    client.on_system_warning = seen.append
    client.http.headers["X-Test-System-Warning"] = "[W01]: Faktura zostanie odrzucona | [W02]: Próba"
    with caplog.at_level(logging.WARNING, logger="ksefnet_core.client"):
        client.context_limits()
    assert [(w.code, w.message) for w in client.system_warnings] == [
        ("W01", "Faktura zostanie odrzucona"),
        ("W02", "Proba"),  # ASCII-folded, as KSeF does
    ]
    assert seen == list(client.system_warnings)
    assert all(w.method == "GET" and w.path == "/limits/context" for w in seen)
    assert "KSeF system warning on GET /limits/context: [W01]: Faktura zostanie odrzucona" in caplog.text


def test_client_option_sends_the_test_warning_header_and_warnings_come_on_error_answers_too(simulator):
    client = new_client(simulator, test_system_warning="[T1]: ostrzezenie testowe")
    client.auth_challenge()
    assert [str(w) for w in client.system_warnings] == ["[T1]: ostrzezenie testowe"]
    control(simulator, "/faults", {"kind": "system_warning", "message": "[X9]: uwaga", "path": "/limits/*"})
    other = token_client(simulator)
    other.context_limits()
    assert ("X9", "uwaga") in [(w.code, w.message) for w in other.system_warnings]


def test_a_test_warning_that_http_cannot_carry_is_refused_clearly(simulator):
    with pytest.raises(ValueError, match="ASCII"):
        new_client(simulator, test_system_warning="Zażółć")


def test_a_failing_listener_does_not_turn_the_answer_into_an_error(simulator):
    client = new_client(simulator, test_system_warning="[T1]: x")

    def broken(_warning):
        raise RuntimeError("listener bug")

    client.on_system_warning = broken
    assert client.auth_challenge()["challenge"]


def test_parse_system_warnings():
    assert parse_system_warnings(None) == []
    assert parse_system_warnings("  ") == []
    assert parse_system_warnings("[A]: one | [B-2]: two ") == [("A", "one"), ("B-2", "two")]
    assert parse_system_warnings("free text from a newer KSeF") == [("?", "free text from a newer KSeF")]
