import pytest

from elserve.errors import SecurityException
from elserve.security.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _fail(throttle: LoginThrottle, clock: Clock, user: str, address: str) -> float:
    wait = throttle.admit(user, address)
    clock.now += wait  # the caller sleeps this long, then the check fails
    throttle.failed(user, address)
    return wait


def test_first_failures_are_free_then_the_wait_doubles_up_to_a_cap(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=5, base_delay_s=0.5, max_delay_s=10.0, clock=clock)
    waits = [_fail(throttle, clock, "elastic", "10.0.0.1") for _ in range(12)]
    assert waits[:5] == [0.0] * 5  # five failures at full speed
    assert waits[5:] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_the_wait_applies_per_user_across_addresses(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, clock=clock)
    for i in range(3):
        _fail(throttle, clock, "elastic", f"10.0.0.{i}")  # three addresses, one user
    assert throttle.admit("elastic", "10.0.0.99") > 0
    assert throttle.admit("someone-else", "10.0.0.98") == 0.0


def test_the_wait_applies_per_address_across_users(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, clock=clock)
    for i in range(3):
        _fail(throttle, clock, f"user{i}", "10.0.0.1")
    assert throttle.admit("user99", "10.0.0.1") > 0
    assert throttle.admit("user99", "10.0.0.2") == 0.0


def test_a_flood_is_refused_at_once_and_does_not_push_the_turn_back(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=1, base_delay_s=4.0, max_delay_s=8.0, clock=clock)
    for _ in range(3):
        _fail(throttle, clock, "elastic", "6.6.6.6")
    admitted = [throttle.admit("elastic", "6.6.6.6") for _ in range(1)]
    with pytest.raises(SecurityException) as caught:
        for _ in range(100):  # concurrent guesses: a few reserve slots, the rest are refused, not queued
            admitted.append(throttle.admit("elastic", "6.6.6.6"))
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"]
    assert len(admitted) <= 3
    # The right password from anywhere gets a turn within the cap: never locked out for good.
    clock.now += 9.0
    assert throttle.admit("elastic", "192.168.1.5") <= 8.0


def test_an_address_that_logged_in_skips_the_users_brake(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=1, base_delay_s=5.0, clock=clock)
    throttle.admit("elastic", "192.168.1.5")
    throttle.succeeded("elastic", "192.168.1.5")
    for _ in range(4):
        _fail(throttle, clock, "elastic", "6.6.6.6")
    assert throttle.admit("elastic", "192.168.1.5") == 0.0


def test_failures_are_forgotten_after_a_quiet_period(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=1, base_delay_s=1.0, forget_after_s=60.0, clock=clock)
    for _ in range(4):
        _fail(throttle, clock, "elastic", "10.0.0.1")
    clock.now += 61.0
    assert throttle.admit("elastic", "10.0.0.1") == 0.0
