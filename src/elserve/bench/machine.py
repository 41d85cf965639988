"""What a result file says about the machine it was measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from pathlib import Path

import torch

from elserve.runtime.cpu import machine_kernels
from elserve.runtime.products import KERNELS

_VERSIONS_OF = (
    "elserve",
    "torch",
    "numpy",
    "tokenizers",
    "transformers",
    "sentence-transformers",
    "onnxruntime",
    "onnx",
)


def machine_info() -> dict[str, object]:
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_bytes": _meminfo_bytes("MemTotal"),
        "load_average": list(os.getloadavg()),
        # The CPU features that decide elserve's kernels, and torch's dispatch level.
        "cpu": machine_kernels(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in _VERSIONS_OF},
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _meminfo_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def product_throughput(rows: int = 256, hidden: int = 128, vocab: int = 30522) -> dict[str, float]:
    """The machine's limit for the head's product, one thread: GFLOP/s (fp32, bf16) and GOP/s (each
    int8 kernel of `runtime/products.py`, exact here or not) of `(rows, hidden) x (hidden, vocab)`."""
    g = torch.Generator().manual_seed(0)
    results: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for dtype in (torch.float32, torch.bfloat16):
            a, b = torch.randn(rows, hidden, generator=g).to(dtype), torch.randn(hidden, vocab, generator=g).to(dtype)
            results[str(dtype).removeprefix("torch.")] = _rate(lambda a=a, b=b: a @ b, rows * hidden * vocab)
        for name, (levels, make) in KERNELS.items():
            decoder = torch.randint(-levels, levels + 1, (vocab, hidden), generator=g, dtype=torch.int8)
            q = torch.randint(-127, 128, (rows, hidden), generator=g, dtype=torch.int8)
            try:
                kernel = make(decoder, [(0, vocab)])
                operand = kernel.operand(q)
                results[name] = _rate(lambda k=kernel, o=operand: k.products(o, 0, vocab), rows * hidden * vocab)
            except (RuntimeError, NotImplementedError, AttributeError):
                continue  # not in this build
    finally:
        torch.set_num_threads(threads)
    return results


def _rate(run, multiply_adds: int) -> float:
    """G(FL)OP/s of `run`, the best of a few, in this thread's CPU time."""
    run()
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return 2 * multiply_adds / max(best, 1e-9) / 1e9
