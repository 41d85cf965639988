"""Memory of a server's worker processes, read from /proc: USS (private), PSS (proportional), RSS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elserve.bench.server import descendants


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    uss_bytes: int  # private pages: what this process alone costs
    pss_bytes: int  # private + its share of the shared pages
    rss_bytes: int

    @property
    def shared_bytes(self) -> int:
        """Resident pages it shares with other processes (libraries, copy-on-write pages)."""
        return self.rss_bytes - self.uss_bytes


def process_memory(pid: int) -> ProcessMemory | None:
    """From `/proc/<pid>/smaps_rollup` (Linux 4.14+); None if the process is gone or unreadable."""
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
    return ProcessMemory(pid, uss * 1024, kb.get("Pss", 0) * 1024, kb.get("Rss", 0) * 1024)


def workers_memory(server_pid: int) -> list[ProcessMemory]:
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
            found.append(memory)
    return found
