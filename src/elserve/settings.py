"""The server's settings: what `elserve serve` was asked for, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9200
    data_dir: Path = Path("data")
    # The `elastic` superuser's password (from ELASTIC_PASSWORD); None: generated on first start.
    elastic_password: str | None = None
    # `exact` (the reference vectors within 1e-4) or the opt-in approximate `bf16` (see README).
    precision: str = "exact"
    # Batches are cut by tokens; see deployments/deployment.py.
    max_batch_tokens: int = 4096
    # Adaptive allocations (Elasticsearch cluster settings of the same meaning).
    scale_to_zero_time_s: float = 24 * 3600.0
    scale_up_cooldown_s: float = 300.0
    scaler_interval_s: float = 10.0
    # The node's capacity for allocations (None: the machine's processors, 30% of its memory).
    processors: int | None = None
    ml_memory_bytes: int | None = None

    @property
    def store_path(self) -> Path:
        return self.data_dir / "elserve.db"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"
