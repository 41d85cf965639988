"""The exact SPLADE head, by the fastest kernel this machine has: chosen at load, per batch size.

CPUs differ more than any constant could say: torch's `_int_mm` runs 150 GOP/s on an AVX-512
VNNI EPYC and 1.2 GOP/s (a scalar loop) on an AVX2-only one, where oneDNN's 7-bit product runs
~3x the fp32 GEMM and its 8-bit one saturates. So every option is built, each screen kernel is
checked exact on adversarial rows (`products.is_exact`), and the survivors are timed on the
model's own hidden states, once for a short request (one product over the whole vocabulary) and
once for a bulk batch (blocks). An earlier option (`products.KERNELS`, then the plain head) is
kept unless a later one is faster by more than `MARGIN`. The plain fp32 head (`splade.splade_pool`) is among them: the
floor, so the exact encoder is never slower than it.

Every screened option gives the same weights to the last bit (those of a float64 head); the plain
head is within its own fp32 rounding of them (a few 1e-6), and is taken only where it is clearly
the fastest (no int8 product on the machine beats the BLAS).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch

from elserve.runtime.products import KERNELS, ProductKernel, is_exact
from elserve.runtime.screening import SMALL_ROWS, QuantizedVocab, finish, screen, vocab_ranges
from elserve.runtime.splade import splade_pool
from elserve.runtime.timing import first_within

SHORT = "short"  # up to screening.SMALL_ROWS token rows: one product over the whole vocabulary
BULK = "bulk"  # more: blocks
PLAIN = "fp32-plain"
# A later option must be this much faster to be taken over an earlier one (the measurement's
# noise on a shared machine is ~5-10%; the earlier options have the tighter screens).
MARGIN = 1.15
# The rows a bulk batch is timed on: four texts of 128 tokens (half a block of rows: a kernel that
# allocates per block shows its cost).
_BULK_TEXTS, _BULK_LENGTH = 4, 128

Triples = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Option:
    """One way to compute the head: a screen kernel with its quantized vocabulary, or the plain
    fp32 head (`kernel` None)."""

    name: str
    vocab: QuantizedVocab
    kernel: ProductKernel | None

    def pool(self, rows: torch.Tensor, lengths: torch.Tensor, whole: bool) -> Triples:
        """`(text, entry, weight)` of every positive weight, sorted by text then entry."""
        vocab = self.vocab
        if self.kernel is None:
            dense = splade_pool(rows, lengths, vocab.weight, vocab.bias)
            text, entry = dense.nonzero().unbind(1)
            return text, entry, dense[text, entry]
        text, entry = screen(rows, lengths, vocab, self.kernel, whole=whole)
        return text, entry, finish(rows, lengths, vocab.weight, vocab.bias, text, entry)


@dataclass
class HeadChoice:
    """What was chosen for each batch size, and why: seconds per option (`None`: not exact here)."""

    short: str
    bulk: str
    seconds: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def describe(self) -> str:
        return f"short={self.short} bulk={self.bulk}"


class ExactHead:
    """SPLADE weights of the head-transformed states of real tokens, exact (see `screening.py`),
    by the option this machine runs fastest."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        centre: torch.Tensor,
        sample: torch.Tensor,
        only: str | None = None,
    ) -> None:
        """`weight`, `bias`: the decoder; `centre`: the screen's centre; `sample`: at least 8 rows
        of this model's head-transformed states, to time the options on; `only`: take that
        option for every batch (tests, benchmarks), if it is exact here."""
        options = available_options(weight, bias, centre)
        unusable = {name for name, option in options.items() if option is None}
        usable = {name: option for name, option in options.items() if option is not None}
        if only is not None:
            if only not in usable:
                raise ValueError(f"head option [{only}] is not exact (or missing) on this machine")
            usable = {only: usable[only]}
        self.size = weight.shape[0]
        self.choice = _choose(usable, sample)
        for name in unusable:
            self.choice.seconds[SHORT][name] = self.choice.seconds[BULK][name] = None
        self._short = usable[self.choice.short]
        self._bulk = usable[self.choice.bulk]

    def pool(self, rows: torch.Tensor, lengths: torch.Tensor) -> Triples:
        """`(text, entry, weight)` of every positive weight of the texts (`rows` text after text,
        `(sum(lengths), hidden)` fp32), sorted by text then entry."""
        if rows.shape[0] <= SMALL_ROWS:
            return self._short.pool(rows, lengths, whole=True)
        return self._bulk.pool(rows, lengths, whole=False)


def available_options(weight: torch.Tensor, bias: torch.Tensor, centre: torch.Tensor) -> dict[str, _Option | None]:
    """Every option by name, in order of preference; None for a screen kernel that is missing or
    not exact on this machine."""
    vocabs: dict[int, QuantizedVocab] = {}
    options: dict[str, _Option | None] = {}
    for name, (levels, make) in KERNELS.items():
        if levels not in vocabs:
            vocabs[levels] = QuantizedVocab.build(weight, bias, centre, levels=levels)
        vocab = vocabs[levels]
        try:
            kernel = make(vocab.rows, vocab_ranges(vocab.size))
        except (RuntimeError, NotImplementedError, AttributeError):  # an operator this build lacks
            options[name] = None
            continue
        options[name] = _Option(name, vocab, kernel) if is_exact(kernel) else None
    options[PLAIN] = _Option(PLAIN, next(iter(vocabs.values())), None)
    return options


def _choose(options: dict[str, _Option], sample: torch.Tensor) -> HeadChoice:
    """Time each option on `sample` for each batch size, single-threaded as the workers run it."""
    short_rows = sample[:8]
    reps = -(-_BULK_TEXTS * _BULK_LENGTH // sample.shape[0])
    bulk_rows = sample.repeat(reps, 1)[: _BULK_TEXTS * _BULK_LENGTH]
    cases = {
        SHORT: (short_rows, torch.tensor([short_rows.shape[0]]), True),
        BULK: (bulk_rows, torch.tensor([_BULK_LENGTH] * _BULK_TEXTS), False),
    }
    seconds: dict[str, dict[str, float | None]] = {SHORT: {}, BULK: {}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for case, (rows, lengths, whole) in cases.items():
                for name, option in options.items():
                    seconds[case][name] = _seconds(partial(option.pool, rows, lengths, whole), seconds[case])
    finally:
        torch.set_num_threads(threads)
    return HeadChoice(short=_pick(seconds[SHORT]), bulk=_pick(seconds[BULK]), seconds=seconds)


def _seconds(run: Callable[[], object], so_far: dict[str, float | None]) -> float:
    """The best of a few runs, in this thread's CPU time (single-threaded: the time it was
    descheduled on a busy machine does not count); a single run when it is already far behind
    the best so far (the fp32 options on a machine with a fast int8 product cost most to time)."""
    started = time.thread_time()
    run()
    first = time.thread_time() - started
    best_so_far = min((s for s in so_far.values() if s is not None), default=None)
    if best_so_far is not None and first > 2 * MARGIN * best_so_far:
        return first
    times = []
    for _ in range(3):
        started = time.thread_time()
        run()
        times.append(time.thread_time() - started)
    return min(times)


def _pick(seconds: dict[str, float | None]) -> str:
    """The first option in order whose time is within `MARGIN` of the fastest."""
    return first_within({name: s for name, s in seconds.items() if s is not None}, MARGIN)
