"""The client-side throttle keeps requests inside KSeF's sliding windows (simulated clock, no sleeping)."""

import pytest

from ksefnet_core.throttle import Throttle, ThrottleDeferred


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def make(limits, margin=0.0):
    clock = FakeClock()
    return Throttle(limits, clock=clock, sleep=clock.sleep, margin=margin), clock


def test_margin_widens_every_window_against_latency_jitter():
    throttle, clock = make({"g": (2, 100, 1000)}, margin=0.25)
    throttle.acquire("g")
    throttle.acquire("g")
    assert throttle.acquire("g") == pytest.approx(1.25)  # KSeF may count the first one 0.25 s late


def test_per_second_window_spaces_requests():
    throttle, clock = make({"g": (2, 100, 1000)})
    assert throttle.acquire("g") == 0
    assert throttle.acquire("g") == 0
    waited = throttle.acquire("g")  # third request in the same second must wait for the first to expire
    assert waited == pytest.approx(1.0)
    assert clock.now == pytest.approx(1001.0)


def test_every_window_is_enforced_at_once():
    throttle, clock = make({"g": (10, 3, 1000)})
    for _ in range(3):
        throttle.acquire("g")
    assert throttle.delay("g") == pytest.approx(60.0)
    with pytest.raises(ThrottleDeferred) as info:
        throttle.acquire("g", max_wait=5)
    assert info.value.wait == pytest.approx(60.0)
    assert clock.now == 1000.0  # a deferred acquire does not sleep


def test_hourly_limit_from_rate_limits_answer():
    throttle = Throttle.from_rate_limits(
        {"invoiceMetadata": {"perSecond": 100, "perMinute": 100, "perHour": 2}}
    )
    assert throttle.limits["invoiceMetadata"] == (100, 100, 2)
    assert throttle.limits["invoiceSend"] == (10, 30, 180)  # groups not in the answer keep KSeF's defaults


def test_old_requests_leave_the_windows():
    throttle, clock = make({"g": (1, 1, 2)})
    throttle.acquire("g")
    clock.now += 61
    assert throttle.acquire("g") == 0
    clock.now += 61
    assert throttle.delay("g") == pytest.approx(3600 - 122)
    clock.now += 3600
    assert throttle.delay("g") == 0


def test_penalty_after_unexpected_429_holds_group():
    throttle, clock = make({"g": (10, 100, 1000)})
    throttle.penalise("g", 30)
    assert throttle.delay("g") == pytest.approx(30)
    assert throttle.delay("other") == 0
    assert throttle.acquire("g") == pytest.approx(30)


def test_unknown_group_is_not_limited():
    throttle, _ = make({})
    for _ in range(100):
        assert throttle.acquire("anything") == 0


def test_client_paces_itself_below_the_simulators_limits(simulator):
    """Against a server that enforces KSeF's windows, a throttled client never receives a 429."""
    import requests

    from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token
    from ksefnet_core.client import KsefClient
    from ksefnet_core.environments import Environment

    nip = "5265877635"
    token = requests.post(f"{simulator.base_url}/_simulator/tokens", json={"nip": nip}, timeout=10).json()[
        "token"
    ]
    client = KsefClient(Environment.custom(simulator.api_base, name="SIM"), timeout=10, throttle=Throttle())
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(nip), poll_interval=0.05)
    limits = client.rate_limits()
    limits["other"] = {"perSecond": 3, "perMinute": 100, "perHour": 1000}
    client.set_test_rate_limits(limits)
    client.throttle.update_limits(client.rate_limits())  # the requests so far stay counted
    for _ in range(7):  # 7 calls at 3 per second: the throttle waits twice, the server never refuses
        client.context_limits()
    sent = client.throttle._sent["other GET /limits/context"]  # the endpoint's own counter in "other"
    assert sent[-1] - sent[0] >= 2.0


def test_capacity_is_the_room_left_in_the_minute_and_hour_windows():
    throttle, clock = make({"g": (2, 5, 8), "free": (0, 0, 0)})
    assert throttle.capacity("g") == 5
    for _ in range(4):
        throttle.acquire("g")
    assert throttle.capacity("g") == 1  # the minute window; the per-second window only paces
    clock.now += 61
    assert throttle.capacity("g") == 4  # the minute window emptied; the hour has 4 of 8 left
    assert throttle.capacity("g", horizon=3600) == 5  # in an hour every window is empty again
    assert throttle.capacity("unknown") is None and throttle.capacity("free") is None


def test_each_endpoint_of_other_counts_on_its_own():
    throttle, clock = make({"other": (1, 30, 120)})
    assert throttle.acquire("other", counter="GET /a") == 0
    assert throttle.acquire("other", counter="GET /b") == 0  # another endpoint: its own window
    assert throttle.acquire("other", counter="GET /a") == pytest.approx(1.0)
    assert throttle.capacity("other", counter="GET /b") == 29


def test_global_counts_every_request_once_it_has_a_limit():
    throttle, clock = make({"g": (10, 100, 1000), "h": (10, 100, 1000), "global": (-1, -1, -1)})
    for _ in range(5):
        throttle.acquire("g")
        throttle.acquire("h")
    assert throttle.delay("g") == 0  # global is off (-1), as KSeF lists it
    throttle.update_limits({"global": {"perSecond": 2, "perMinute": 100, "perHour": 1000}})
    throttle.acquire("g")
    throttle.acquire("h")
    assert throttle.delay("g") == pytest.approx(1.0)  # two requests of any group fill the global second


def test_update_limits_adopts_new_and_unknown_groups_and_ignores_junk():
    throttle, _ = make({})
    throttle.update_limits(
        {
            "onlineSessionClose": {"perSecond": 20, "perMinute": 60, "perHour": 240},
            "someFutureGroup": {"perSecond": 5},  # windows left out: no limit in them
            "global": {"perSecond": -1, "perMinute": -1, "perHour": -1},
            "broken": {"perSecond": "many"},
            "notAGroup": 7,
        }
    )
    assert throttle.limits["onlineSessionClose"] == (20, 60, 240)
    assert throttle.limits["someFutureGroup"] == (5, -1, -1)
    assert "broken" not in throttle.limits and "notAGroup" not in throttle.limits
    assert throttle.capacity("global") is None and not throttle.active("global")
    throttle.update_limits(None)  # type: ignore[arg-type]  # a malformed answer changes nothing


def test_default_limits_are_those_of_api_2_9():
    from ksefnet_core.throttle import DEFAULT_LIMITS

    assert DEFAULT_LIMITS["onlineSessionClose"] == (20, 60, 240)
    assert DEFAULT_LIMITS["batchSessionClose"] == (20, 40, 120)
    assert DEFAULT_LIMITS["onlineSession"] == (10, 30, 120)
    assert DEFAULT_LIMITS["batchSession"] == (10, 20, 60)
    assert DEFAULT_LIMITS["collectiveIdentifier"] == (20, 120, 240)
