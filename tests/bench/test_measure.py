from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from elserve.bench.corpus import Workload
from elserve.bench.inprocess import EXACT, ElserveRunner, precisions
from elserve.bench.measure import MeasureJob, measure, peak_rss_bytes, reset_peak_rss
from elserve.runtime import Encoder


def test_measure_tunes_then_runs_the_whole_workload_at_the_best_setting(
    splade_model_dir: Path, workload: Workload
) -> None:
    runner = ElserveRunner(splade_model_dir, threads=2)
    phases: list[str] = []
    job = MeasureJob(workload, (512, 4096), tune_docs=8, latency_requests=5, sample_texts=workload.texts[:3])
    measured = measure(runner, job, lambda phase, done, total: phases.append(phase))
    assert [t.setting for t in measured.tuning] == [512, 4096]
    assert all(t.docs == 8 for t in measured.tuning)
    assert measured.best.setting == max(measured.tuning, key=lambda t: t.tokens_per_s).setting
    assert (measured.best.docs, measured.best.tokens) == (workload.docs, workload.tokens)
    assert measured.best.seconds > 0
    assert measured.latency is not None and measured.latency.count == 5
    assert measured.peak_rss_bytes > 0
    assert "tune 512" in phases and f"full pass 1, {measured.best.setting}" in phases
    expected = Encoder.load(splade_model_dir).encode(workload.texts[:3])
    assert [sorted(row) for row in measured.sample] == [sorted(v.indices.tolist()) for v, _ in expected]


def test_a_row_runs_full_passes_until_it_has_lasted_its_seconds(splade_model_dir: Path, workload: Workload) -> None:
    phases: list[str] = []
    two = Workload(workload.texts[:2], workload.token_counts[:2])  # a pass of a few milliseconds
    job = MeasureJob(two, (2048,), latency_requests=0, min_seconds=0.5)
    measured = measure(ElserveRunner(splade_model_dir, threads=1), job, lambda phase, *_: phases.append(phase))
    passes = measured.best.docs // two.docs
    assert passes >= 2 and measured.best.docs == passes * two.docs
    assert measured.best.tokens == passes * two.tokens
    assert measured.best.seconds >= 0.5
    assert f"full pass {passes}, 2048" in phases and f"full pass {passes + 1}, 2048" not in phases


def test_one_setting_is_not_tuned(splade_model_dir: Path, workload: Workload) -> None:
    job = MeasureJob(workload, (2048,), latency_requests=0)
    measured = measure(ElserveRunner(splade_model_dir, threads=1), job, lambda *_: None)
    assert measured.tuning == [] and measured.best.setting == 2048
    assert measured.latency is None and measured.sample == []


def test_exact_is_always_offered() -> None:
    assert precisions()[0] == EXACT


def test_the_peak_restarts_from_the_current_size() -> None:
    if not reset_peak_rss():
        pytest.skip("/proc/self/clear_refs is not writable here")
    before = peak_rss_bytes()
    size = 64 * 1024 * 1024
    # Mapped afresh (malloc could hand back pages that are resident already), every page touched.
    with mmap.mmap(-1, size) as ballast:
        for offset in range(0, size, mmap.PAGESIZE):
            ballast[offset] = 1
        assert peak_rss_bytes() >= before + 60 * 1024 * 1024
    reset_peak_rss()
    assert peak_rss_bytes() < before + 32 * 1024 * 1024
