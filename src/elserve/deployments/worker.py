"""The allocation worker process: loads the encoder once, then answers batches.

Protocol over one duplex pipe (pickled tuples):
  parent -> worker: ("encode", batch_id, [ids arrays])   |  ("stop",)
  worker -> parent: ("ready", pid, kernels)  |  ("start_failed", reason)
                    ("result", batch_id, [(indices, weights)], seconds)  |  ("error", batch_id, reason)
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# A test hook: while the file this names (in the server's environment) exists, the worker holds each
# batch before encoding it
# (and marks that it does with `<file>.held`), so that tests of a full queue, of draining and of
# timeouts make their own slowness instead of relying on how fast a machine encodes.
HOLD_FILE_ENV = "ELSERVE_TEST_HOLD_FILE"
# Idle this long (no batch waiting), a worker gives its free heap back to the system (see _trim_heap).
_IDLE_TRIM_S = 0.5


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the server dies, even by kill -9: no orphans."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the server died before the request took effect
        os._exit(1)


def _trim_heap() -> None:
    """glibc keeps freed heap for reuse (a batch's working set stays private to the worker); give it back.

    Done after loading and when idle, never between two batches of a busy worker.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


def main(
    conn: Connection, model_dir: str, num_threads: int, precision: str, parent: int, hold: str | None = None
) -> None:
    """`hold`: the test hook's file (`HOLD_FILE_ENV`), if the server has one."""
    _die_with_parent(parent)
    # The server handles SIGINT/SIGTERM and stops workers itself, after draining.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        from elserve.runtime.encoder import Encoder

        encoder = Encoder.load(Path(model_dir), num_threads=num_threads, precision=precision)
    except Exception as exc:  # any load failure is reported, never raised into the void
        conn.send(("start_failed", f"{type(exc).__name__}: {exc}"))
        return
    _trim_heap()  # what loading left free (the load-time measurements): ~100 MB of private heap
    conn.send(("ready", os.getpid(), encoder.kernels))
    trimmed = True
    while True:
        try:
            if not trimmed and not conn.poll(_IDLE_TRIM_S):
                _trim_heap()
                trimmed = True
            message = conn.recv()
            trimmed = False
        except (EOFError, OSError):
            return  # the server has gone
        if message[0] == "stop":
            return
        _, batch_id, batch = message
        if hold:
            _wait_while(Path(hold))
        started = time.perf_counter()
        try:
            vectors = encoder.encode_ids(batch)
        except Exception as exc:
            conn.send(("error", batch_id, f"{type(exc).__name__}: {exc}"))
            continue
        payload = [(v.indices, v.weights) for v in vectors]
        conn.send(("result", batch_id, payload, time.perf_counter() - started))


def _wait_while(hold: Path) -> None:
    if hold.exists():
        hold.with_name(hold.name + ".held").touch()
    while hold.exists():
        time.sleep(0.005)
