"""Memory read from /proc: what a process holds alone and what it shares."""

from __future__ import annotations

import os
import subprocess
import sys

from elserve.deployments.memory import estimate, measure, process_memory


def test_process_memory_of_a_live_process_and_of_none() -> None:
    me = process_memory(os.getpid())
    assert me is not None
    assert 0 < me.uss_bytes <= me.pss_bytes <= me.rss_bytes
    assert me.shared_bytes == me.rss_bytes - me.uss_bytes
    assert process_memory(2**22 + 12345) is None  # beyond pid_max: no such process


def test_deployment_memory_counts_shared_pages_once() -> None:
    # Two processes of one program share its libraries: the sum of PSS counts them once.
    children = [
        subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        memory = measure([c.pid for c in children], lane=None)
        assert memory is not None
        assert memory.per_allocation_bytes > 0 and memory.per_deployment_bytes > 0  # the shared part
        rss = sum(process_memory(c.pid).rss_bytes for c in children)
        assert memory.total_bytes < rss  # shared pages not counted twice
        assert memory.required(2) == memory.per_deployment_bytes + 2 * memory.per_allocation_bytes
        assert measure([2**22 + 12345], lane=None) is None
    finally:
        for child in children:
            child.stdin.close()
            child.wait()


def test_estimate_before_any_worker_runs() -> None:
    per_deployment, per_allocation = estimate(17 << 20)
    # The model's parent (runtime, weights, packed copy) and the lane are paid once; a forked worker is small.
    assert per_deployment > per_allocation > 17 << 20
    assert estimate(17 << 20, query_lane=False)[0] == per_deployment - per_allocation
    # BERT-base's 438 MB of weights: a worker costs a fraction of them, the parent more than them.
    base_deployment, base_allocation = estimate(438 << 20)
    assert base_allocation < (438 << 20) < base_deployment


def test_the_parent_is_counted_with_the_deployment() -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        for _ in range(3)
    ]
    try:
        *allocations, parent = [c.pid for c in children]
        alone = measure(allocations, lane=None)
        with_parent = measure(allocations, lane=None, parent=parent)
        assert alone is not None and with_parent is not None
        assert with_parent.total_bytes > alone.total_bytes
        assert with_parent.per_deployment_bytes > alone.per_deployment_bytes
        assert with_parent.total_bytes <= with_parent.required(2)
    finally:
        for child in children:
            child.stdin.close()
            child.wait()
