"""Memory read from /proc (what a process holds alone and what it shares), and estimated before."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elserve.deployments.memory import estimate, measure, process_memory
from elserve.runtime.memory import PROCESS_BYTES, WORKER_BYTES, estimate_memory
from tests.support.model_factory import build_bert_dir


def test_process_memory_of_a_live_process_and_of_none() -> None:
    me = process_memory(os.getpid())
    assert me is not None
    assert 0 < me.uss_bytes <= me.pss_bytes <= me.rss_bytes
    assert me.shared_bytes == me.rss_bytes - me.uss_bytes
    assert process_memory(2**22 + 12345) is None  # beyond pid_max: no such process


def test_deployment_memory_counts_shared_pages_once() -> None:
    # Two processes of one program share its libraries: the sum of PSS counts them once.
    with _pythons(2) as pids:
        memory = measure(pids, lane=None)
        assert memory is not None
        assert memory.per_allocation_bytes > 0 and memory.per_deployment_bytes > 0  # the shared part
        rss = sum(process_memory(pid).rss_bytes for pid in pids)
        assert memory.total_bytes < rss  # shared pages not counted twice
        assert memory.required(2) == memory.per_deployment_bytes + 2 * memory.per_allocation_bytes
        assert measure([2**22 + 12345], lane=None) is None


def test_estimate_before_any_worker_runs_comes_from_the_models_files(tmp_path: Path, splade_model_dir: Path) -> None:
    sized = estimate_memory(splade_model_dir, 4096)
    per_deployment, per_allocation = estimate(splade_model_dir, 4096)
    # The model's parent (runtime, weights, packed copies, head) and the query lane (an allocation) once.
    assert (per_deployment, per_allocation) == (sized.parent_bytes + sized.allocation_bytes, sized.allocation_bytes)
    weights = (splade_model_dir / "model.safetensors").stat().st_size
    assert per_deployment - per_allocation > PROCESS_BYTES + weights  # the parent holds the weights
    assert estimate(splade_model_dir, 4096, query_lane=False) == (per_deployment - per_allocation, per_allocation)
    # A larger batch: a larger allocation, the same parent.
    larger = estimate(splade_model_dir, 8192, query_lane=False)
    assert larger[1] > per_allocation and larger[0] == per_deployment - per_allocation
    # A wider model: a larger parent and a larger allocation.
    small = build_bert_dir(tmp_path / "small", hidden=32, heads=2)
    wide = build_bert_dir(tmp_path / "wide", hidden=128, heads=2)
    (small_deployment, small_allocation), (wide_deployment, wide_allocation) = (
        estimate(small, 4096),
        estimate(wide, 4096),
    )
    assert wide_deployment > small_deployment and wide_allocation > small_allocation


def test_estimate_of_a_model_not_here_or_unreadable_is_the_runtime_and_one_worker(tmp_path: Path) -> None:
    fallback = (PROCESS_BYTES + WORKER_BYTES, WORKER_BYTES)
    assert estimate(None, 4096) == fallback  # not downloaded yet
    assert estimate(tmp_path / "missing", 4096) == fallback
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    assert estimate(broken, 4096) == fallback
    assert estimate(broken, 4096, query_lane=False) == (PROCESS_BYTES, WORKER_BYTES)


def test_the_parent_is_counted_with_the_deployment() -> None:
    with _pythons(3) as pids:
        *allocations, parent = pids
        alone = measure(allocations, lane=None)
        with_parent = measure(allocations, lane=None, parent=parent)
        assert alone is not None and with_parent is not None
        assert with_parent.total_bytes > alone.total_bytes
        assert with_parent.per_deployment_bytes > alone.per_deployment_bytes
        assert with_parent.total_bytes <= with_parent.required(2)


@contextmanager
def _pythons(count: int) -> Iterator[list[int]]:
    """The pids of `count` Python processes, each idle once its interpreter runs (measured before
    that, a child just forked holds a few pages of its own and shares none)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == b"up\n"
        yield [child.pid for child in children]
    finally:
        for child in children:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.close()
            child.wait()
            child.stdout.close()
