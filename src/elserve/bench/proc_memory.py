"""Memory of a server's inference processes, read from /proc: USS (private), PSS (proportional), RSS.

The processes are told apart by their names (/proc/<pid>/comm): each model's parent
(`elserve-parent`) and the workers forked from it (`elserve-worker`), the allocations at a lower
OS priority than the query lane (deployment.ALLOCATION_NICE); the fork server the parents come
from is the server's child started as `forkserver`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from elserve.bench.server import descendants
from elserve.deployments.deployment import ALLOCATION_NICE
from elserve.deployments.memory import ProcessMemory, process_memory
from elserve.deployments.parent_process import PARENT_NAME
from elserve.deployments.worker import WORKER_NAME

FORK_SERVER = "fork server"
PARENT = "model parent"
ALLOCATION = "allocation"
QUERY_LANE = "query lane"
_ORDER = (FORK_SERVER, PARENT, ALLOCATION, QUERY_LANE)


@dataclass(frozen=True)
class InferenceProcess:
    role: str  # FORK_SERVER, PARENT, ALLOCATION or QUERY_LANE
    pid: int
    memory: ProcessMemory


def inference_processes(server_pid: int) -> list[InferenceProcess]:
    """The fork server, the models' parents, the allocations (oldest first) and the query lanes."""
    found = []
    for pid in descendants(server_pid):
        role = _role(pid, server_pid)
        memory = process_memory(pid) if role is not None else None
        if role is not None and memory is not None:
            found.append(InferenceProcess(role, pid, memory))
    return sorted(found, key=lambda p: (_ORDER.index(p.role), p.pid))


def _role(pid: int, server_pid: int) -> str | None:
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return None
    if name == PARENT_NAME:
        return PARENT
    if name == WORKER_NAME:
        # stat's fields after the name: state is the 1st, nice the 17th.
        return ALLOCATION if int(stat[16]) >= ALLOCATION_NICE else QUERY_LANE
    if int(stat[1]) == server_pid and b"forkserver" in command:
        return FORK_SERVER
    return None


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user and system) `pid` has used so far; None once it has gone."""
    try:
        # utime and stime are the 12th and 13th fields after the parenthesised command name.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def role_cpu_seconds(server_pid: int, role: str) -> float:
    """The CPU time the server's inference processes of `role` (such as QUERY_LANE) have used so
    far: a process that has gone meanwhile no longer counts."""
    return sum(cpu_seconds(p.pid) or 0.0 for p in inference_processes(server_pid) if p.role == role)
