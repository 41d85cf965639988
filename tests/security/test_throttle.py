from itertools import pairwise

import pytest

from elserve.errors import SecurityException
from elserve.security.throttle import LoginThrottle, client_block
from tests.support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _fail(throttle: LoginThrottle, clock: Clock, user: str, address: str) -> float:
    wait = throttle.admit(user, address)
    clock.now += wait  # the caller sleeps this long, then the check runs and fails
    throttle.checking(user, address, waited=wait > 0)
    throttle.checked(user, address, failed=True)
    return wait


def test_first_failures_are_free_then_the_wait_doubles_up_to_a_cap(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=5, base_delay_s=0.5, max_delay_s=10.0, clock=clock)
    waits = [_fail(throttle, clock, "elastic", "10.0.0.1") for _ in range(12)]
    assert waits[:5] == [0.0] * 5  # five failures at full speed
    assert waits[5:] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_failures_from_one_address_never_slow_another(clock: Clock) -> None:
    """Issue 24 row 3: the brake counts per (user, address) pair; someone else's failures lock nobody out."""
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, max_delay_s=8.0, clock=clock)
    for _ in range(50):
        try:
            _fail(throttle, clock, "elastic", "6.6.6.6")
        except SecurityException:
            clock.now += 1.0
    with pytest.raises(SecurityException):
        for _ in range(10):
            throttle.admit("elastic", "6.6.6.6")
    assert throttle.admit("elastic", "192.168.1.5") == 0.0
    assert throttle.admit("someone-else", "6.6.6.6") == 0.0  # and another user at the attacker's address


def test_checks_still_running_count_as_failures(clock: Clock) -> None:
    """Twenty concurrent guesses are spaced as twenty sequential ones: only the free ones start at once."""
    throttle = LoginThrottle(free_failures=3, base_delay_s=0.5, max_delay_s=4.0, clock=clock)
    waits: list[float] = []
    refused = 0
    for _ in range(20):
        try:
            wait = throttle.admit("elastic", "6.6.6.6")
        except SecurityException:
            refused += 1
            continue
        waits.append(wait)
        if wait == 0:
            throttle.checking("elastic", "6.6.6.6")  # runs at once; the sleeping ones hold a reserved slot
    assert waits.count(0.0) == 3
    assert sorted(waits)[3:] == waits[3:]  # each later one after the one before it
    assert all(b - a >= 0.5 for a, b in pairwise(waits[3:]))
    assert refused == 20 - len(waits) > 0


def test_a_flood_is_refused_at_once_and_does_not_push_the_turn_back(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=1, base_delay_s=4.0, max_delay_s=8.0, clock=clock)
    for _ in range(3):
        _fail(throttle, clock, "elastic", "6.6.6.6")
    admitted = [throttle.admit("elastic", "6.6.6.6")]
    with pytest.raises(SecurityException) as caught:
        for _ in range(100):  # concurrent guesses: a few reserve slots, the rest are refused, not queued
            admitted.append(throttle.admit("elastic", "6.6.6.6"))
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"]
    assert len(admitted) <= 3
    # The pair itself gets a turn again within the cap: slowed, never locked out for good.
    clock.now += 9.0
    assert throttle.admit("elastic", "6.6.6.6") <= 8.0


def test_an_attempt_answered_without_a_check_keeps_the_pairs_turns(clock: Clock) -> None:
    """Admitted at once, then answered from the cache or by a check of the same credential already running:
    no slot is taken, so a client's burst with one password is not spaced by its own first check."""
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, clock=clock)
    assert throttle.admit("elastic", "10.0.0.1") == 0.0
    throttle.checking("elastic", "10.0.0.1")  # one check running: it may fail
    assert [throttle.admit("elastic", "10.0.0.1") for _ in range(20)] == [0.0] * 20  # each joins it


def test_a_success_clears_its_pair(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=1, base_delay_s=5.0, clock=clock)
    for _ in range(3):
        _fail(throttle, clock, "elastic", "192.168.1.5")
    assert throttle.admit("elastic", "192.168.1.5") > 0
    throttle.succeeded("elastic", "192.168.1.5")
    assert throttle.admit("elastic", "192.168.1.5") == 0.0


def test_a_check_that_ends_without_a_verdict_counts_for_nothing(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=3, base_delay_s=5.0, clock=clock)
    for _ in range(5):
        throttle.checking("elastic", "10.0.0.1")
        throttle.checked("elastic", "10.0.0.1", failed=False)  # e.g. the store could not be read
    assert throttle.admit("elastic", "10.0.0.1") == 0.0


def test_failures_are_forgotten_after_a_quiet_period(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=1, base_delay_s=1.0, forget_after_s=60.0, clock=clock)
    for _ in range(4):
        _fail(throttle, clock, "elastic", "10.0.0.1")
    clock.now += 61.0
    assert throttle.admit("elastic", "10.0.0.1") == 0.0


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_an_ipv6_client_counts_by_its_64(address: str, block: str) -> None:
    assert client_block(address) == block


def test_rotating_addresses_within_a_64_does_not_escape_the_brake(clock: Clock) -> None:
    throttle = LoginThrottle(free_failures=2, base_delay_s=1.0, clock=clock)
    for i in range(3):
        _fail(throttle, clock, "elastic", f"2001:db8::{i + 1}")
    assert throttle.admit("elastic", "2001:db8::99") > 0
