"""runtime/heap.py: a batch's freed working set is kept for the next batch, and given back on trim."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from elserve.runtime import heap

# In a process of its own (the setting is process-wide): the page faults of touching a
# 56 MB buffer after a 64 MB one was freed, and the resident size after a trim.
_PROBE = """
import resource, sys
import torch
from elserve.runtime import heap
if sys.argv[1] == "keep":
    heap.keep_freed()

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

torch.ones(16 * 2**20).sum()  # 64 MB, freed at once
before = faults()
# A little smaller, as batches vary: a small allocation may have taken the freed block's first bytes.
torch.ones(14 * 2**20).sum()
second = faults() - before
kept = resident_mb()
heap.trim()
print(second, kept - resident_mb())
"""


def _probe(mode: str) -> tuple[int, float]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    faults, released = done.stdout.split()
    return int(faults), float(released)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_batches_are_reused_without_page_faults_and_given_back_on_trim() -> None:
    faults, released = _probe("keep")
    assert faults < 1000  # 56 MB is 14,336 pages: reused, not faulted in again
    assert released > 32  # the trim gave the kept buffer back
    default_faults, _ = _probe("default")
    assert default_faults > 10_000  # glibc's default maps and unmaps such a buffer each time


# The same reuse when the buffers are allocated by other threads than the main one, as a batch
# split between a worker's threads allocates them (runtime/workers.py).
_THREAD_PROBE = """
import resource, sys, threading
import torch
from elserve.runtime import heap
if sys.argv[1] == "keep":
    heap.keep_freed()
    heap.share_one_arena()
torch.set_num_threads(1)

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def run(elements):
    thread = threading.Thread(target=lambda: torch.ones(elements).sum())
    thread.start()
    thread.join()

run(16 * 2**20)
before = faults()
run(14 * 2**20)
print(faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_buffers_freed_by_one_thread_are_reused_by_another() -> None:
    def probe(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _THREAD_PROBE, mode], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout)

    assert probe("keep") < 1000
    assert probe("default") > 10_000  # each thread's own arena maps such a buffer afresh


def _thp_mode() -> str:
    """The kernel's transparent huge page mode: the bracketed word of `always [madvise] never`."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "never"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else "never"


# The memory of a touched 64 MB buffer that sits in transparent huge pages, in kB.
_HUGE_PROBE = """
import torch
buffer = torch.ones(16 * 2**20)
with open("/proc/self/smaps_rollup") as f:
    print(next(int(line.split()[1]) for line in f if line.startswith("AnonHugePages:")))
"""


def _huge_kb(env: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, "-c", _HUGE_PROBE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout)


@pytest.mark.skipif(_thp_mode() == "never", reason="this kernel gives no transparent huge pages")
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or tuple(map(int, platform.libc_ver()[1].split(".")[:2] or (0, 0))) < (2, 35),
    reason="glibc.malloc.hugetlb needs glibc 2.35",
)
def test_the_tunable_puts_mallocs_memory_in_huge_pages() -> None:
    env = {k: v for k, v in os.environ.items() if k != heap.TUNABLES_ENV}
    assert _huge_kb({**env, heap.TUNABLES_ENV: heap.huge_pages_tunables(None)}) >= 32 * 1024
    if _thp_mode() == "madvise":  # only what malloc asks for gets them
        assert _huge_kb(env) == 0


def test_the_tunable_is_added_to_the_operators_own() -> None:
    assert heap.huge_pages_tunables(None) == HUGE
    assert heap.huge_pages_tunables("") == HUGE
    assert heap.huge_pages_tunables("glibc.malloc.arena_max=2") == f"glibc.malloc.arena_max=2:{HUGE}"
    # An operator who set hugetlb (0: off; 2: hugetlbfs pages) keeps that.
    assert heap.huge_pages_tunables("glibc.malloc.hugetlb=0") == "glibc.malloc.hugetlb=0"


HUGE = heap.HUGE_PAGES_TUNABLE
