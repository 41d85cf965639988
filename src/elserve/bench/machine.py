"""What a result file says about the machine it was measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from elserve.runtime.cpu import machine_kernels

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
