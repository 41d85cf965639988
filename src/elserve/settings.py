"""The server's settings: what `elserve serve` was asked for, as one frozen value.

`ServerSettings.from_flags` reads them from the command line's flags (`ServeFlags`) and reports every
bad flag at once (`FlagErrors`), as Elasticsearch's `ValidationException` lists every error of a
request. Each flag is read by the rule of the part it configures (sizes by `bytesize.py`, `--ml-memory`
by `deployments/capacity.py`, ...), imported when that flag is read: this module stays a leaf that any
layer may import, and a command that reads no such flag loads none of those parts.
"""

from __future__ import annotations

import ipaddress
import resource
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from elserve.bytesize import byte_size_text, parse_byte_size
from elserve.config_file import model_repository_from, read_config_file
from elserve.deployments.adaptive import DEFAULT_SCALE_TO_ZERO_AFTER_S, DEFAULT_SCALE_UP_COOLDOWN_S, TIME_INTERVAL_S
from elserve.deployments.config import DEFAULT_MAX_BATCH_TOKENS
from elserve.errors import ParseException
from elserve.models.sources import ModelDownloadError
from elserve.models.sources.elastic import DEFAULT_MODEL_REPOSITORY, normalize_repository
from elserve.precision import Precision


class Backend(StrEnum):
    """Where allocations run: worker processes on this machine, or Ray Serve replicas on a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"


DEFAULT_MAX_CONNECTIONS = 10_000
# Descriptors kept for the server's own use (its store, model files, workers' sockets, the listening socket).
RESERVED_DESCRIPTORS = 256


def default_max_connections() -> int:
    """10,000 open connections, or fewer where the open-files limit would run out first: a client that
    opens sockets until none are left would otherwise lock everyone out, with nothing logged."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(1, min(DEFAULT_MAX_CONNECTIONS, soft - RESERVED_DESCRIPTORS))


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS


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


# The flags the settings hold as they are given.
_AS_GIVEN = (
    "host",
    "port",
    "data_dir",
    "elastic_password",
    "login_free_failures",
    "processors",
    "ray_address",
    "store",
    "ssl_certfile",
    "ssl_keyfile",
    "log_level",
)


