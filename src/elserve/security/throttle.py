"""A brake on password guessing, per pair of user name and client address.

Elasticsearch relies on bcrypt's cost alone. A service that may face the
internet adds a brake, with rules chosen so that it can never become a tool to
lock somebody else out, nor a faster way to test a password:

* Failures are counted per (user, address) pair (an IPv6 client by its /64, the
  block one host is usually given). Failures from one address never slow any
  other address: an attacker elsewhere cannot lock the right password out.
* The first `free_failures` failures of a pair cost nothing; after that each
  password check of the pair waits `base_delay_s`, doubling with each further
  failure, up to `max_delay_s`. A check still running counts as a failure until
  it ends, so concurrent guesses are spaced as sequential ones are.
* An attempt that would wait longer than `max_delay_s` is refused at once (429,
  "retry later") and counts for nothing.
* The brake is decided before the password is looked at (the cache of verified
  passwords included): while a pair is braked, a right password and a wrong one
  get the same answer, and each wrong password answered 401 cost a bcrypt check
  in its turn. Only an attempt that starts a check takes a turn: one answered
  from the cache, or by a check of the same credential already running, tells
  nothing new.
* A success clears its pair. Failures are forgotten after `forget_after_s`
  without a new one.

A guesser with many addresses is bounded by bcrypt's cost alone, as in
Elasticsearch. The clock is injected, so the rules are tested without sleeping.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from elserve.errors import SecurityException


@dataclass
class _Record:
    failures: int = 0
    checking: int = 0  # password checks of this pair still running
    last_failure: float = -math.inf
    next_allowed: float = -math.inf


def client_block(address: str) -> str:
    """The address the brake counts: an IPv4 address as it is, an IPv6 one by its /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


class LoginThrottle:
    def __init__(
        self,
        free_failures: int = 5,
        base_delay_s: float = 0.5,
        max_delay_s: float = 10.0,
        forget_after_s: float = 900.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self._max_entries = max_entries
        self._clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    def delay(self, failures: int) -> float:
        """The spacing between a pair's checks once `failures` of them failed (or may still fail)."""
        if failures < self.free_failures:
            return 0.0
        return min(self.base_delay_s * 2 ** (failures - self.free_failures), self.max_delay_s)

    def admit(self, username: str, address: str) -> float:
        """Seconds this attempt must wait before its password is looked at; raises 429 if too long.

        Decided from the pair's record alone, never from the password. An attempt that must wait takes
        its slot now (the next attempt of the pair is spaced after it); one that may go at once takes it
        when it starts a check (`checking`), so an attempt answered without one (the cache, or a check
        of the same credential already running) leaves the pair's turns as they were."""
        now = self._clock()
        r = self._current(self._key(username, address), now)
        if r is None:
            return 0.0
        start = max(now, r.next_allowed)
        wait = start - now
        if wait > self.max_delay_s:
            raise SecurityException(
                f"too many failed authentication attempts for user [{username}]; retry in [{math.ceil(wait)}s]",
                status=429,
                headers={"Retry-After": [str(math.ceil(wait))]},
            )
        if wait > 0:
            self._reserve(r, start)
        return wait

    def checking(self, username: str, address: str, waited: bool = False) -> None:
        """A password check of the pair starts (bcrypt): it counts as a failure until `checked`. `waited`:
        its attempt took its slot when admitted."""
        key = self._key(username, address)
        now = self._clock()
        r = self._current(key, now)
        if r is None:
            r = self._records[key] = _Record()
            if len(self._records) > self._max_entries:
                self._records.popitem(last=False)
        if not waited:
            self._reserve(r, now)
        r.checking += 1

    def _reserve(self, r: _Record, start: float) -> None:
        """An attempt starting at `start` may fail: the pair's next one is spaced after it."""
        r.next_allowed = max(r.next_allowed, start + self.delay(r.failures + r.checking + 1))

    def checked(self, username: str, address: str, failed: bool) -> None:
        """The check ended; a failure spaces the pair's next check from now."""
        now = self._clock()
        r = self._records.get(self._key(username, address))
        if r is None:  # cleared by a success meanwhile, or evicted
            return
        r.checking = max(0, r.checking - 1)
        if failed:
            r.failures += 1
            r.last_failure = now
            r.next_allowed = max(r.next_allowed, now + self.delay(r.failures + r.checking))

    def succeeded(self, username: str, address: str) -> None:
        """The pair presented the right password: its failures and spacing are cleared."""
        key = self._key(username, address)
        r = self._records.get(key)
        if r is None:
            return
        if r.checking:
            r.failures, r.next_allowed = 0, -math.inf
        else:
            del self._records[key]

    @staticmethod
    def _key(username: str, address: str) -> tuple[str, str]:
        return username, client_block(address)

    def _current(self, key: tuple[str, str], now: float) -> _Record | None:
        """The pair's record, or None if it has none (or only forgotten failures)."""
        r = self._records.get(key)
        if r is None:
            return None
        if not r.checking and now - r.last_failure > self.forget_after_s and now >= r.next_allowed:
            del self._records[key]
            return None
        self._records.move_to_end(key)
        return r
