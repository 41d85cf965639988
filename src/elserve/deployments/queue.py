"""The deployment's request queue: admission, and batches cut by a token budget.

As text-embeddings-inference's `core/queue.rs`: a batch takes entries while
their tokens fit the budget, leaves the one that does not, and skips entries
whose caller has gone (timed out). Unlike a plain FIFO, requests take turns.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

# A request's turn gives a batch at most this share of its token budget (at least one entry): two
# requests of half a budget share a batch, and a request of 16 passages of ~120 tokens fits a turn
# of the default 4,096-token budget.
TURN_SHARE = 2


@dataclass(eq=False)
class Entry:
    """One text to encode: its token ids and where its answer goes."""

    ids: np.ndarray
    future: asyncio.Future
    retries: int = 0
    search: bool = False  # search-like: served before ingest-like entries (see lanes.py)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.ids)


class Admission:
    """A bounded count of requests inside the deployment; when it is full, callers get 429 at once."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self.idle = asyncio.Event()  # set while no request is inside
        self.idle.set()

    def try_acquire(self) -> bool:
        if self.count >= self.capacity:
            return False
        self.count += 1
        self.idle.clear()
        return True

    def release(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


class RequestQueue:
    """Entries grouped by request; batches take from the requests in turn.

    Within a request, order is kept. Across requests, each waiting request in turn gives the
    batch its next entries, up to a turn's share of the budget (`TURN_SHARE`), while the budget
    allows (deficit round robin): a short request is not stuck behind a bulk one that arrived
    first, and a request that fits in a turn is answered by one batch. With one entry a turn, a
    bulk load's requests would all end together, with its last batch: its clients, each waiting
    for its answer before sending more, would leave the workers idle until the last batch ended.
    """

    def __init__(self) -> None:
        self._groups: OrderedDict[int, deque[Entry]] = OrderedDict()
        self._count = 0
        self._nonempty = asyncio.Event()
        self._keys = itertools.count()

    def __len__(self) -> int:
        return self._count

    def push(self, entries: Iterable[Entry]) -> None:
        """One request's entries, answered in the order given."""
        group = deque(entries)
        if group:
            self._groups[next(self._keys)] = group
            self._count += len(group)
            self._nonempty.set()

    def push_front(self, entries: list[Entry]) -> None:
        """Put entries back first in line (a retried batch goes before everything else)."""
        if entries:
            key = next(self._keys)
            self._groups[key] = deque(entries)
            self._groups.move_to_end(key, last=False)
            self._count += len(entries)
            self._nonempty.set()

    def _take(self, max_tokens: int, max_size: int) -> list[Entry]:
        batch: list[Entry] = []
        tokens = 0
        turn_tokens = max(1, max_tokens // TURN_SHARE)
        progressed = True
        while progressed and len(batch) < max_size:
            progressed = False
            for key in list(self._groups):
                group = self._groups[key]
                served = 0  # this request's tokens in this turn
                while len(batch) < max_size:
                    while group and group[0].future.done():  # its caller timed out or went away
                        group.popleft()
                        self._count -= 1
                    if not group:
                        break
                    size = group[0].size
                    if batch and (tokens + size > max_tokens or (served and served + size > turn_tokens)):
                        break
                    entry = group.popleft()
                    self._count -= 1
                    batch.append(entry)
                    tokens += entry.size
                    served += size
                    progressed = True
                if not group:
                    del self._groups[key]
                elif served:
                    self._groups.move_to_end(key)  # the next turn starts with the others
                if len(batch) >= max_size:
                    break
        return batch

    async def wait(self) -> None:
        """Until an entry waits (maybe one whose caller has gone, which `take` skips)."""
        await self._nonempty.wait()

    def take(self, max_tokens: int, max_size: int) -> list[Entry]:
        """Entries while their tokens fit `max_tokens`, sorted by length (they pad least so);
        empty if no caller is waiting any more.

        The first live entry is always taken, so one text longer than the budget still runs.
        """
        batch = self._take(max_tokens, max_size)
        if not self._groups:
            self._nonempty.clear()
        batch.sort(key=lambda e: e.size)
        return batch

    def fail_all(self, exc: BaseException) -> None:
        for group in self._groups.values():
            for entry in group:
                if not entry.future.done():
                    entry.future.set_exception(exc)
        self._groups.clear()
        self._count = 0
        self._nonempty.clear()


class LanedQueue:
    """Two `RequestQueue`s: search-like entries are always taken before ingest-like ones.

    A batch is cut from one lane only, so a query never rides in (and waits for) a bulk batch.
    """

    def __init__(self) -> None:
        self._search = RequestQueue()
        self._ingest = RequestQueue()

    def __len__(self) -> int:
        return len(self._search) + len(self._ingest)

    @property
    def has_search(self) -> bool:
        return len(self._search) > 0

    def _lane(self, entries: list[Entry]) -> RequestQueue:
        return self._search if entries and entries[0].search else self._ingest

    def push(self, entries: list[Entry]) -> None:
        """One request's entries (all of one lane)."""
        self._lane(entries).push(entries)

    def push_front(self, entries: list[Entry]) -> None:
        for search in (True, False):
            lane = [e for e in entries if e.search is search]
            self._lane(lane).push_front(lane)

    def take(self, max_tokens: int, max_size: int, search_only: bool = False) -> list[Entry]:
        """The next batch: from the search lane while it has entries, else (unless `search_only`) from ingest."""
        batch = self._search.take(max_tokens, max_size)
        if batch or search_only:
            return batch
        return self._ingest.take(max_tokens, max_size)

    def fail_all(self, exc: BaseException) -> None:
        self._search.fail_all(exc)
        self._ingest.fail_all(exc)
