"""The counters front ends share through the store (rayserve/peer_counters.py): what one publishes reads back
the same, and several sum as Elasticsearch sums its nodes'. Pure data: no Ray, no store server."""

from __future__ import annotations

import time
from pathlib import Path

from elserve.deployments.rayserve.peer_counters import (
    FRONT_END,
    FrontEndCounters,
    counters_doc,
    counters_from,
    summed,
)
from elserve.deployments.stats import DeploymentCounters
from elserve.store import SqliteRepository


def _counted(calls: int, seconds_each: float, rejected: int = 0) -> DeploymentCounters:
    c = DeploymentCounters()
    for _ in range(calls):
        c.record(1, seconds_each)
    c.rejected_execution_count = rejected
    return c


def test_a_published_counter_reads_back_the_same() -> None:
    c = _counted(3, 0.5, rejected=2)
    c.record_cache_hit()
    back = counters_from(counters_doc(c))
    assert counters_doc(back) == counters_doc(c)
    assert back.average_inference_time_ms == c.average_inference_time_ms
    assert back.last_minute() == c.last_minute() and back.cache_hits_last_minute() == c.cache_hits_last_minute()


def test_several_front_ends_sum() -> None:
    a, b = _counted(3, 0.1, rejected=1), _counted(5, 0.3)
    total = summed([a, b])
    assert total.inference_count == 8 and total.rejected_execution_count == 1 and total.failures == 1
    assert total.total_inference_time_s == a.total_inference_time_s + b.total_inference_time_s
    assert total.last_access_ms == max(a.last_access_ms or 0, b.last_access_ms or 0)
    assert total.peak_throughput_per_minute >= 5  # at least either's, and the sum of one minute's calls
    assert summed([a]) is a


def test_each_front_end_reads_the_others(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "elserve.db")
    try:
        one, two = FrontEndCounters(repo), FrontEndCounters(repo)
        mine = _counted(2, 0.1)
        one.publish({"d": {FRONT_END: mine, "ray-node-1": mine}})
        two.publish({"d": {FRONT_END: _counted(4, 0.1), "ray-node-2": _counted(4, 0.1)}})
        one.publish({"d": {FRONT_END: mine, "ray-node-1": mine}})
        assert one.with_others("d", FRONT_END, mine).inference_count == 6
        assert one.with_others("d", "ray-node-1", mine).inference_count == 2
        two.close()  # a front end that stops takes its counters with it
        one.publish({"d": {FRONT_END: mine}})
        assert one.with_others("d", FRONT_END, mine).inference_count == 2
        # One whose last publication is older than a minute (killed) no longer counts.
        repo.put("front_end_stats", "gone", {"updated_ms": int(time.time() * 1000) - 120_000, "deployments": {}})
        one.publish({"d": {FRONT_END: mine}})
        assert one.with_others("d", FRONT_END, mine).inference_count == 2
    finally:
        repo.close()
