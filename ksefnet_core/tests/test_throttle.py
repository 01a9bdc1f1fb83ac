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


def make(limits):
    clock = FakeClock()
    return Throttle(limits, clock=clock, sleep=clock.sleep), clock


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
