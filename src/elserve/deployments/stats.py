"""Counters a deployment keeps for `_ml/trained_models/_stats`."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from elserve.deployments.states import RoutingState


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class DeploymentCounters:
    inference_count: int = 0
    error_count: int = 0
    timeout_count: int = 0
    rejected_execution_count: int = 0
    total_inference_time_s: float = 0.0
    last_access_ms: int | None = None
    peak_throughput_per_minute: int = 0
    # Inferences answered from the deployment's inference cache (counted in `inference_count` too).
    cache_hit_count: int = 0
    # (minute, inferences, their seconds) for this minute and the last, for the last-minute figures.
    _minutes: deque = field(default_factory=lambda: deque(maxlen=2))
    # (minute, cache hits) likewise.
    _hit_minutes: deque = field(default_factory=lambda: deque(maxlen=2))

    def record(self, count: int, seconds_each: float) -> None:
        self.inference_count += count
        self.total_inference_time_s += seconds_each * count
        self.last_access_ms = now_ms()
        minute = int(time.time() // 60)
        _, n, t = self._minutes.pop() if self._minutes and self._minutes[-1][0] == minute else (minute, 0, 0.0)
        self._minutes.append((minute, n + count, t + seconds_each * count))
        self.peak_throughput_per_minute = max(self.peak_throughput_per_minute, n + count)

    def record_cache_hit(self) -> None:
        """One inference answered from the cache: an inference that took no time."""
        self.cache_hit_count += 1
        self.record(1, 0.0)
        minute = int(time.time() // 60)
        _, n = self._hit_minutes.pop() if self._hit_minutes and self._hit_minutes[-1][0] == minute else (minute, 0)
        self._hit_minutes.append((minute, n + 1))

    def cache_hits_last_minute(self) -> int:
        """`inference_cache_hit_count_last_minute`: the hits of the previous full minute."""
        previous = int(time.time() // 60) - 1
        return next((n for minute, n in self._hit_minutes if minute == previous), 0)

    @property
    def average_inference_time_ms(self) -> float | None:
        if not self.inference_count:
            return None
        return self.total_inference_time_s * 1000 / self.inference_count

    def last_minute(self) -> tuple[int, float]:
        """(throughput_last_minute, average_inference_time_ms_last_minute) over the previous full minute."""
        previous = int(time.time() // 60) - 1
        for minute, n, t in self._minutes:
            if minute == previous:
                return n, (t * 1000 / n if n else 0.0)
        return 0, 0.0

    @property
    def failures(self) -> int:
        return self.error_count + self.timeout_count + self.rejected_execution_count


@dataclass(frozen=True)
class NodeShare:
    """One node's part of a deployment: `deployment_stats.nodes[]` (Ray: one per Ray node holding replicas)."""

    node_id: str
    name: str
    address: str
    allocations: int
    routing_state: RoutingState
    counters: DeploymentCounters