class FlagErrors(ValueError):
    """Every bad flag of one command line, numbered as Elasticsearch's `ValidationException` numbers its
    errors ("Validation Failed: 1: ...;2: ...;"); `problems` pairs each flag with what is wrong with it."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("Validation Failed: " + "".join(f"{i}: {f}: {m};" for i, (f, m) in enumerate(problems, 1)))


class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, flag: str, message: str) -> None:
        self.found.append((flag, message))

    def raise_if_any(self) -> None:
        if self.found:
            raise FlagErrors(self.found)


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9200
    data_dir: Path = Path("data")
    # The `elastic` superuser's password (from ELASTIC_PASSWORD); None: generated on first start.
    elastic_password: str | None = None
    # `exact` (the reference vectors within 1e-4) or the opt-in approximate `bf16` or `int8`.
    precision: Precision = Precision.EXACT
    # Failed logins of a user from one address answered at full speed before the login brake spaces its attempts.
    login_free_failures: int = 5
    # Batches are cut by tokens; see deployments/batcher.py.
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    # Adaptive allocations (Elasticsearch cluster settings of the same meaning; deployments/adaptive.py).
    scale_to_zero_time_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S
    scale_up_cooldown_s: float = DEFAULT_SCALE_UP_COOLDOWN_S
    scaler_interval_s: float = TIME_INTERVAL_S
    http: HttpLimits = HttpLimits()
    # The data directory cannot be written: its store is served as it is, and writes fail (503).
    read_only: bool = False
    # The node's capacity for allocations (None: the machine's processors, 30% of its memory).
    processors: int | None = None
    ml_memory_bytes: int | None = None
    # Elastic's model repository for the built-in ELSER ids (Elasticsearch's `xpack.ml.model_repository`):
    # an https://, http:// or file:// base URL.
    model_repository: str = DEFAULT_MODEL_REPOSITORY
    backend: Backend = Backend.LOCAL
    # The Ray cluster to join (None: start a local Ray, stopped with the server).
    ray_address: str | None = None
    # Each Ray node's own model cache (the same path on every node; None: this server's model cache path).
    ray_model_cache: Path | None = None
    uploads: UploadLimits = UploadLimits()
    # The shared store (a postgresql:// URL) several front ends use; None: the data directory's SQLite file.
    store: str | None = None
    # How uvicorn serves: HTTPS with this certificate and key (both or neither), the proxies whose
    # X-Forwarded-For/-Proto are believed, and its log level.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    log_level: str = "info"

    @classmethod
    def from_flags(cls, flags: ServeFlags) -> ServerSettings:
        """The settings the flags ask for; FlagErrors with every bad flag (and why) when any is bad.
        Nothing is created or locked here: the data directory and the store are looked at later."""
        problems = _Problems()
        precision = _precision(flags.precision, problems)
        ml_memory_bytes = _memory(flags.ml_memory, problems)
        repository = _model_repository(flags.model_repository, flags.config, problems)
        backend = _backend(flags, problems)
        scale_to_zero = _time(flags.scale_to_zero_time, "--scale-to-zero-time", problems, positive=False)
        uploads = _upload_limits(flags, problems)
        _store(flags.store, problems)
        if (flags.ssl_certfile is None) != (flags.ssl_keyfile is None):
            problems.add("--ssl-certfile", "--ssl-certfile and --ssl-keyfile go together")
        proxies = _trusted_proxies(flags.trusted_proxies, problems)
        http = _http_limits(flags, problems)
        problems.raise_if_any()
        return cls(
            **{name: getattr(flags, name) for name in _AS_GIVEN},
            precision=precision,
            http=http,
            ml_memory_bytes=ml_memory_bytes,
            model_repository=repository,
            backend=backend,
            ray_model_cache=None if flags.ray_model_cache is None else flags.ray_model_cache.resolve(),
            uploads=uploads,
            scale_to_zero_time_s=cls.scale_to_zero_time_s if scale_to_zero is None else scale_to_zero,
            trusted_proxies=proxies,
        )

    @property
    def store_path(self) -> Path:
        return self.data_dir / "elserve.db"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"


@dataclass(frozen=True)
class ServeFlags:
    """The command line's flags as given, before they are read (sizes, times and URLs still text).
    Each default here is the flag's default, which the command line shows in its help."""

    host: str = ServerSettings.host
    port: int = ServerSettings.port
    data_dir: Path = ServerSettings.data_dir
    log_level: str = ServerSettings.log_level
    precision: str = ServerSettings.precision.value
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    login_free_failures: int = ServerSettings.login_free_failures
    trusted_proxies: str | None = None
    http_max_content_length: str = byte_size_text(HttpLimits.max_content_length)
    http_max_header_size: str = byte_size_text(HttpLimits.max_header_size)
    http_max_initial_line_length: str = byte_size_text(HttpLimits.max_initial_line_length)
    http_read_timeout: str = "10s"
    http_max_connections: int | None = None
    processors: int | None = None
    ml_memory: str | None = None
    model_repository: str | None = None
    config: Path | None = None
    backend: str = ServerSettings.backend.value
    ray_address: str | None = None
    ray_model_cache: Path | None = None
    upload_check_timeout: str = "120s"
    upload_check_memory: str | None = None
    max_model_upload_store: str = byte_size_text(UploadLimits.store_limit_bytes)
    disk_flood_stage: str = UploadLimits.flood_stage
    scale_to_zero_time: str | None = None
    store: str | None = None
    # Not a flag: the ELASTIC_PASSWORD environment variable.
    elastic_password: str | None = None


def _precision(text: str, problems: _Problems) -> Precision:
    """`--precision`: one of the precisions, and one this CPU runs faster than `exact`."""
    try:
        precision = Precision(text)
    except ValueError:
        problems.add("--precision", f"must be one of {', '.join(Precision)}")
        return Precision.EXACT
    refusal = None
    if precision is Precision.BF16:
        from elserve.runtime.cpu import bf16_refusal

        refusal = bf16_refusal()
    elif precision is Precision.INT8:
        from elserve.runtime.int8 import machine_int8_refusal

        refusal = machine_int8_refusal()
    if refusal:
        problems.add("--precision", refusal)
    return precision


def _memory(text: str | None, problems: _Problems) -> int | None:
    if text is None:
        return None
    from elserve.deployments.capacity import parse_memory

    try:
        return parse_memory(text)
    except ValueError as exc:
        problems.add("--ml-memory", str(exc))
        return None


