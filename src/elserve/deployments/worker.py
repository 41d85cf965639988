"""The allocation worker: forked from its model's parent (parent_process.py), it answers batches.

The encoder it runs was loaded by the parent before the fork: the weights and the packed and
quantized copies are the parent's pages, shared copy-on-write. The worker only starts its
threads (none crossed the fork) and serves.

Protocol over one socket (pickled tuples, framed by frames.py):
  parent -> worker: ("encode", batch_id, [ids arrays])  |  ("beside", batch_id, [ids arrays])  |  ("stop",)
  worker -> parent: ("ready", pid, kernels, slots)  |  ("start_failed", reason, details) (start_failure.py)
                    ("result", batch_id, [(indices, weights)], seconds)  |  ("error", batch_id, reason)

An "encode" batch runs on all the worker's threads, alone; a "beside" batch runs whole on one of
them, beside other such batches, up to `slots` at a time (the allocation keeps count: allocation.py).
Answers go back as batches end, in any order.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import functools
import os
import select
import signal
import socket
import sys
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from elserve.deployments import batch_hold, frames
from elserve.deployments.start_failure import start_failed
from elserve.runtime import heap

if TYPE_CHECKING:
    from elserve.runtime import SparseVector
    from elserve.runtime.encoder import LoadedEncoder

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
# A test hook: when the server's environment sets this, every worker fails its start with a
# RuntimeError of that text, so that tests see how a failed start is reported (start_failure.py).
FAIL_START_ENV = "ELSERVE_TEST_FAIL_WORKER_START"
# The process names (/proc/<pid>/comm) of a model's parent and of its workers: `ps` and the benchmark
# tell them apart by these.
WORKER_NAME = "elserve-worker"
# Idle this long (no batch waiting), a worker gives its free heap back to the system (runtime/heap.py).
IDLE_TRIM_S = 0.5


def die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies, even by kill -9: no orphans."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def set_name(name: str) -> None:
    """This process's name in /proc/<pid>/comm (threads started later take it too)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def run_forked(sock: socket.socket, encoder: LoadedEncoder, num_threads: int, hold: str | None) -> None:
    """The worker's life, in the child just forked from the model's parent.

    `hold`: the test hook's file (batch_hold.py), if the server has one. The worker does not die
    with the model's parent (a dead parent is replaced and its workers keep serving); it ends when
    the server closes its socket.
    """
    try:
        set_name(WORKER_NAME)
        heap.keep_freed()  # one batch's freed working set is the next one's, without page faults
        # A crash in native code prints its Python stack into the server's log (the worker's stderr).
        faulthandler.enable()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # The server handles SIGINT/SIGTERM and stops workers itself, after draining: a SIGTERM sent to the
        # whole process group (systemd's default) must not end a worker under it, which the server would
        # then restart in the middle of its shutdown. A worker ends when its socket closes.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        encoder.use_threads(num_threads)  # no thread crosses a fork: this worker starts its own
        if injected := os.environ.get(FAIL_START_ENV):
            raise RuntimeError(injected)
    except Exception as exc:  # the server learns why, instead of seeing the socket close
        frames.send(sock, start_failed(exc))
        raise
    slots = num_threads if encoder.side_by_side else 1
    try:
        frames.send(sock, ("ready", os.getpid(), encoder.kernels, slots))
    except OSError:
        return  # the server stopped this worker while it started: nothing to report
    serve(sock, encoder, hold)


class _Answers:
    """The worker's answers, sent one at a time from whichever thread ends a batch."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.beside = 0  # "beside" batches running

    def send(self, answer: tuple) -> None:
        with self._lock, contextlib.suppress(OSError):  # the server has gone: the main loop sees it
            frames.send(self._sock, answer)

    def started_beside(self) -> None:
        with self._lock:
            self.beside += 1

    def ended_beside(self, batch_id: int, started: float, future: Future) -> None:
        with self._lock:
            self.beside -= 1
        exc = future.exception()
        self.send(_error(batch_id, exc) if exc is not None else _result(batch_id, future.result(), started))


def serve(sock: socket.socket, encoder: LoadedEncoder, hold: str | None) -> None:
    """Answer batches until the server says stop or goes."""
    answers = _Answers(sock)
    trimmed = False
    while True:
        try:
            if not trimmed and not select.select([sock], [], [], IDLE_TRIM_S)[0]:
                if not answers.beside:  # no batch holds the heap
                    heap.trim()
                    trimmed = True
                continue
            message = frames.recv(sock)
            trimmed = False
        except (EOFError, OSError):
            return  # the server has gone
        if message[0] == "stop":
            return
        kind, batch_id, batch = message
        batch_hold.wait(hold)
        started = time.perf_counter()
        if kind == "beside":
            answers.started_beside()
            future = encoder.submit_ids(batch)
            future.add_done_callback(functools.partial(answers.ended_beside, batch_id, started))
            continue
        try:
            vectors = encoder.encode_ids(batch)
        except Exception as exc:
            answers.send(_error(batch_id, exc))
        else:
            answers.send(_result(batch_id, vectors, started))


def _result(batch_id: int, vectors: list[SparseVector], started: float) -> tuple:
    return ("result", batch_id, [(v.indices, v.weights) for v in vectors], time.perf_counter() - started)


def _error(batch_id: int, exc: BaseException) -> tuple:
    return ("error", batch_id, f"{type(exc).__name__}: {exc}")
