"""The one way every in-process runner is timed: warm up, tune the setting on a sample, time full
passes at the best setting for at least the row's seconds (as an HTTP row's bulk load runs: one
pass of BERT-base's 100 texts takes 5-15 s, too short to outlast a noisy machine's slow spells),
then a short text's latency, memory, and the agreement sample."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from elserve.bench.corpus import Workload
from elserve.bench.isolated import ProgressCallback
from elserve.bench.results import Latency, SparseRow, Timing

SHORT_TEXT = "what is elser?"
# Tokens per call in a timed pass: each runner sorts by length within a call, so the driver
# sorts the whole pass first and cuts it in order; the progress bar moves once per call. A call
# holds several of the largest batches, so the one partial batch per call costs little.
_CHUNK_TOKENS = 32768


class Runner(Protocol):
    """A model behind some library: encodes texts at one setting (batch size, token budget)."""

    def encode(self, texts: list[str], setting: int) -> object:
        """Encode `texts` in the library's own output form (that is part of what is timed)."""

    def vectors(self, texts: list[str], setting: int) -> list[SparseRow]:
        """The `{vocabulary id: weight}` of each text (positive weights only), in order."""


@dataclass(frozen=True)
class MeasureJob:
    """What the driver does with a runner; the runner's own settings travel beside it."""

    workload: Workload
    settings: Sequence[int]
    tune_docs: int = 256
    latency_requests: int = 1000
    sample_texts: list[str] = field(default_factory=list)
    min_seconds: float = 0.0  # full passes until they have taken this long (at least one)


@dataclass(frozen=True)
class Measured:
    best: Timing
    tuning: list[Timing]
    latency: Latency | None
    peak_rss_bytes: int
    sample: list[SparseRow]
    kernels: dict[str, str] | None = None  # what elserve's encoder chose on this machine


def measure(runner: Runner, job: MeasureJob, progress: ProgressCallback) -> Measured:
    ordered = _length_sorted(job.workload)
    settings = list(job.settings)
    warm = ordered.sample(min(16, ordered.docs))
    for setting in settings:
        runner.encode(warm.texts, setting)
    tuning: list[Timing] = []
    if len(settings) > 1:
        sample = _length_sorted(ordered.sample(job.tune_docs))
        for setting in settings:
            tuning.append(_timed_pass(runner, sample, setting, progress, f"tune {setting}"))
        best_setting = max(tuning, key=lambda t: t.tokens_per_s).setting
    else:
        best_setting = settings[0]
    # From here on the peak memory is the best setting's alone, not the largest batch tried.
    reset_peak_rss()
    best = _timed_passes(runner, ordered, best_setting, job.min_seconds, progress)
    latencies = []
    for i in range(job.latency_requests):
        start = time.perf_counter()
        runner.encode([SHORT_TEXT], best_setting)
        latencies.append(time.perf_counter() - start)
        if i % 20 == 0:
            progress("short-text latency", i, job.latency_requests)
    progress("short-text latency", job.latency_requests, job.latency_requests)
    rss = peak_rss_bytes()
    vectors = runner.vectors(job.sample_texts, best_setting) if job.sample_texts else []
    return Measured(best, tuning, Latency.of(latencies), rss, vectors, getattr(runner, "kernels", None))


def reset_peak_rss() -> bool:
    """Restart this process's peak resident size (VmHWM) from its current size (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """This process's peak resident size since the last reset (VmHWM), else since it started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux and never resets.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _length_sorted(workload: Workload) -> Workload:
    order = sorted(range(workload.docs), key=lambda i: workload.token_counts[i])
    return Workload([workload.texts[i] for i in order], [workload.token_counts[i] for i in order])


def _timed_passes(
    runner: Runner, workload: Workload, setting: int, min_seconds: float, progress: ProgressCallback
) -> Timing:
    """Full passes over `workload` until they have taken `min_seconds` (at least one), as one timing."""
    passes: list[Timing] = []
    while not passes or sum(t.seconds for t in passes) < min_seconds:
        passes.append(_timed_pass(runner, workload, setting, progress, f"full pass {len(passes) + 1}, {setting}"))
    return Timing(setting, sum(t.seconds for t in passes), sum(t.docs for t in passes), sum(t.tokens for t in passes))


def _timed_pass(runner: Runner, workload: Workload, setting: int, progress: ProgressCallback, phase: str) -> Timing:
    progress(phase, 0, workload.docs)
    elapsed = 0.0
    start = 0
    while start < workload.docs:
        end, tokens = start, 0
        while end < workload.docs and tokens < _CHUNK_TOKENS:
            tokens += workload.token_counts[end]
            end += 1
        began = time.perf_counter()
        runner.encode(workload.texts[start:end], setting)
        elapsed += time.perf_counter() - began
        progress(phase, end, workload.docs)
        start = end
    return Timing(setting, elapsed, workload.docs, workload.tokens)