def _model_repository(flag: str | None, config_file: Path | None, problems: _Problems) -> str:
    """--model-repository (or its variable), else the config file's entry, else Elastic's public repository."""
    repository, hint = flag, "--model-repository"
    if repository is None and config_file is not None:
        hint = "--config"
        try:
            repository = model_repository_from(read_config_file(config_file))
        except ValueError as exc:
            problems.add(hint, str(exc))
            return DEFAULT_MODEL_REPOSITORY
    try:
        return normalize_repository(repository or DEFAULT_MODEL_REPOSITORY)
    except ModelDownloadError as exc:
        problems.add(hint, exc.reason)
        return DEFAULT_MODEL_REPOSITORY


def _backend(flags: ServeFlags, problems: _Problems) -> Backend:
    """`--backend`, with Ray installed for `ray`; the `--ray-*` flags only with it."""
    try:
        backend = Backend(flags.backend)
    except ValueError:
        problems.add("--backend", "must be local or ray")
        return Backend.LOCAL
    if backend is Backend.RAY:
        from elserve.deployments.rayserve import INSTALL_HINT, ray_available

        if not ray_available():
            problems.add("--backend", INSTALL_HINT)
        return backend
    for flag, value in (("--ray-address", flags.ray_address), ("--ray-model-cache", flags.ray_model_cache)):
        if value is not None:
            problems.add(flag, "only with --backend ray")
    return backend


def _store(store: str | None, problems: _Problems) -> None:
    """--store: a postgresql:// URL, with psycopg installed (whether the database can be used is
    asked at start, store/postgres.py `check_store`)."""
    if store is None:
        return
    from elserve.store.postgres import INSTALL_HINT, is_postgres_url

    if not is_postgres_url(store):
        problems.add("--store", "must be a postgresql:// URL")
        return
    try:
        import psycopg  # noqa: F401  # imported only to check that the extra is installed
        import psycopg_pool  # noqa: F401  # likewise
    except ImportError:
        problems.add("--store", INSTALL_HINT)


def _time(text: str | None, flag: str, problems: _Problems, *, positive: bool) -> float | None:
    """A time value (`15m`, `30s`) as seconds (None: absent or bad, then said); `positive`: not 0."""
    if text is None:
        return None
    from elserve.timevalue import parse_time

    try:
        seconds = parse_time(text, flag, text).seconds
    except ParseException as exc:
        problems.add(flag, exc.reason)
        return None
    if seconds is None and not positive:
        problems.add(flag, "must be a duration such as 15m")
    elif not seconds and positive:
        problems.add(flag, "must be a positive time value")
        return None
    return seconds


def _size(text: str, flag: str, problems: _Problems) -> int:
    """A byte size (`100mb`); 0 when bad, then said."""
    try:
        return parse_byte_size(text, flag)
    except ParseException as exc:
        problems.add(flag, exc.reason)
        return 0


def _upload_limits(flags: ServeFlags, problems: _Problems) -> UploadLimits:
    from elserve.store.disk_space import parse_flood_stage

    # A timeout of -1 (none) is not a duration; 0 is not positive.
    timeout = _time(flags.upload_check_timeout, "--upload-check-timeout", problems, positive=False)
    if timeout == 0:
        problems.add("--upload-check-timeout", "must be a positive time value")
    memory = flags.upload_check_memory
    try:
        parse_flood_stage(flags.disk_flood_stage)
    except ValueError as exc:
        problems.add("--disk-flood-stage", str(exc))
    return UploadLimits(
        check_timeout_s=timeout or UploadLimits.check_timeout_s,
        check_memory_bytes=None if memory is None else _size(memory, "--upload-check-memory", problems),
        store_limit_bytes=_size(flags.max_model_upload_store, "--max-model-upload-store", problems),
        flood_stage=flags.disk_flood_stage,
    )


def _trusted_proxies(text: str | None, problems: _Problems) -> tuple[str, ...]:
    """--trusted-proxies as addresses and networks; anything else is refused rather than ignored."""
    proxies = tuple(item.strip() for item in (text or "").split(",") if item.strip())
    for item in proxies:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            problems.add("--trusted-proxies", f"[{item}] is not an IP address or network")
    return proxies


def _http_limits(flags: ServeFlags, problems: _Problems) -> HttpLimits:
    timeout = _time(flags.http_read_timeout, "--http-read-timeout", problems, positive=True)
    return HttpLimits(
        max_content_length=_size(flags.http_max_content_length, "--http-max-content-length", problems),
        max_header_size=_size(flags.http_max_header_size, "--http-max-header-size", problems),
        max_initial_line_length=_size(flags.http_max_initial_line_length, "--http-max-initial-line-length", problems),
        read_timeout_s=timeout or HttpLimits.read_timeout_s,
        max_connections=flags.http_max_connections or default_max_connections(),
    )
