"""runtime/heap.py: a batch's freed working set is kept for the next batch, and given back on trim."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
