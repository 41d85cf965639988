"""A local deployment's memory, as the capacity plan and the stats read it: measured from its workers
(cached a few seconds), else estimated from the model's files (memory.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from elserve.deployments.memory import DeploymentMemory, estimate, measure

# Memory is read from /proc at most this often (a read walks every mapping of every worker).
_MEMORY_REFRESH_S = 5.0


@dataclass(frozen=True)
class Processes:
    """The pids to measure: the started allocations' workers, the query lane's, and the model's parent
    (None when another deployment of the model accounts for it)."""

    allocations: list[int]
    lane: int | None
    parent: int | None


class MemoryAccount:
    def __init__(self, processes: Callable[[], Processes]) -> None:
        self._processes = processes
        self._memory: tuple[float, DeploymentMemory] | None = None  # (when, what) last measured
        self._allocation_peak = 0  # the largest private memory an allocation's worker was seen with

    def measured(self) -> DeploymentMemory | None:
        """The workers' memory as measured now (cached a few seconds); None before any allocation runs."""
        now = time.monotonic()
        if self._memory is None or now - self._memory[0] > _MEMORY_REFRESH_S:
            seen = self._processes()
            measured = measure(seen.allocations, seen.lane, seen.parent)
            if measured is None:
                return None  # nothing runs yet: ask again next time, do not remember "nothing"
            # Per allocation, the most any of its workers was seen to hold: an idle worker has given its
            # working set back, and the capacity plan must leave room for it.
            self._allocation_peak = max(self._allocation_peak, measured.per_allocation_bytes)
            self._memory = (now, replace(measured, per_allocation_bytes=self._allocation_peak))
        return self._memory[1]

    def per(self, model_dir: Path | None, max_batch_tokens: int, *, query_lane: bool, ran: bool) -> tuple[int, int]:
        """(per-deployment, per-allocation) bytes: measured from the workers, else estimated from the
        model's files (its largest batch included).

        Until a batch has `ran`, a worker is only seen fresh (a few MB: it has written almost nothing
        of its own), so the estimate of a worker's working set stands for it until then."""
        measured = self.measured()
        estimated = estimate(model_dir, max_batch_tokens, query_lane=query_lane)
        if measured is None:
            return estimated
        if not ran:
            return measured.per_deployment_bytes, max(measured.per_allocation_bytes, estimated[1])
        return measured.per_deployment_bytes, measured.per_allocation_bytes
