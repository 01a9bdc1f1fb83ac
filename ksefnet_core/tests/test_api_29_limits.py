"""KSeF API 2.8/2.9 rate-limit groups and context limits, end to end over HTTP (conformance on, against the
2.7.0 spec patched with the 2.7.1-2.9.0 changes): the close groups, collective identifiers, anonymous and
global in ``GET /rate-limits``; closing paced in its own group by client and simulator; each endpoint of
``other`` counted on its own by both; ``collectiveIdentifier`` in the context limits."""

from __future__ import annotations

import pytest
import requests

from ksefnet_core.errors import KsefRateLimited
from ksefnet_core.sessions import OnlineSession
from ksefnet_core.simulator import spec
from ksefnet_core.throttle import DEFAULT_LIMITS, Throttle, ThrottleDeferred

from .client_support import control, set_rate_limits, token_client


def test_rate_limits_list_every_group_of_api_2_9(simulator):
    client = token_client(simulator)
    limits = client.rate_limits()
    assert limits["onlineSessionClose"] == {"perSecond": 20, "perMinute": 60, "perHour": 240}
    assert limits["batchSessionClose"] == {"perSecond": 20, "perMinute": 40, "perHour": 120}
    assert limits["onlineSession"] == {"perSecond": 10, "perMinute": 30, "perHour": 120}
    assert limits["batchSession"] == {"perSecond": 10, "perMinute": 20, "perHour": 60}
    assert limits["collectiveIdentifier"] == {"perSecond": 20, "perMinute": 120, "perHour": 240}
    assert limits["global"] == {"perSecond": -1, "perMinute": -1, "perHour": -1}  # reserved, off
    assert limits["anonymous"]["perSecond"] == 60
    # the patched spec requires exactly these groups (conformance checks the answer against it)
    required = spec.load()["components"]["schemas"]["EffectiveApiRateLimits"]["required"]
    assert set(required) == set(limits) == {g for g in DEFAULT_LIMITS if g != "auth"}


def test_closing_online_sessions_is_limited_in_its_own_group(simulator):
    client = token_client(simulator, throttle=False)
    set_rate_limits(client, onlineSessionClose=(1, 1, 10), onlineSession=(10, 30, 120))
    sessions = [OnlineSession(client) for _ in range(3)]
    for session in sessions:
        session.open()  # opening is not touched by the close group
    sessions[0].close()
    with pytest.raises(KsefRateLimited) as info:
        sessions[1].close()
    assert "onlineSessionClose" in str(info.value)


def test_the_client_paces_closing_in_the_close_group_when_the_limits_list_it(simulator):
    client = token_client(simulator, throttle_max_wait=0)
    limits = set_rate_limits(client, onlineSessionClose=(1, 1, 10))
    client.throttle.update_limits(limits)
    first, second = OnlineSession(client), OnlineSession(client)
    first.open()
    second.open()
    first.close()
    with pytest.raises(ThrottleDeferred) as info:  # paced on our side: KSeF never sees the request
        second.close()
    assert info.value.group == "onlineSessionClose" and info.value.wait > 50
    assert len(client.throttle._sent["onlineSessionClose"]) == 1
    assert len(client.throttle._sent["onlineSession"]) == 2  # the two openings only


def test_a_throttle_without_close_groups_paces_closing_with_opening(simulator):
    """Limits of a KSeF before 2.8 (no close groups): closing counts with opening, as it did then."""
    old = {g: v for g, v in DEFAULT_LIMITS.items() if not g.endswith("SessionClose")}
    client = token_client(simulator)
    client.throttle = Throttle(old)
    with OnlineSession(client):
        pass
    assert len(client.throttle._sent["onlineSession"]) == 2
    assert "onlineSessionClose" not in client.throttle._sent


def test_each_endpoint_of_other_has_its_own_counter_on_the_server(simulator):
    client = token_client(simulator, throttle=False)
    set_rate_limits(client, other=(1, 2, 10))
    control(simulator, "/clock", {"advanceSeconds": 2})  # out of the second of the calls so far
    # three different endpoints of "other" in the same second: each counts on its own
    client.context_limits()
    list(client.list_tokens())
    list(client.auth_sessions())
    with pytest.raises(KsefRateLimited):
        client.context_limits()  # the same endpoint again within the second


def test_unauthenticated_calls_count_per_ip_in_anonymous(simulator):
    client = token_client(simulator)
    set_rate_limits(client, anonymous=(2, -1, -1))
    control(simulator, "/clock", {"advanceSeconds": 2})  # out of the second of the authentication's calls
    challenge = f"{simulator.api_base}/auth/challenge"
    answers = [requests.post(challenge, timeout=10).status_code for _ in range(3)]
    assert answers[:2] == [200, 200] and answers[2] == 429


def test_global_limits_apply_to_every_group_once_switched_on(simulator):
    client = token_client(simulator, throttle=False)
    set_rate_limits(client, **{"global": (2, 100, 1000)})
    client.context_limits()  # two requests of two groups fill the global second
    list(client.list_sessions("Online"))
    with pytest.raises(KsefRateLimited) as info:
        client.session_status(OnlineSession(client).open())  # a third group
    assert "global" in str(info.value)


def test_context_limits_carry_the_collective_identifier_limit(simulator):
    client = token_client(simulator)
    limits = client.context_limits()
    assert limits["collectiveIdentifier"] == {"maxInvoices": 500}
    assert limits["onlineSession"]["maxInvoices"] == 10000
    body = {
        "onlineSession": limits["onlineSession"],
        "batchSession": limits["batchSession"],
        "collectiveIdentifier": {"maxInvoices": 3},
    }
    client.request("POST", "/testdata/limits/context/session", json_body=body)
    assert client.context_limits()["collectiveIdentifier"] == {"maxInvoices": 3}
    client.request("DELETE", "/testdata/limits/context/session")
    assert client.context_limits()["collectiveIdentifier"] == {"maxInvoices": 500}
