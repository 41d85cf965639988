"""How the encoder computes: `--precision` and the runtime's `precision` argument, one value each.

`exact`: the reference SPLADE vectors (within 1e-4). `bf16` and `int8`: opt-in, approximate and faster
where the CPU runs them natively; `runtime/encoder.py` says how each is computed and when it is refused.
A leaf: the command line reads it without importing PyTorch.
"""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    EXACT = "exact"
    BF16 = "bf16"
    INT8 = "int8"
