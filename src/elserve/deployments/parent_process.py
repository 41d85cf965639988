"""A model's parent process: loads the encoder once, then forks each allocation's worker from itself.

Everything loading builds (the weights, the packed layers and quantized heads chosen by timing
them) is then the parent's pages, which its workers share copy-on-write: an extra allocation
costs only the pages it writes (its heap, its threads' stacks, the Python objects whose reference
counts it touches), not another copy of the model. Measured with `elserve bench`, see README.

The parent never starts a thread: a fork copies only the thread that calls it, so a thread pool
(torch's OpenMP threads, the encoder's `Workers`) started before would be a pool of ghosts in the
child, holding locks nobody releases. So it loads on one thread (every load-time timing already
runs single-threaded) and each worker starts its own threads after the fork
(`Encoder.use_threads`). `gc.freeze()` moves every object loading made out of the collector's
reach, so that no collection in a worker walks (and writes to) the shared object pages.

Protocol over the server's pipe (pickled tuples, one request at a time):
  server -> parent: ("fork", num_threads, hold)  |  ("stop",)
  parent -> server: ("ready", pid, kernels)  |  ("start_failed", reason, details) (start_failure.py)
                    ("forked", pid), then the worker's socket and a pidfd of it as passed descriptors
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import traceback
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path

from elserve.deployments import worker
from elserve.deployments.start_failure import start_failed
from elserve.runtime import heap

PARENT_NAME = "elserve-parent"


def main(conn: Connection, model_dir: str, precision: str, grandparent: int) -> None:
    """`grandparent`: the fork server this process came from; it dies with it (and so with the server)."""
    worker.die_with_parent(grandparent)
    worker.set_name(PARENT_NAME)
    # The server handles SIGINT/SIGTERM (sent to the whole group too); this process ends with its fork
    # server or when the server says stop, never in the middle of a shutdown (fork_server.py).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import torch

        from elserve.runtime.encoder import Encoder

        torch.set_num_threads(1)  # before any operation: no intra-op thread pool is ever started here
        heap.keep_freed()  # as its workers will: the kernels are timed at load as they will run
        encoder = Encoder.load(Path(model_dir), num_threads=1, precision=precision)
    except ValueError as exc:  # the model's fault (ModelFormatError) or a refused precision: said as it is
        conn.send(("start_failed", f"{type(exc).__name__}: {exc}", ""))
        return
    except Exception as exc:  # any other load failure is reported with where it happened
        conn.send(start_failed(exc))
        return
    heap.trim()  # what the load-time measurements left free
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    conn.send(("ready", os.getpid(), encoder.kernels))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server has gone
        if message[0] != "fork":
            return
        _, num_threads, hold = message
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                conn.close()
                ours.close()
                worker.run_forked(theirs, encoder, num_threads, hold)
            except BaseException:
                code = 1
                traceback.print_exc()  # into the server's log (the worker's stderr is the server's)
            finally:
                os._exit(code)
        theirs.close()
        # A pidfd names this very process even once it is gone and its pid reused: the server
        # (not its parent) signals and waits for it by this.
        pidfd = os.pidfd_open(pid)
        try:
            conn.send(("forked", pid))
            with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                reduction.sendfds(sock, [ours.fileno(), pidfd])
        except OSError:
            return  # the server has gone
        finally:
            ours.close()
            os.close(pidfd)


def _reap(signum: int, frame: object) -> None:
    """Collect exited workers (no zombies); the server learns of an exit from their pipes and pidfds."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
