"""What allocations cost in memory: measured from /proc once workers run, estimated before.

Each allocation is a worker process forked from its model's parent (parent.py), which holds the
runtime, the weights and the packed copies: what a worker holds alone (USS, private pages) is
its cost, and what it shares with the parent and its siblings is paid once. So a deployment of
`n` allocations takes about `parent + shared + lane + n x allocation` bytes, where the figures
come from the processes' `/proc/<pid>/smaps_rollup`; until a worker runs, from the model's files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from elserve.runtime.config import ModelFormatError
from elserve.runtime.memory import PROCESS_BYTES, WORKER_BYTES, estimate_memory

log = logging.getLogger("elserve.deployments")

_warned: set[Path] = set()  # model directories that could not be sized: one warning each


def estimate(model_dir: Path | None, max_batch_tokens: int, query_lane: bool = True) -> tuple[int, int]:
    """(per-deployment bytes, per-allocation bytes) of a deployment of the model in `model_dir`, before
    any of its workers runs: derived from the model's files (runtime/memory.py).

    Per deployment: the model's parent and, for a normal-priority deployment, its query lane's worker
    (lanes.py), an allocation like the others; per allocation, a forked worker and its largest batch.
    """
    # Until its files are here (not downloaded yet), or when they cannot be read: the runtime's own
    # cost and one idle worker, all that is known of it; the workers' measures replace it once they run.
    parent, allocation = PROCESS_BYTES, WORKER_BYTES
    if model_dir is not None:
        try:
            sized = estimate_memory(model_dir, max_batch_tokens)
            parent, allocation = sized.parent_bytes, sized.allocation_bytes
        except (ModelFormatError, OSError, RuntimeError) as e:
            if model_dir not in _warned:
                _warned.add(model_dir)
                log.warning("[%s] cannot size the model from its files: %s", model_dir, e)
    return parent + (allocation if query_lane else 0), allocation


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

    per_deployment_bytes: int  # the model's parent, shared pages (counted once) and the query lane
    per_allocation_bytes: int  # the largest allocation's private pages
    total_bytes: int  # the sum of its workers' PSS: what it takes now

    def required(self, allocations: int) -> int:
        return self.per_deployment_bytes + self.per_allocation_bytes * allocations


def measure(allocations: list[int], lane: int | None, parent: int | None = None) -> DeploymentMemory | None:
    """From the pids of the allocations' workers, the lane's and the model's parent (None when another
    deployment of the model accounts for it); None while no allocation can be read.

    Everything but the allocations' private pages is per deployment: the parent's PSS, the lane's,
    and the allocations' shares of the pages they share (each page counted once over all of them).
    """
    measured = [m for m in map(process_memory, allocations) if m is not None]
    if not measured:
        return None
    others = [m for m in map(process_memory, [p for p in (lane, parent) if p is not None]) if m is not None]
    total = sum(m.pss_bytes for m in [*measured, *others])
    private = sum(m.uss_bytes for m in measured)
    return DeploymentMemory(
        per_deployment_bytes=total - private,
        per_allocation_bytes=max(m.uss_bytes for m in measured),
        total_bytes=total,
    )
