"""A brake on password guessing: failed logins slow further attempts, per user and per address.

Elasticsearch relies on bcrypt's cost alone; a service that may face the
internet needs more, without letting anybody lock the right password out:

* The first `free_failures` failures of a user (from any address) or of an
  address (for any user) cost nothing; each further one doubles the wait before
  that key's next password check, up to `max_delay_s`.
* Attempts are spaced, not queued: one that would have to wait longer than
  `max_delay_s` is refused at once (429, "retry later") and counts for nothing,
  so a flood cannot push the right password's turn back for ever.
* A password verified before is answered from the realm cache without a check,
  and an address that has logged in as a user skips that user's brake (its own
  brake still applies): an attacker elsewhere does not slow the real user down.
* Failures are forgotten after `forget_after_s` without a new one.

The clock is injected, so the rules are tested without sleeping.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from elserve.errors import SecurityException


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = -math.inf
    next_allowed: float = -math.inf


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
        self._known_good: OrderedDict[tuple[str, str], None] = OrderedDict()

    def delay(self, failures: int) -> float:
        """The spacing between checks after `failures` recent failures."""
        if failures < self.free_failures:
            return 0.0
        return min(self.base_delay_s * 2 ** (failures - self.free_failures), self.max_delay_s)

    def admit(self, username: str, address: str) -> float:
        """Seconds this attempt must wait before its password is checked; raises 429 if too long.

        Admitting reserves the slot: the next attempt on the same keys is spaced after it."""
        now = self._clock()
        records = [self._record(key, now) for key in self._keys(username, address)]
        start = max([now, *(r.next_allowed for r in records)])
        wait = start - now
        if wait > self.max_delay_s:
            raise SecurityException(
                f"too many failed authentication attempts for user [{username}]; retry in [{math.ceil(wait)}s]",
                status=429,
                headers={"Retry-After": [str(math.ceil(wait))]},
            )
        for r in records:
            gap = self.delay(r.failures)
            if gap > 0:
                r.next_allowed = start + gap
        return wait

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        for key in self._keys(username, address):
            r = self._record(key, now)
            r.failures += 1
            r.last_failure = now
            r.next_allowed = max(r.next_allowed, now + self.delay(r.failures))

    def succeeded(self, username: str, address: str) -> None:
        self._known_good[(username, address)] = None
        self._known_good.move_to_end((username, address))
        if len(self._known_good) > self._max_entries:
            self._known_good.popitem(last=False)

    def _keys(self, username: str, address: str) -> list[tuple[str, str]]:
        keys = [("address", address)]
        if (username, address) not in self._known_good:
            keys.append(("user", username))
        return keys

    def _record(self, key: tuple[str, str], now: float) -> _Record:
        r = self._records.get(key)
        if r is None or now - r.last_failure > self.forget_after_s and now >= r.next_allowed:
            r = _Record()
            self._records[key] = r
            if len(self._records) > self._max_entries:
                self._records.popitem(last=False)
        self._records.move_to_end(key)
        return r
