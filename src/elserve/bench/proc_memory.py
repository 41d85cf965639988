"""Memory of a server's worker processes, read from /proc: USS (private), PSS (proportional), RSS."""

from __future__ import annotations

from pathlib import Path

from elserve.bench.server import descendants
from elserve.deployments.memory import ProcessMemory, process_memory


def workers_memory(server_pid: int) -> list[tuple[int, ProcessMemory]]:
    """Each allocation worker (and query lane): the processes below the server's fork server."""
    found = []
    for pid in descendants(server_pid):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server_pid:  # the fork server and multiprocessing's resource tracker
            continue
        memory = process_memory(pid)
        if memory is not None:
            found.append((pid, memory))
    return found


def fork_server_memory(server_pid: int) -> ProcessMemory | None:
    """The fork server the workers share their runtime with (a direct child with children)."""
    for pid in descendants(server_pid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == server_pid and b"forkserver" in command:
            return process_memory(pid)
    return None
