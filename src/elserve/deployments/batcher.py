"""The dispatcher of a deployment: it cuts the queued texts into batches by a token budget and hands each
to a worker the backend picks, then answers each text from the batch's result.

The same for every backend: a local allocation (allocation.py) or Ray Serve (rayserve/deployment.py) is a
`Worker` that runs a batch; the backend only says which worker takes the next one (`Pick`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from elserve.deployments import messages
from elserve.deployments.config import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from elserve.deployments.queue import Entry, LanedQueue
from elserve.deployments.stats import DeploymentCounters
from elserve.errors import ElasticsearchError
from elserve.runtime import SparseVector

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_BATCH_TOKENS",
    "BatchAnswer",
    "Batcher",
    "Pick",
    "Worker",
    "WorkerDied",
]

# One batch's answer: per text (indices, weights), in the batch's order; and the seconds the batch took.
BatchAnswer = tuple[list[tuple[np.ndarray, np.ndarray]], float]


class WorkerDied(Exception):
    """The worker (a process, or a Ray replica) ended while it held the batch: it is retried once elsewhere."""


class Worker(Protocol):
    # Batches it runs beside each other, one per thread, when it has a backlog: each is cut to its
    # share of the token budget, so that they hold the memory one batch of the whole budget would.
    slots: int

    def submit(self, batch: list[np.ndarray], more_waiting: bool = False) -> asyncio.Future[BatchAnswer]:
        """Run a batch of token-id arrays (`more_waiting`: texts are still queued after it); the
        future fails with `WorkerDied`, an Elasticsearch error (answered as it is), or any other
        exception (the encoder's: `inference failed`)."""
        ...

    def withdraw(self, future: asyncio.Future[BatchAnswer]) -> None:
        """Every caller of the batch has gone (timed out): stop it if the worker can."""
        ...


# Who takes the next batch, and whether only search entries may go there; None: none is free, wait.
Pick = Callable[[bool], "tuple[Worker, bool] | None"]


class BatchObserver(Protocol):
    def batch(self, deployment_id: str, size: int, tokens: int) -> None: ...


@dataclass(eq=False)
class Batcher:
    """`failed`: whether the deployment has failed (a dead worker's batch is not retried then)."""

    deployment_id: str
    queue: LanedQueue
    counters: DeploymentCounters
    observer: BatchObserver
    max_batch_tokens: int
    max_batch_size: int
    failed: Callable[[], bool]
    # A worker is free or work arrived: the dispatcher looks again.
    _free: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def wake(self) -> None:
        """A worker is free, or texts were queued: look again."""
        self._free.set()

    async def run(self, pick: Pick) -> None:
        """Forever: wait for work, then for a free worker, then cut the next batch and send it.

        The batch is cut when a worker is free, so it holds what arrived in the meantime; the worker is
        picked when there is work, so that of several idle ones the backend can give it to the last to
        finish (its caches are warm).
        """
        while True:
            self._free.clear()
            picked = pick(self.queue.has_search) if len(self.queue) else None
            if picked is None:
                await self._free.wait()
                continue
            worker, search_only = picked
            entries = self.queue.take(max(1, self.max_batch_tokens // worker.slots), self.max_batch_size, search_only)
            if not entries:  # their callers had gone
                continue
            future = worker.submit([e.ids for e in entries], more_waiting=len(self.queue) > 0)
            self.observer.batch(self.deployment_id, len(entries), sum(e.size for e in entries))
            future.add_done_callback(functools.partial(self._batch_done, entries))
            _withdraw_when_abandoned(worker, future, entries)

    def _batch_done(self, entries: list[Entry], future: asyncio.Future[BatchAnswer]) -> None:
        exc = None if future.cancelled() else future.exception()
        if future.cancelled():
            exc = WorkerDied("the batch was cancelled")
        if isinstance(exc, WorkerDied) and self.failed():
            # Nothing is left to retry on: the entries get what the queued ones got.
            self._fail_entries(entries, messages.not_serving(self.deployment_id, "failed"))
            return
        if isinstance(exc, WorkerDied):
            retry = [e for e in entries if not e.future.done() and e.retries == 0]
            for entry in retry:
                entry.retries += 1
            if retry:
                self.queue.push_front(retry)
                self._free.set()
            # Entries already retried once get the error; the retried ones are not done, so skipped.
            self._fail_entries([e for e in entries if e not in retry], messages.process_crashed(exc))
            return
        if isinstance(exc, ElasticsearchError):  # the backend's own answer (Ray: its queue is full)
            self._fail_entries(entries, exc, count=False)
            return
        if exc is not None:
            self._fail_entries(entries, messages.inference_failed(exc))
            return
        vectors, seconds = future.result()
        self.counters.record(len(entries), seconds / len(entries))
        for entry, (indices, weights) in zip(entries, vectors, strict=True):
            if not entry.future.done():
                entry.future.set_result(SparseVector(indices, weights))

    def _fail_entries(self, entries: list[Entry], error: Exception, *, count: bool = True) -> None:
        for entry in entries:
            if not entry.future.done():
                if count:
                    self.counters.error_count += 1
                entry.future.set_exception(error)


def _withdraw_when_abandoned(worker: Worker, future: asyncio.Future[BatchAnswer], entries: list[Entry]) -> None:
    """Once every text of a running batch is cancelled (its callers timed out), the worker may stop it."""
    waiting = len(entries)

    def gone(_: asyncio.Future) -> None:
        nonlocal waiting
        waiting -= 1
        if not waiting and not future.done() and all(e.future.cancelled() for e in entries):
            worker.withdraw(future)

    for entry in entries:
        entry.future.add_done_callback(gone)
