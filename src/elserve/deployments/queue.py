"""The deployment's request queue: admission, and batches cut by a token budget.

As text-embeddings-inference's `core/queue.rs`: entries wait in arrival order; a
batch takes entries while their tokens fit the budget, pushes back the one that
does not, and skips entries whose caller has gone (timed out).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Entry:
    """One text to encode: its token ids and where its answer goes."""

    ids: np.ndarray
    future: asyncio.Future
    retries: int = 0
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
    def __init__(self) -> None:
        self._entries: deque[Entry] = deque()
        self._nonempty = asyncio.Event()

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, entries: Iterable[Entry]) -> None:
        self._entries.extend(entries)
        self._nonempty.set()

    def push_front(self, entries: list[Entry]) -> None:
        """Put entries back at the head (a retried batch keeps its place in line)."""
        self._entries.extendleft(reversed(entries))
        self._nonempty.set()

    async def next_batch(self, max_tokens: int, max_size: int) -> list[Entry]:
        """Wait for work, then take entries in order while their tokens fit `max_tokens`.

        The first live entry is always taken, so one text longer than the budget still runs.
        """
        while True:
            await self._nonempty.wait()
            batch: list[Entry] = []
            tokens = 0
            while self._entries and len(batch) < max_size:
                entry = self._entries[0]
                if entry.future.done():  # its caller timed out or went away
                    self._entries.popleft()
                    continue
                if batch and tokens + entry.size > max_tokens:
                    break
                self._entries.popleft()
                batch.append(entry)
                tokens += entry.size
            if not self._entries:
                self._nonempty.clear()
            if batch:
                # Length-sorted batches pad least in the worker.
                batch.sort(key=lambda e: e.size)
                return batch

    def fail_all(self, exc: BaseException) -> None:
        while self._entries:
            entry = self._entries.popleft()
            if not entry.future.done():
                entry.future.set_exception(exc)
        self._nonempty.clear()
