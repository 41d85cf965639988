"""What allocations cost in memory: measured from /proc once workers run, estimated before.

Each allocation is a worker process forked from its model's parent (parent.py), which holds the
runtime, the weights and the packed copies: what a worker holds alone (USS, private pages) is
its cost, and what it shares with the parent and its siblings is paid once. So a deployment of
`n` allocations takes about `parent + shared + lane + n x allocation` bytes, where the figures
come from the processes' `/proc/<pid>/smaps_rollup`; until a worker runs, from an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The runtime a model's parent carries before any model (Python, PyTorch, tokenizers), rounded up.
RUNTIME_BYTES = 350 * 1024 * 1024
# What a worker forked from its parent writes of its own whatever the model (its heap, its threads'
# stacks, the objects whose reference counts it touches): measured 40-60 MB for SPLADE-tiny, rounded up ...
WORKER_BYTES = 96 * 1024 * 1024
# ... and per byte of weights, its activations and the pages it dirties (BERT-base: under 10%).
WORKER_SHARE_OF_MODEL = 0.125


def estimate(model_bytes: int, query_lane: bool = True) -> tuple[int, int]:
    """(per-deployment bytes, per-allocation bytes) for a model of `model_bytes` on disk, before any runs.

    Per deployment: the model's parent (the runtime, the weights and one packed copy of them) and
    the query lane's worker (lanes.py); per allocation, a forked worker.
    """
    worker = WORKER_BYTES + int(model_bytes * WORKER_SHARE_OF_MODEL)
    parent = RUNTIME_BYTES + 2 * model_bytes
    return parent + (worker if query_lane else 0), worker


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
