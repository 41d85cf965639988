"""The server's side of each model's parent process (parent_process.py): start it, fork workers from it.

One parent per model directory and precision, shared by every deployment of that model (threads do
not matter: loading times its kernels on one thread, and each worker starts its own threads). The
first deployment that needs it starts it; the last one to let it go stops it. A parent that died is
replaced by the next fork; the workers it forked before keep running (they do not die with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import select
import signal
import socket
import threading
from dataclasses import dataclass, field
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path

from elserve.deployments import parent_process
from elserve.runtime import heap

log = logging.getLogger("elserve.deployments")

STOP_GRACE_S = 5.0
_spawn = multiprocessing.get_context("forkserver")
_environ_lock = threading.Lock()
# The fork server imports the runtime once (no model, no thread started); each model's parent forked
# from it shares those pages copy-on-write instead of importing PyTorch again.
# `fork_server` makes it (and so every parent) ignore a SIGTERM sent to the whole process group.
_spawn.set_forkserver_preload(
    ["elserve.deployments.fork_server", "elserve.deployments.parent_process", "elserve.runtime.encoder"]
)


def running_fork_server_pid() -> int | None:
    """The fork server's pid if one runs (for its memory), without starting one."""
    from multiprocessing import forkserver

    return forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]  # no public accessor


def _fork_server_pid() -> int:
    """The parents' parent: they die with it (PR_SET_PDEATHSIG), and it exits when the server does.

    Started with glibc's malloc asking for transparent huge pages (`heap.huge_pages_tunables`), which
    every model's parent and worker forked from it keeps: their weights sit in 2 MiB pages. Only
    these processes get it, for only they hold a model."""
    from multiprocessing import forkserver

    with _environ_lock:  # the environment is the process's: one swap at a time
        saved = os.environ.get(heap.TUNABLES_ENV)
        os.environ[heap.TUNABLES_ENV] = heap.huge_pages_tunables(saved)
        try:
            forkserver.ensure_running()  # the fork server copies the environment at its start
        finally:
            if saved is None:
                del os.environ[heap.TUNABLES_ENV]
            else:
                os.environ[heap.TUNABLES_ENV] = saved
    return forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]  # no public accessor


def exit_status(code: int | None) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerStartError(Exception):
    """The worker could not be started: its model's parent could not load the model (its reason)."""


class ParentGone(Exception):
    """The model's parent exited (killed, or crashed) while it was asked for a worker."""


@dataclass
class ForkedWorker:
    """A worker just forked: its pid, a pidfd naming it (to signal and wait for it safely), its socket
    (frames.py)."""

    pid: int
    pidfd: int
    sock: socket.socket

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # already gone, or the descriptor is closed
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def wait(self, timeout: float) -> bool:
        """True once the worker has exited (a pidfd reads ready then), False after `timeout`."""
        try:
            ready, _, _ = select.select([self.pidfd], [], [], timeout)
        except (OSError, ValueError):
            return True
        return bool(ready)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.pidfd)
        self.sock.close()


class ModelParent:
    """One parent process holding one loaded model."""

    def __init__(self, model_dir: Path, precision: str) -> None:
        self.model_dir = model_dir
        self.precision = precision
        self.pid: int | None = None
        self.kernels: dict[str, str] = {}
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = asyncio.Lock()  # one request on the pipe at a time

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = _spawn.Pipe()
        # In a thread: the first start of the fork server imports PyTorch there, seconds the server's
        # event loop would otherwise stand still for.
        grandparent = await loop.run_in_executor(None, _fork_server_pid)
        self._process = _spawn.Process(
            target=parent_process.main,
            args=(theirs, str(self.model_dir), self.precision, grandparent),
            daemon=True,
            name=parent_process.PARENT_NAME,
        )
        await loop.run_in_executor(None, self._process.start)
        theirs.close()
        self._conn = ours
        try:
            message = await loop.run_in_executor(None, ours.recv)
        except (EOFError, OSError):
            ended = exit_status(self._process.exitcode)
            message = ("start_failed", f"model parent process {ended} while loading the model")
        if message[0] != "ready":
            await loop.run_in_executor(None, self._process.join, STOP_GRACE_S)
            self._close()
            if len(message) > 2 and message[2]:
                log.error("model parent of %s could not load it:\n%s", self.model_dir.name, message[2])
            raise WorkerStartError(message[1])
        self.pid, self.kernels = message[1], message[2]
        log.info("model parent %s loaded %s: kernels %s", self.pid, self.model_dir.name, self.kernels)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def fork(self, num_threads: int, hold: str | None) -> ForkedWorker:
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(None, self._fork, num_threads, hold)

    def _fork(self, num_threads: int, hold: str | None) -> ForkedWorker:
        assert self._conn is not None
        try:
            self._conn.send(("fork", num_threads, hold))
            _, pid = self._conn.recv()
            with socket.fromfd(self._conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock_fd, pidfd = reduction.recvfds(sock, 2)  # the worker's socket, its pidfd
        except (EOFError, OSError, RuntimeError) as exc:  # RuntimeError: recvfds found no descriptors
            raise ParentGone(f"model parent {self.pid} exited") from exc
        return ForkedWorker(pid, pidfd, socket.socket(fileno=sock_fd))

    async def stop(self) -> None:
        """Ask it to exit (its workers are not affected); kill it if it does not."""
        if self._process is None:
            return
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(("stop",))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._process.join, STOP_GRACE_S)
        self.kill()
        await loop.run_in_executor(None, self._process.join, STOP_GRACE_S)
        self._close()

    def kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


