"""How a process that runs the encoder keeps its heap: freed batches reused, given back when idle.

glibc serves an allocation above its mmap threshold (128 KiB at first, adjusted up to 32 MiB) with
a fresh mapping and unmaps it when freed, and trims the heap's top past its trim threshold. A
batch allocates tens of megabytes per operation (a 2,048-token feed-forward activation of
BERT-base is 25 MB), so each batch faulted its working set in again, page by page: ~147,000 page
faults per batch of 16 texts of 128 tokens, a quarter of an int8 batch's time (docs/performance.md).
`keep_freed` makes glibc keep what a batch frees for the next one; `trim` gives it back when the
process is idle. A batch split between worker threads (workers.py) allocates in each thread's
own arena, whose heaps are mapped 64 MiB at most: BERT-base's activations went to fresh mappings
there, page by page again, whatever the thresholds. `share_one_arena` puts
every thread in the main arena, whose heap keeps what it is given; the encoder says whether its
buffers need that (`Encoder.one_arena`, applied by `Encoder.use_threads`): a small model's are
better in their own arenas. None of this does anything where the C library is not glibc.

`huge_pages_tunables` has glibc's malloc ask for transparent huge pages for the processes that hold a
model's weights. Each short text streams all of them (a BERT-base's layers: 340 MB) through
the caches, with a TLB miss every 4 KiB on ordinary pages (docs/performance.md, "The weights in
huge pages").
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# Every allocation from the heap, however large: glibc keeps the threshold it is given (from 2.36;
# an older one refuses more than its arena size's half, 32 MiB on 64-bit, the fallback).
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)


# glibc's tunable (2.35 and later) for malloc to madvise(MADV_HUGEPAGE) the memory it maps, so
# that the kernel backs it with transparent huge pages where it allows them ("madvise" or "always"
# in /sys/kernel/mm/transparent_hugepage/enabled). Read once, at a process's start: it has to be
# in the environment a process is started with. Other C libraries and older glibcs ignore it.
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
TUNABLES_ENV = "GLIBC_TUNABLES"


def huge_pages_tunables(tunables: str | None) -> str:
    """`GLIBC_TUNABLES`' value `tunables` (None where unset) with `HUGE_PAGES_TUNABLE` added: for
    the environment of a process whose malloc is to ask for transparent huge pages. A hugetlb
    setting already there is the operator's, and stays."""
    kept = [t for t in (tunables or "").split(":") if t]
    if any(t.startswith("glibc.malloc.hugetlb=") for t in kept):
        return ":".join(kept)
    return ":".join([*kept, HUGE_PAGES_TUNABLE])


def keep_freed() -> None:
    """Serve big allocations from the heap and never trim it on free (process-wide; see `trim`)."""
    libc = _glibc()
    if libc is None:
        return
    for threshold in _MMAP_THRESHOLDS:
        if libc.mallopt(_M_MMAP_THRESHOLD, threshold):
            break
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def share_one_arena() -> None:
    """Every thread started from now on allocates from the main arena (process-wide; call it
    before the threads that will run batches start). Its lock is taken a few times per operation
    of milliseconds; in exchange, big buffers freed by one thread are reused by the next."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, 1)


def trim() -> None:
    """Give the heap's free memory back to the system: after loading, and when idle, never
    between two batches of a busy process (a batch's working set stays private to it meanwhile)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    # musl has neither; a lookup of a missing symbol raises AttributeError, which hasattr answers.
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
