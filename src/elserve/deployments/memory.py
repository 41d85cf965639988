"""What allocations cost in memory: measured from /proc once workers run, estimated before.

Each allocation is a worker process; what it holds alone (USS, private pages)
is its cost, and what its workers share (libraries, copy-on-write pages) is
paid once. So a deployment of `n` allocations takes about
`shared + lane + n x allocation` bytes, where the figures come from the running
workers' `/proc/<pid>/smaps_rollup`; until a worker runs, from an estimate
(measured for SPLADE-tiny: about 345 MB private per worker, mostly the Python
and PyTorch runtime, not the 17 MB of weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The runtime a worker process carries before any model (Python, PyTorch, tokenizers), rounded up.
RUNTIME_BYTES = 350 * 1024 * 1024


def estimate(model_bytes: int, query_lane: bool = True) -> tuple[int, int]:
    """(per-deployment bytes, per-allocation bytes) for a model of `model_bytes` on disk, before any runs.

    Per allocation: the runtime, the weights and one packed copy of them; per deployment,
    one more worker of that size for its query lane (lanes.py).
    """
    worker = RUNTIME_BYTES + 2 * model_bytes
    return (worker if query_lane else 0), worker


@dataclass(frozen=True)
class ProcessMemory:
    uss_bytes: int  # private pages: what this process alone costs
    pss_bytes: int  # private pages plus its share of the shared ones
    rss_bytes: int

    @property
    def shared_bytes(self) -> int:
        """Resident pages it shares with other processes (libraries, copy-on-write pages)."""
        return self.rss_bytes - self.uss_bytes


def process_memory(pid: int) -> ProcessMemory | None:
    """From `/proc/<pid>/smaps_rollup` (Linux 4.14+); None when the process is gone or it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kb: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
            kb[parts[0][:-1]] = int(parts[1])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return ProcessMemory(uss * 1024, kb.get("Pss", 0) * 1024, kb.get("Rss", 0) * 1024)


@dataclass(frozen=True)
class DeploymentMemory:
    """A deployment's memory as measured: its parts, and what `n` allocations of it would take."""

    per_deployment_bytes: int  # shared pages (counted once) and the query lane
    per_allocation_bytes: int  # the largest allocation's private pages
    total_bytes: int  # the sum of its workers' PSS: what it takes now

    def required(self, allocations: int) -> int:
        return self.per_deployment_bytes + self.per_allocation_bytes * allocations


def measure(allocations: list[int], lane: int | None) -> DeploymentMemory | None:
    """From the worker pids (the allocations' and the lane's); None while no allocation can be read."""
    measured = [m for m in map(process_memory, allocations) if m is not None]
    if not measured:
        return None
    lane_memory = process_memory(lane) if lane is not None else None
    workers = measured + ([lane_memory] if lane_memory else [])
    total = sum(m.pss_bytes for m in workers)
    private = sum(m.uss_bytes for m in workers)
    per_allocation = max(m.uss_bytes for m in measured)
    return DeploymentMemory(
        per_deployment_bytes=(total - private) + (lane_memory.uss_bytes if lane_memory else 0),
        per_allocation_bytes=per_allocation,
        total_bytes=total,
    )
