"""One allocation: a worker process with `num_threads` intra-op threads, and the batches it holds.

The server's side of the worker's socket. The worker is forked from its model's parent process
(parent.py), not started by this one: it is signalled and waited for through a pidfd. The event
loop reads the worker's answers as they arrive (frames.py) and turns them into future results; when
the worker dies, every batch it held fails with `WorkerDied` (the deployment decides whether to
retry), so no caller waits forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

import numpy as np

from elserve.deployments import frames
from elserve.deployments.batcher import WorkerDied
from elserve.deployments.parent import ForkedWorker, WorkerStartError, running_fork_server_pid
from elserve.deployments.states import RoutingState

# (running_fork_server_pid: where it lived before the model parents; kept for its importers.)
__all__ = ["Allocation", "Vectors", "WorkerDied", "WorkerStartError", "running_fork_server_pid"]

# No batch is sent ahead: each is cut when a thread is free to run it. A batch formed
# ahead would make a short request that arrives meanwhile wait for two batches instead
# of one (measured with `elserve bench`: one short text under bulk load, p50 about 1 s
# with one batch prefetched and 8,192-token batches, about 0.25 s with none and
# 4,096), while the pipe's round trip it would hide is about a millisecond. So a
# worker holds one batch on all its threads, or with a backlog one batch per thread
# (its `slots`, worker.py): threads that split every batch wait for each other at its
# end, and on a busy machine the slower half sets the pace of both (SPLADE-tiny over
# HTTP, 1 x 2: docs/performance.md).
STOP_GRACE_S = 5.0
# What one read of a worker's socket takes at most (a bulk batch's answer is a few hundred KB).
_READ_BYTES = 1 << 20

log = logging.getLogger("elserve.deployments")
_batch_ids = itertools.count()

# Forks a worker with this many threads (from the model's parent).
Spawner = Callable[[int], Awaitable[ForkedWorker]]


Vectors = list[tuple[np.ndarray, np.ndarray]]


class Allocation:
    def __init__(
        self,
        spawn: Spawner,
        num_threads: int,
        on_exit: Callable[[Allocation], None],
        on_free: Callable[[], None],
        nice: int = 0,
        beside: Callable[[], bool] = lambda: False,
    ) -> None:
        """`beside`: whether a batch sent alone must still leave the other threads free (the query
        lane's, while the deployment's allocations run batches: query_lane.py)."""
        self._spawn_worker = spawn
        self.num_threads = num_threads
        self.state = RoutingState.STARTING
        self.reason: str | None = None
        self.pid: int | None = None
        self.kernels: dict[str, str] = {}
        self.accepting = True  # False while draining before a scale-down or stop
        self.freed_at = 0.0  # time.monotonic() of the last batch answered
        self.nice = nice  # the worker's OS priority: allocations run below the query lane
        self._on_exit = on_exit
        self._on_free = on_free  # a batch finished: the dispatcher may send another
        # Each batch in flight: its future, and the slots it holds (all of them for a batch on every
        # thread, else one).
        self._pending: dict[int, tuple[asyncio.Future, int]] = {}
        # Batches the worker can run beside each other, one per thread (worker.py); 1 until it says.
        self.slots = 1
        self._beside = beside
        self._sock: socket.socket | None = None
        self._frames = frames.FrameReader()
        self._ready: asyncio.Future | None = None  # the worker's first message
        self._worker: ForkedWorker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def _held(self) -> int:
        return sum(holds for _, holds in self._pending.values())

    @property
    def can_take(self) -> bool:
        return self.state is RoutingState.STARTED and self.accepting and self._held < self.slots

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._worker = await self._spawn_worker(self.num_threads)
        except WorkerStartError as exc:
            self.state = RoutingState.FAILED
            self.reason = str(exc)
            raise
        self._sock = self._worker.sock
        self._ready = self._loop.create_future()
        self._loop.add_reader(self._sock.fileno(), self._readable)
        message = await self._ready
        if message[0] != "ready":
            self.state = RoutingState.FAILED
            self.reason = message[1]
            if len(message) > 2 and message[2]:  # the worker's traceback (start_failure.py)
                log.error("worker process %s could not start:\n%s", self._worker.pid, message[2])
            self._worker.kill()
            self._close_worker()
            raise WorkerStartError(message[1])
        self.pid = message[1]
        self.kernels = message[2]  # what the model's parent measured fastest on this machine
        self.slots = message[3]
        log.info("worker %s ready: kernels %s", self.pid, self.kernels)
        if self.nice:
            _renice(self.pid, self.nice)
        self.state = RoutingState.STARTED

    def submit(self, batch: list[np.ndarray], more_waiting: bool = False) -> asyncio.Future:
        """Send a batch of token-id arrays; the future resolves to `(vectors, seconds)`. It runs on
        all the worker's threads if it is alone (none held, `more_waiting` false, not `beside()`),
        else beside the others on one thread."""
        assert self._loop is not None and self._sock is not None
        batch_id = next(_batch_ids)
        future = self._loop.create_future()
        beside = self.slots > 1 and (more_waiting or self._held > 0 or self._beside())
        self._pending[batch_id] = (future, 1 if beside else self.slots)
        # Sent from the event loop: the worker's main thread is waiting on its socket (a batch on
        # all its threads holds every slot, so none is sent then), and the write (a batch's ids,
        # well under the socket's buffer) does not block.
        self._send(("beside" if beside else "encode", batch_id, batch))
        return future

    def withdraw(self, future: asyncio.Future) -> None:
        """A batch sent to the worker process runs to its end (its answer is dropped)."""

    def _send(self, message: tuple) -> None:
        assert self._sock is not None
        with contextlib.suppress(OSError):  # the worker has gone: its socket reads as closed, which fails its batches
            frames.send(self._sock, message)

    def _awaited_ready(self) -> asyncio.Future | None:
        """The future of the worker's first message (ready, or why not) while that is awaited."""
        ready = self._ready
        return ready if ready is not None and not ready.done() else None

    def _readable(self) -> None:
        """The worker's socket has bytes (or has closed): hand over every answer they complete."""
        assert self._sock is not None and self._loop is not None
        try:
            data = self._sock.recv(_READ_BYTES, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._sock.fileno())
            if (ready := self._awaited_ready()) is not None:
                pid = self._worker.pid if self._worker is not None else None
                # No word from it: it was killed, or crashed in native code (its stack, if any, is in
                # the server's log: worker.py enables faulthandler).
                ready.set_result(("start_failed", f"worker process {pid} exited while starting, without saying why"))
            else:
                self._exited()
            return
        for message in self._frames.feed(data):
            if (ready := self._awaited_ready()) is not None:
                if message[0] == "start_failed":
                    pid = self._worker.pid if self._worker is not None else None
                    message = (message[0], f"worker process {pid} could not start: {message[1]}", *message[2:])
                ready.set_result(message)
            else:
                self._answer(message)

    def _answer(self, message: tuple) -> None:
        kind, batch_id = message[0], message[1]
        future, _ = self._pending.pop(batch_id, (None, 0))
        if future is None or future.done():
            return
        if kind == "result":
            future.set_result((message[2], message[3]))
        else:
            future.set_exception(RuntimeError(message[2]))
        self.freed_at = time.monotonic()
        self._on_free()

    def _exited(self) -> None:
        self.state = RoutingState.STOPPED if self._stopping else RoutingState.FAILED
        if not self._stopping:
            self.reason = f"worker process {self.pid} exited unexpectedly"
            self._close_worker()
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(WorkerDied(self.reason or "worker stopped"))
        self._on_exit(self)

    async def drain(self) -> None:
        """Stop taking batches and wait for the ones held to finish."""
        self.accepting = False
        pending = [f for f, _ in self._pending.values() if not f.done()]
        if pending:
            await asyncio.wait(pending)

    async def stop(self) -> None:
        """Stop the worker after its current batches (kill it if it does not exit)."""
        await self.drain()
        self._stopping = True
        self.state = RoutingState.STOPPING
        worker = self._worker
        if worker is None:
            return
        self._send(("stop",))
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, worker.wait, STOP_GRACE_S):
            worker.kill()
            await loop.run_in_executor(None, worker.wait, STOP_GRACE_S)
        self._close_worker()
        self.state = RoutingState.STOPPED

    def _close_worker(self) -> None:
        """Close its pidfd and socket once it is gone (so no signal can reach a reused descriptor)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(worker.sock.fileno())
            worker.close()

    def kill(self) -> None:
        """Immediate stop (server shutdown after draining failed, or force)."""
        self._stopping = True
        if self._worker is not None:
            self._worker.kill()


def _renice(pid: int, nice: int) -> None:
    """Lower every thread of the worker (Linux sets nice per thread; threads made later inherit it)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread ended meanwhile, or no /proc: best effort
            os.setpriority(os.PRIO_PROCESS, tid, nice)
