"""Cache hits in a deployment's counters: inferences too, and their own last-minute figure."""

from __future__ import annotations

import pytest

from elserve.deployments import stats
from elserve.deployments.stats import DeploymentCounters


def test_a_cache_hit_is_an_inference_and_a_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [600.0]  # minute 10
    monkeypatch.setattr(stats.time, "time", lambda: now[0])
    counters = DeploymentCounters()
    counters.record(1, 0.5)
    counters.record_cache_hit()
    counters.record_cache_hit()
    assert (counters.inference_count, counters.cache_hit_count) == (3, 2)
    assert counters.total_inference_time_s == 0.5  # hits take no time
    assert counters.cache_hits_last_minute() == 0  # the minute is not over
    now[0] = 665.0  # minute 11
    assert counters.cache_hits_last_minute() == 2
    assert counters.last_minute() == (3, 0.5 * 1000 / 3)
    now[0] = 725.0  # minute 12: minute 11 had none
    assert counters.cache_hits_last_minute() == 0
