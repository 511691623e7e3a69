"""The brake on password guessing: failures per user name and per address in a window."""

import pytest

from autobuild.domain.logins import LoginThrottle, LoginThrottled
from tests.fakes import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def throttle(clock):
    return LoginThrottle(clock, max_failures=5)


def fail(throttle, n, user="alice", address="203.0.113.5"):
    for _ in range(n):
        throttle.check(user, address)
        throttle.failed(user, address)


def test_five_failures_a_minute_stop_the_sixth_try_with_the_seconds_to_wait(throttle, clock):
    fail(throttle, 4)
    clock.advance(10)
    fail(throttle, 1)

    with pytest.raises(LoginThrottled) as caught:
        throttle.check("alice", "203.0.113.5")
    assert caught.value.retry_after == 50  # when the first of the five is a minute old
    assert "Try again in 50 seconds" in str(caught.value)

    clock.advance(49.5)  # the first failure is about to leave the window
    with pytest.raises(LoginThrottled) as caught:
        throttle.check("alice", "203.0.113.5")
    assert caught.value.retry_after == 1
    clock.advance(0.5)
    throttle.check("alice", "203.0.113.5")  # one of the five is a minute old


def test_the_user_name_is_braked_from_every_address(throttle):
    for n in range(5):
        fail(throttle, 1, address=f"198.51.100.{n}")

    with pytest.raises(LoginThrottled):
        throttle.check("alice", "192.0.2.77")
    throttle.check("bob", "192.0.2.77")


def test_the_address_is_braked_for_every_user_name(throttle):
    for n in range(5):
        fail(throttle, 1, user=f"guess{n}")

    with pytest.raises(LoginThrottled):
        throttle.check("somebody-else", "203.0.113.5")
    throttle.check("somebody-else", "192.0.2.1")


def test_every_name_counts_the_same_whether_it_exists_or_not(throttle):
    fail(throttle, 5, user="no-such-user", address="192.0.2.1")
    fail(throttle, 5, user="alice", address="192.0.2.2")

    for user, address in (("no-such-user", "192.0.2.3"), ("alice", "192.0.2.4")):
        with pytest.raises(LoginThrottled) as caught:
            throttle.check(user, address)
        assert caught.value.retry_after == 60


def test_a_success_clears_the_name_but_not_the_address(throttle):
    fail(throttle, 4)
    throttle.succeeded("alice")
    fail(throttle, 1, user="alice", address="192.0.2.9")
    throttle.check("alice", "192.0.2.9")
    fail(throttle, 1, user="mallory")

    with pytest.raises(LoginThrottled):  # 203.0.113.5 has its five
        throttle.check("carol", "203.0.113.5")


def test_memory_stays_bounded_whatever_is_tried(clock):
    throttle = LoginThrottle(clock, max_failures=5, max_keys=100)
    for n in range(1000):
        throttle.failed(f"user{n}", f"10.0.{n // 256}.{n % 256}")

    assert len(throttle._failures) <= 100
