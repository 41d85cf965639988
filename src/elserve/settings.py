"""The server's settings: what `elserve serve` was asked for, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HttpLimits:
    """Elasticsearch's `http.max_content_length`, `http.max_header_size` and `http.max_initial_line_length`
    (same defaults), and the read timeout: a request head must arrive within it from its first byte, and a
    body may not stall for longer."""

    max_content_length: int = 100 * 1024 * 1024
    max_header_size: int = 16 * 1024
    max_initial_line_length: int = 4 * 1024
    read_timeout_s: float = 10.0


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9200
    data_dir: Path = Path("data")
    # The `elastic` superuser's password (from ELASTIC_PASSWORD); None: generated on first start.
    elastic_password: str | None = None
    # `exact` (the reference vectors within 1e-4) or the opt-in approximate `bf16` (see README).
    precision: str = "exact"
    # Failed logins (per user, per address) answered at full speed before the login brake spaces attempts.
    login_free_failures: int = 5
    # Batches are cut by tokens; see deployments/deployment.py.
    max_batch_tokens: int = 4096
    # Adaptive allocations (Elasticsearch cluster settings of the same meaning).
    scale_to_zero_time_s: float = 24 * 3600.0
    scale_up_cooldown_s: float = 300.0
    scaler_interval_s: float = 10.0
    http: HttpLimits = HttpLimits()
    # The data directory cannot be written: its store is served as it is, and writes fail (503).
    read_only: bool = False
    # The node's capacity for allocations (None: the machine's processors, 30% of its memory).
    processors: int | None = None
    ml_memory_bytes: int | None = None
    # Where allocations run: `local` (worker processes here) or `ray` (Ray Serve replicas).
    backend: str = "local"
    # The Ray cluster to join (None: start a local Ray, stopped with the server).
    ray_address: str | None = None
    # Each Ray node's own model cache (the same path on every node; None: this server's model cache path).
    ray_model_cache: Path | None = None

    @property
    def store_path(self) -> Path:
        return self.data_dir / "elserve.db"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"
