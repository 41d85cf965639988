"""What an allocation costs in memory: the estimate the node's capacity is planned with.

Each allocation is a worker process holding the Python and PyTorch runtime, the
model's weights and the copies built at load (packed linears), so the
deployment pays nothing apart and each allocation pays its process. Measured
for SPLADE-tiny (17 MB of weights): about 345 MB private (USS) per worker.
"""

from __future__ import annotations

# The runtime a worker process carries before any model (Python, PyTorch, tokenizers), rounded up.
RUNTIME_BYTES = 350 * 1024 * 1024


def estimate(model_bytes: int, query_lane: bool = True) -> tuple[int, int]:
    """(per-deployment bytes, per-allocation bytes) for a model of `model_bytes` on disk.

    Per allocation: the runtime, the weights and one packed copy of them; per deployment,
    one more worker of that size for its query lane (lanes.py).
    """
    worker = RUNTIME_BYTES + 2 * model_bytes
    return (worker if query_lane else 0), worker
