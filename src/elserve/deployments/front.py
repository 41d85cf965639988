"""The front half of a deployment, the same whatever runs its allocations.

Flow of one request: `infer(texts)` is admitted (or refused with 429), tokenized (in a thread unless
short), queued as one entry per text in its lane (search-like first, lanes.py); the dispatcher
(batcher.py) cuts batches by token budget and hands each to a worker the backend picks; answers come
back per entry and the request gathers them in input order. Identity, state, waiting for a state,
failing, and every Elasticsearch message of a deployment (messages.py) live here, once.

A backend is a subclass that implements only the contract below (`DeploymentFront`'s abstract
members): start and stop its allocations, scale them, pick the worker of the next batch (a
`batcher.Worker` runs a batch), and report their health and memory. Two exist: local worker processes
(deployment.py) and Ray Serve replicas (rayserve/deployment.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from elserve.deployments import messages
from elserve.deployments.batcher import Batcher, Worker
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.lanes import is_search
from elserve.deployments.memory import DeploymentMemory, estimate
from elserve.deployments.queue import Admission, Entry, LanedQueue
from elserve.deployments.scaling import StatsSample
from elserve.deployments.states import DeploymentState, RoutingState
from elserve.deployments.stats import DeploymentCounters, NodeShare, now_ms
from elserve.runtime import SparseVector, Tokenizer

log = logging.getLogger("elserve.deployments")

# Requests up to this many characters are tokenized on the event loop; longer ones in a thread.
_INLINE_TOKENIZE_CHARS = 2048


def read_model(model_dir: Path, max_batch_tokens: int) -> Tokenizer:
    """What serving the model in `model_dir` needs read from its files, in one go off the event loop:
    its tokenizer, with the vocabulary's result names built (not in the first answer), and its size
    for the capacity plan and the stats (a TorchScript model is loaded to read its shapes)."""
    tokenizer = Tokenizer.from_dir(model_dir)
    _ = tokenizer.names
    estimate(model_dir, max_batch_tokens)
    return tokenizer


class Observer(Protocol):
    """Who wants to know about batches and restarts (the metrics); deployments know no metrics library."""

    def batch(self, deployment_id: str, size: int, tokens: int) -> None: ...

    def worker_restart(self, deployment_id: str) -> None: ...


class _NoObserver:
    def batch(self, deployment_id: str, size: int, tokens: int) -> None:
        pass

    def worker_restart(self, deployment_id: str) -> None:
        pass


@dataclass(frozen=True)
class InferenceResult:
    vector: SparseVector
    is_truncated: bool


class AllocationView(Protocol):
    @property
    def state(self) -> RoutingState: ...


class DeploymentFront(ABC):
    def __init__(
        self,
        config: DeploymentConfig,
        model_dir: Callable[[], Awaitable[Path]],
        *,
        max_batch_tokens: int,
        max_batch_size: int,
        observer: Observer | None,
    ) -> None:
        self.config = config
        self.state = DeploymentState.STARTING
        self.reason: str | None = None
        self.failure_status = 500  # the status a failed start answers with (e.g. 503: download unreachable)
        # Why fewer allocations run than asked (Elasticsearch's assignment `reason`); None when all fit.
        self.placement_reason: str | None = None
        self.start_time_ms = now_ms()
        self.counters = DeploymentCounters()
        self.tokenizer: Tokenizer | None = None
        self._model_dir_source = model_dir
        self._model_dir: Path | None = None  # here once fetched
        self._max_batch_tokens = max_batch_tokens
        self._observer: Observer = observer or _NoObserver()
        self._admission = Admission(config.queue_capacity)
        self._queue = LanedQueue()
        self.batcher = Batcher(
            config.deployment_id,
            self._queue,
            self.counters,
            self._observer,
            max_batch_tokens=max_batch_tokens,
            max_batch_size=max_batch_size,
            failed=lambda: self.state is DeploymentState.FAILED,
        )
        self._dispatcher: asyncio.Task | None = None
        self._changed = asyncio.Event()  # its state or its allocations changed: waiters look again

    # -- the backend's contract ------------------------------------------------------------------

    @abstractmethod
    async def _begin(self) -> None:
        """Start the allocations (`config.number_of_allocations`); the model and tokenizer are read."""

    @abstractmethod
    async def _end(self) -> None:
        """Stop every allocation, once the requests inside have been answered."""

    @abstractmethod
    def kill(self) -> None:
        """Drop the allocations at once (server shutdown, a failed deployment about to be replaced)."""

    @abstractmethod
    async def _resize(self, n: int) -> None:
        """Ask for `n` allocations (an update of the deployment)."""

    @abstractmethod
    def _pick(self, search_waiting: bool) -> tuple[Worker, bool] | None:
        """The worker of the next batch and whether only search entries may go there; None: none free."""

    @property
    @abstractmethod
    def allocations(self) -> Sequence[AllocationView]: ...

    @property
    @abstractmethod
    def started_allocations(self) -> int: ...

    @abstractmethod
    def memory_per(self) -> tuple[int, int]:
        """(per-deployment, per-allocation) bytes: measured where it can be, else estimated."""

    @abstractmethod
    def memory(self) -> DeploymentMemory | None:
        """Measured from this server's worker processes; None where there are none."""

    @abstractmethod
    def node_shares(self) -> list[NodeShare] | None:
        """Per node, for a deployment spread over several; None: all of it on this server's node."""

    def _model_fetched(self) -> None:
        """The model's files are here (its directory in `_model_dir`), before its tokenizer is read."""
        return None

    def _on_request(self, search: bool) -> None:
        """A request was admitted and tokenized, before it is queued; `search`: it goes to the search lane."""
        return None

    def _on_failed(self) -> None:
        """The deployment failed: let go of what it runs."""
        return None

    def _drains_on_stop(self) -> bool:
        """Whether a stop waits for the requests inside to be answered (they can be)."""
        return True

    # -- identity ----------------------------------------------------------------------------------

    @property
    def deployment_id(self) -> str:
        return self.config.deployment_id

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def queued_texts(self) -> int:
        return len(self._queue)

    @property
    def pending_requests(self) -> int:
        return self._admission.count

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Get the model (downloading it if needed), load the tokenizer, start the allocations."""
        try:
            self._model_dir = await self._model_dir_source()
            self._model_fetched()
            self.tokenizer = await asyncio.to_thread(read_model, self._model_dir, self._max_batch_tokens)
            run = self.batcher.run(self._pick)
            self._dispatcher = asyncio.create_task(run, name=f"dispatch-{self.deployment_id}")
            await self._begin()
        except Exception as exc:  # whatever stops the start (download, files, workers, Ray) fails the deployment
            self.fail(getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}", getattr(exc, "status", 500))

    def _notify(self) -> None:
        """Its state or allocations changed: whoever waits for a state looks again."""
        self._changed.set()

    async def wait_started(self, timeout: float | None) -> bool:
        """True once started (or failed, or stopping); False when `timeout` runs out first."""
        return await self.wait_until("started", timeout)

    async def wait_until(self, condition: str, timeout: float | None) -> bool:
        """Wait for `started` or `fully_allocated` (or failure, or a stop); False when `timeout` runs out first."""

        def reached() -> bool:
            if self.state in (DeploymentState.FAILED, DeploymentState.STOPPING):
                return True
            if self.state is not DeploymentState.STARTED:
                return False
            return condition != "fully_allocated" or self.started_allocations >= self.config.number_of_allocations

        async def wait() -> None:
            while not reached():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return True

    def fail(self, reason: str, status: int = 500) -> None:
        """Mark the deployment failed (its start, its allocations, or from outside: it could not be
        restored): one log line, the reason kept, the queued texts answered 409."""
        log.error("deployment [%s] failed: %s", self.deployment_id, reason)
        self.state = DeploymentState.FAILED
        self.reason = reason
        self.failure_status = status
        self._notify()
        self._queue.fail_all(messages.not_serving(self.deployment_id, DeploymentState.FAILED))
        self._on_failed()

    async def stop(self) -> None:
        """Finish what is queued and running, then stop every allocation."""
        self.state = DeploymentState.STOPPING  # new requests get 409 from here on
        self._notify()
        if self._drains_on_stop():
            await self._admission.idle.wait()
        await self._end()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        self._queue.fail_all(messages.not_serving(self.deployment_id, DeploymentState.STOPPING))

    async def reconfigure(self, config: DeploymentConfig) -> None:
        """Apply new allocations or adaptive settings to the live deployment; requests keep flowing."""
        self.config = replace(self.config, adaptive_allocations=config.adaptive_allocations)
        await self._resize(config.number_of_allocations)
        self._notify()

    def stats_sample(self) -> StatsSample:
        """Its figures now, as the adaptive allocations scaler reads them (autoscaler.py)."""
        c = self.counters
        return StatsSample(
            time_s=time.monotonic(),
            number_of_allocations=self.config.number_of_allocations,
            inference_count=c.inference_count,
            pending_count=self.pending_requests,
            error_count=c.error_count,
            timeout_count=c.timeout_count,
            rejected_execution_count=c.rejected_execution_count,
            average_inference_time_ms=c.average_inference_time_ms,
            assignment_state=str(self.state),
            routing_starting=any(a.state is RoutingState.STARTING for a in self.allocations),
        )

    # -- inference ---------------------------------------------------------------------------------

    async def infer(
        self, texts: list[str], timeout: float | None, priority: str | None = None
    ) -> list[InferenceResult]:
        """Encode `texts`; `priority` (`search` or `ingest`) overrides the rule of lanes.py."""
        self._check_serving()
        if not self._admission.try_acquire():
            self.counters.rejected_execution_count += 1
            raise messages.queue_full()
        try:
            assert self.tokenizer is not None
            deadline = None if timeout is None else time.monotonic() + timeout
            if sum(map(len, texts)) <= _INLINE_TOKENIZE_CHARS:
                encoded = self.tokenizer.encode_batch(texts)  # microseconds: a thread hop costs more
            else:
                encoded = await asyncio.to_thread(self.tokenizer.encode_batch, texts)
            search = is_search([len(e.ids) for e in encoded], priority)
            self._on_request(search)
            loop = asyncio.get_running_loop()
            entries = [Entry(e.ids, loop.create_future(), search=search) for e in encoded]
            self._queue.push(entries)
            self.batcher.wake()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                answers = await asyncio.wait_for(asyncio.gather(*(e.future for e in entries)), remaining)
            except TimeoutError:
                self.counters.timeout_count += 1
                raise
            finally:
                for entry in entries:
                    if not entry.future.done():
                        entry.future.cancel()  # the dispatcher skips it
        finally:
            self._admission.release()
        return [InferenceResult(vector, e.is_truncated) for vector, e in zip(answers, encoded, strict=True)]

    def _check_serving(self) -> None:
        if self.state in (DeploymentState.STOPPING, DeploymentState.FAILED):
            raise messages.not_serving(self.deployment_id, self.state)
        if self.state is DeploymentState.STARTING:
            raise messages.not_allocated(self.deployment_id)
