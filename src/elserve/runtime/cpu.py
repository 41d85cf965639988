"""What this CPU offers the kernels: the instruction-set features that decide their speed.

The kernels themselves are chosen by measurement (`head.py`, `encoder.py`), not by these flags; the
flags name what a machine has in the benchmark's report and the log, and decide the one thing that
cannot be measured cheaply at load: whether the opt-in bf16 layers are worth running at all.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The features that matter here, as /proc/cpuinfo names them ("asimd" is NEON on aarch64).
FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "i8mm",
    "bf16",
    "sve",
)
# The libraries' own switches that cap the instruction sets they use (set before torch loads).
_SWITCHES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
# oneDNN's `ONEDNN_MAX_CPU_ISA` caps below which it has no native bf16 arithmetic.
_NO_BF16_ISAS = {"sse41", "avx", "avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni"}


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The feature flags of /proc/cpuinfo (`flags` on x86-64, `Features` on aarch64)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_features(flags: set[str] | None = None) -> dict[str, bool]:
    """Each feature of `FEATURES`: present or not."""
    flags = cpu_flags() if flags is None else flags
    return {name: name in flags for name in FEATURES}


def bf16_refusal(flags: set[str] | None = None, onednn_max_isa: str | None = None) -> str | None:
    """Why the bf16 layers must not run here, or None where the CPU computes bfloat16 natively.
    Without it, torch's bf16 products are emulated: ~15x slower than fp32 (1.6 GFLOP/s against
    24 on an AVX2 EPYC), so bf16 would be slower and less exact than `exact`."""
    flags = cpu_flags() if flags is None else flags
    if onednn_max_isa is None:
        onednn_max_isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    if {"avx512_bf16", "amx_bf16", "bf16"} & flags and onednn_max_isa.lower() not in _NO_BF16_ISAS:
        return None
    capped = f" (ONEDNN_MAX_CPU_ISA={onednn_max_isa})" if onednn_max_isa.lower() in _NO_BF16_ISAS else ""
    return (
        "precision [bf16] needs a CPU with native bfloat16 arithmetic (avx512_bf16 or amx_bf16 on x86-64, "
        f"bf16 on aarch64); this one has none{capped}, where bf16 runs slower than [exact]: use precision [exact]"
    )


def machine_kernels() -> dict[str, object]:
    """The CPU's model, features and torch's dispatch level, for the log and the benchmark."""
    import torch  # here: the API process reads the CPU's flags without loading torch

    return {
        "arch": platform.machine(),
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "features": sorted(name for name, present in cpu_features().items() if present),
        "forced": {k: v for k in _SWITCHES if (v := os.environ.get(k))},
    }
