"""Memory of a server's worker processes, read from /proc: USS (private), PSS (proportional), RSS."""

from __future__ import annotations

from pathlib import Path

from elserve.bench.server import descendants
from elserve.deployments.memory import ProcessMemory, process_memory


def workers_memory(server_pid: int) -> list[tuple[int, ProcessMemory]]:
    """Each allocation worker (and query lane) below the server, not multiprocessing's helpers."""
    found = []
    for pid in descendants(server_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in command or b"forkserver" in command:
            continue
        memory = process_memory(pid)
        if memory is not None:
            found.append((pid, memory))
    return found