Key = tuple[Path, str]


@dataclass
class _Entry:
    holders: list[object] = field(default_factory=list)  # the deployments using it, oldest first
    parent: ModelParent | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one start at a time


class ModelParents:
    """Every model's parent on this server, by (model directory, precision)."""

    def __init__(self) -> None:
        self._entries: dict[Key, _Entry] = {}

    def hold(self, key: Key, holder: object) -> None:
        """`holder` (a deployment) will fork workers of this model."""
        entry = self._entries.setdefault(key, _Entry())
        if holder not in entry.holders:
            entry.holders.append(holder)

    async def fork(self, key: Key, num_threads: int, hold: str | None) -> ForkedWorker:
        """A new worker of the model, from its parent (started, or replaced if it died, first)."""
        entry = self._entries.get(key)
        if entry is None:
            raise WorkerStartError(f"no deployment of [{key[0].name}] holds its model any more")
        for attempt in range(2):
            parent = await self._running(entry, key)
            try:
                return await parent.fork(num_threads, hold)
            except ParentGone:
                log.warning("model parent %s of %s exited; starting another", parent.pid, key[0].name)
                if attempt:
                    raise WorkerStartError(f"model parent of [{key[0].name}] exited while forking") from None
                # Gone, whatever its process still reports: a parent killed an instant ago may not have
                # been reaped yet, and the next attempt must start another, not ask this one again.
                async with entry.lock:
                    if entry.parent is parent:
                        parent.kill()
                        entry.parent = None
        raise AssertionError("unreachable")

    async def _running(self, entry: _Entry, key: Key) -> ModelParent:
        async with entry.lock:
            if entry.parent is not None and not entry.parent.alive:
                entry.parent.kill()
                entry.parent = None
            if entry.parent is None:
                parent = ModelParent(*key)
                await parent.start()
                if self._entries.get(key) is not entry:  # every holder let go while it loaded
                    await parent.stop()
                    raise WorkerStartError(f"the deployments of [{key[0].name}] stopped while it loaded")
                entry.parent = parent
            return entry.parent

    def pid(self, key: Key) -> int | None:
        """The model's parent's pid while it runs."""
        entry = self._entries.get(key)
        return entry.parent.pid if entry is not None and entry.parent is not None and entry.parent.alive else None

    def parent_pid(self, key: Key, holder: object) -> int | None:
        """The parent's pid for the holder that accounts for its memory (the oldest), else None:
        its memory is counted once per model, however many deployments share it."""
        entry = self._entries.get(key)
        if entry is None or not entry.holders or entry.holders[0] is not holder or entry.parent is None:
            return None
        return entry.parent.pid if entry.parent.alive else None

    def _drop(self, key: Key, holder: object) -> ModelParent | None:
        """Forget `holder`; the parent to stop if it was the last."""
        entry = self._entries.get(key)
        if entry is None or holder not in entry.holders:
            return None
        entry.holders.remove(holder)
        if entry.holders:
            return None
        del self._entries[key]
        return entry.parent

    async def release(self, key: Key, holder: object) -> None:
        """`holder` is done with the model; the last one to go stops its parent."""
        parent = self._drop(key, holder)
        if parent is not None:
            await parent.stop()

    def release_now(self, key: Key, holder: object) -> None:
        """As `release`, but at once (server shutdown, a failed deployment): the parent is killed."""
        parent = self._drop(key, holder)
        if parent is not None:
            parent.kill()
            parent._close()
