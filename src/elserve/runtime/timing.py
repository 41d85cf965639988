"""How the runtime times the kernels it chooses between at load, and how it chooses.

A kernel is timed on one thread (what a worker runs a bulk batch on) and in this thread's CPU time, so
that the time it was descheduled on a busy machine does not count; the options are kept in an order of
preference, and a later one wins only by more than a margin (timing noise must not flip a near tie).
What they are timed (and int8's weights measured) on is random texts of the model's own tokens, so
no text in the model's language is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch


def sample_batch(scored: int, texts: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`texts` texts of `length` random ids of the model's own tokens below `scored`, packed:
    `(ids, lengths)`; the same on every call. They start past a BERT vocabulary's first 1,000
    ids, its special and unused tokens, which no real text holds."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(1000, scored // 2), scored, (texts * length,), generator=generator)
    return ids, torch.full((texts,), length)


def one_thread_seconds(run: Callable[[], object], runs: int = 3) -> float:
    """The best of `runs` runs of `run` after one to warm, on one thread, in this thread's CPU time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            run()  # warm
            best = float("inf")
            for _ in range(runs):
                started = time.thread_time()
                run()
                best = min(best, time.thread_time() - started)
    finally:
        torch.set_num_threads(threads)
    return best


def first_within(seconds: Mapping[str, float], margin: float) -> str:
    """The first option in order whose time is within `margin` of the fastest."""
    fastest = min(seconds.values())
    return next(name for name, s in seconds.items() if s <= fastest * margin)
