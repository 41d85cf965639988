"""A few single-threaded torch workers that split one batch's texts between them, or each run a
batch of its own beside the others (`submit`: a worker process with a backlog, deployments/worker.py).

torch's intra-op threads meet at a barrier after every operation, hundreds per batch, and on a
shared machine one descheduled thread stalls every barrier: measured on 2 busy cores, 2 intra-op
threads ran the int8 screen ~20x slower than 2 Python threads each running torch single-threaded
on half the work. Workers meet once per call instead (torch releases the GIL inside its kernels,
so they run in parallel). On an idle machine they also win on big batches (the screen of a
4,096-token batch: ~15%). A tiny batch goes to one worker whole: splitting it, the GIL hand-offs
between short operations would cost more than they save (see `encoder.PARALLEL_TOKENS`). Run
instead in the caller's thread with torch's two threads, one short text over HTTP (1 x 2) measured
a better median (3.6-4.2 ms against 4.4-5.0) but a far worse p99 (15-22 ms against 7-10): the
barriers again, as the server's own process shares the cores. (A model whose layers outgrow the
caches does run such a batch on torch's threads: `encoder.STREAMED_LAYER_BYTES`.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Barrier
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class Workers:
    """`size` workers; `map` runs a function on each item, on the workers when `size > 1` (even
    a single item: it then runs single-threaded, as fast for a short request and not exposed to
    the barriers), in the caller's thread when `size == 1`."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"workers need a size of at least 1, got [{size}]")
        self.size = size
        self._pool: ThreadPoolExecutor | None = None
        if size > 1:
            threads = torch.get_num_threads()
            self._pool = ThreadPoolExecutor(size, thread_name_prefix="elserve-worker", initializer=_single_threaded)
            # Start every worker now (each waits for all), so that their initializer has run ...
            barrier = Barrier(size)
            for future in [self._pool.submit(barrier.wait) for _ in range(size)]:
                future.result()
            # ... and give torch back the caller's thread count: set_num_threads also sets the
            # default that threads which first use torch later would take.
            torch.set_num_threads(threads)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._pool is None:
            return [fn(item) for item in items]
        # Inference mode is per thread: each worker takes the caller's, so that the tensors it
        # writes in place are of the caller's kind.
        inference = torch.is_inference_mode_enabled()

        def run(item: T) -> R:
            with torch.inference_mode(inference):
                return fn(item)

        return list(self._pool.map(run, items))

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        """Run `fn` on one worker, single-threaded, beside whatever the others run (`size > 1`)."""
        if self._pool is None:
            raise RuntimeError("one worker runs in the caller's thread: nothing runs beside it")
        return self._pool.submit(fn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def run_now(fn: Callable[[], R]) -> Future[R]:
    """`fn` run in the caller's thread, as a finished future (an encoder that runs nothing beside)."""
    future: Future[R] = Future()
    try:
        future.set_result(fn())
    except Exception as exc:
        future.set_exception(exc)
    return future


def _single_threaded() -> None:
    # torch sets a thread's count lazily, on its first use, from the process-wide default; use
    # it first, so that the default restored by the caller afterwards cannot undo the 1.
    torch.get_num_threads()
    torch.set_num_threads(1)
