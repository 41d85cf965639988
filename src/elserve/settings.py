"""The server's settings: what `elserve serve` was asked for, as one frozen value."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elserve.models.sources.elastic import DEFAULT_MODEL_REPOSITORY


@dataclass(frozen=True)
class HttpLimits:
    """Elasticsearch's `http.max_content_length`, `http.max_header_size` and `http.max_initial_line_length`
    (same defaults), the read timeout (a new connection's request head must arrive within it, and within it
    from its first byte; a body may not stall for longer) and the cap on open connections."""

    max_content_length: int = 100 * 1024 * 1024
    max_header_size: int = 16 * 1024
    max_initial_line_length: int = 4 * 1024
    read_timeout_s: float = 10.0
    # Open connections at most (`--http-max-connections`); one more is closed at once, and logged.
    max_connections: int = 10_000


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on models uploaded through the REST API (operations/model_upload.py).

    `check_timeout_s` / `check_memory_bytes`: the completion check's child process (None: derived from
    the definition's length, operations/upload_check.py). `store_limit_bytes`: what uploaded definitions
    may take on disk together (Elasticsearch's `MAX_NATIVE_DEFINITION_INDEX_SIZE`, 50gb).
    `flood_stage`: Elasticsearch's `cluster.routing.allocation.disk.watermark.flood_stage` (a used
    percentage or ratio, or the free bytes to keep): uploads stop before the disk gets that full."""

    check_timeout_s: float = 120.0
    check_memory_bytes: int | None = None
    store_limit_bytes: int = 50 * 2**30
    flood_stage: str = "95%"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9200
    data_dir: Path = Path("data")
    # The `elastic` superuser's password (from ELASTIC_PASSWORD); None: generated on first start.
    elastic_password: str | None = None
    # `exact` (the reference vectors within 1e-4) or the opt-in approximate `bf16` (see README).
    precision: str = "exact"
    # Failed logins of a user from one address answered at full speed before the login brake spaces its attempts.
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
    # Elastic's model repository for the built-in ELSER ids (Elasticsearch's `xpack.ml.model_repository`):
    # an https://, http:// or file:// base URL.
    model_repository: str = DEFAULT_MODEL_REPOSITORY
    # Where allocations run: `local` (worker processes here) or `ray` (Ray Serve replicas).
    backend: str = "local"
    # The Ray cluster to join (None: start a local Ray, stopped with the server).
    ray_address: str | None = None
    # Each Ray node's own model cache (the same path on every node; None: this server's model cache path).
    ray_model_cache: Path | None = None
    uploads: UploadLimits = UploadLimits()
    # The shared store (a postgresql:// URL) several front ends use; None: the data directory's SQLite file.
    store: str | None = None

    @property
    def store_path(self) -> Path:
        return self.data_dir / "elserve.db"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"


# The config file's keys for the model repository: elserve's own and Elasticsearch's setting name.
MODEL_REPOSITORY_KEYS = ("model_repository", "xpack.ml.model_repository")


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML config file's settings, flattened to dotted keys (`[xpack.ml] model_repository = ...` is
    `xpack.ml.model_repository`). Raises ValueError naming the file when it cannot be read."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"the config file [{path}] cannot be read: {exc}") from exc
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", doc)
    return flat


def model_repository_from(config: dict[str, Any]) -> str | None:
    """The model repository a config file names, if it names one."""
    for key in MODEL_REPOSITORY_KEYS:
        value = config.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"[{key}] must be a string URL")
            return value
    return None
