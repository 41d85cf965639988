"""The `elserve` command: arguments into settings, then the parts. No logic of its own."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from elserve.bench.run import bench as bench_command  # its options; importing loads only typer
from elserve.settings import HttpLimits, ServerSettings, UploadLimits

if TYPE_CHECKING:
    from elserve.models.cache import ModelCache
    from elserve.models.catalogue import Catalogue
    from elserve.store import Repository
    from elserve.store.node_lock import NodeLock

app = typer.Typer(
    help="elserve: an Elasticsearch-compatible inference service for learned sparse embeddings (ELSER, SPLADE).",
    no_args_is_help=True,
    add_completion=False,
)
models_app = typer.Typer(help="Import, list, download and remove models.", no_args_is_help=True)
users_app = typer.Typer(help="Manage the built-in users.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.command("bench")(bench_command)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Directory for state (SQLite) and the model cache.")]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="ELSERVE_STORE",
        help="State (endpoints, deployments, users, roles, API keys, models) in this PostgreSQL database, "
        "shared by several front ends: postgresql://user:password@host:port/db (needs pip install "
        "'elserve[postgres]'). Default: the data directory's SQLite file.",
        show_default=False,
    ),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9200,
    data_dir: DataDir = Path("data"),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    precision: Annotated[
        str,
        typer.Option(
            help="exact: the reference SPLADE vectors (within 1e-4). bf16: faster, approximate "
            "(encoder layers in bfloat16; top-20 token overlap about 0.99, see README); only on a CPU "
            "with native bfloat16 (avx512_bf16, amx_bf16 or aarch64 bf16). int8: faster, approximate (int8 "
            "weights and activations in the encoder layers, see docs/performance.md); refused where this CPU "
            "runs it no faster than exact."
        ),
    ] = "exact",
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.")
    ] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="The PEM private key of --ssl-certfile.")] = None,
    login_free_failures: Annotated[
        int, typer.Option(help="Failed logins of a user from one address before its further attempts are slowed.")
    ] = 5,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="Proxies (comma-separated addresses or networks, e.g. 10.0.0.5,192.168.0.0/24) whose "
            "X-Forwarded-For and X-Forwarded-Proto are believed: the client address of the audit log and the "
            "login brake. Default: none, every request is its socket's peer.",
            show_default=False,
        ),
    ] = None,
    http_max_content_length: Annotated[
        str, typer.Option(help="Largest request body, after decompression (Elasticsearch's http.max_content_length).")
    ] = "100mb",
    http_max_header_size: Annotated[
        str, typer.Option(help="Largest header block (Elasticsearch's http.max_header_size).")
    ] = "16kb",
    http_max_initial_line_length: Annotated[
        str, typer.Option(help="Longest request line (Elasticsearch's http.max_initial_line_length).")
    ] = "4kb",
    http_read_timeout: Annotated[
        str,
        typer.Option(
            help="A new connection must send its request head within this, a request head must arrive within "
            "this from its first byte, and a body may not stall longer; such a connection is closed."
        ),
    ] = "10s",
    http_max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open HTTP connections at most; one more is closed at once and logged. Default: 10000, or the "
            "open-files limit (ulimit -n) less 256 for the server's own files if that is lower.",
            show_default=False,
        ),
    ] = None,
    processors: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processors allocations may use (allocations x threads of normal-priority deployments); "
            "default: the machine's. As Elasticsearch's node.processors.",
        ),
    ] = None,
    ml_memory: Annotated[
        str | None,
        typer.Option(
            help="Memory allocations may use: a size (4gb, 512mb) or a share of the machine (40%); default 30%, "
            "as Elasticsearch's xpack.ml.max_machine_memory_percent.",
        ),
    ] = None,
    model_repository: ModelRepository = None,
    config: ConfigFile = None,
    backend: Annotated[
        str,
        typer.Option(
            help="Where allocations run: local (worker processes on this machine) or ray (Ray Serve replicas "
            "on a Ray cluster; needs pip install 'elserve[ray]').",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --backend ray: the Ray cluster to join (host:port, ray://host:port or auto), left running "
            "at shutdown; default: a local Ray on 127.0.0.1, stopped with the server.",
        ),
    ] = None,
    ray_model_cache: Annotated[
        Path | None,
        typer.Option(
            help="With --backend ray: where each Ray node keeps its models (the same path on every node, on "
            "each node's own disk; the replicas fetch the model there from its verified source). Default: "
            "this server's model cache path.",
        ),
    ] = None,
    upload_check_timeout: Annotated[
        str,
        typer.Option(
            help="An uploaded model is loaded and run on a sample batch in a child process when its upload "
            "completes; past this time the check is killed and the model refused.",
        ),
    ] = "120s",
    upload_check_memory: Annotated[
        str | None,
        typer.Option(
            help="The memory (heap) that upload check may use, e.g. 4gb. Default: 1gb plus 4 x the model's definition.",
        ),
    ] = None,
    max_model_upload_store: Annotated[
        str,
        typer.Option(
            help="What uploaded models may take on disk together (Elasticsearch's bound on its native model store).",
        ),
    ] = "50gb",
    disk_flood_stage: Annotated[
        str,
        typer.Option(
            help="Uploads stop before the data directory's disk is this full: a used percentage or ratio "
            "(95%, 0.95) or the free space to keep (500mb), as Elasticsearch's "
            "cluster.routing.allocation.disk.watermark.flood_stage.",
        ),
    ] = "95%",
    scale_to_zero_time: Annotated[
        str | None,
        typer.Option(
            help="Adaptive allocations: idle this long, a deployment with no minimum goes to zero allocations "
            "(Elasticsearch's xpack.ml.trained_models.adaptive_allocations.scale_to_zero_time), e.g. 15m.",
        ),
    ] = None,
    store: StoreUrl = None,
) -> None:
    """Run the service: Elasticsearch's inference and trained-model APIs over HTTP.

    The `elastic` superuser's password comes from ELASTIC_PASSWORD when it is set (until a password
    is set through the API); otherwise one is generated on the first start and printed once.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(0o077)  # the data directory holds password hashes: owner-only, whatever is created

    import uvicorn

    from elserve.api.app import create_app
    from elserve.api.protocol import protocol_class
    from elserve.deployments.capacity import parse_memory
    from elserve.runtime.cpu import bf16_refusal
    from elserve.runtime.encoder import BF16, INT8, PRECISIONS
    from elserve.runtime.int8 import machine_int8_refusal

    if precision not in PRECISIONS:
        raise typer.BadParameter(f"must be one of {', '.join(PRECISIONS)}", param_hint="--precision")
    if precision == BF16 and (refusal := bf16_refusal()):
        raise typer.BadParameter(refusal, param_hint="--precision")
    if precision == INT8 and (refusal := machine_int8_refusal()):
        raise typer.BadParameter(refusal, param_hint="--precision")
    try:
        ml_memory_bytes = None if ml_memory is None else parse_memory(ml_memory)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ml-memory") from None

    repository = _model_repository(model_repository, config)
    if backend not in ("local", "ray"):
        raise typer.BadParameter("must be local or ray", param_hint="--backend")
    if backend == "ray":
        from elserve.deployments.rayserve import INSTALL_HINT, ray_available

        if not ray_available():
            raise typer.BadParameter(INSTALL_HINT, param_hint="--backend")
    elif ray_address is not None or ray_model_cache is not None:
        flag = "--ray-address" if ray_address is not None else "--ray-model-cache"
        raise typer.BadParameter("only with --backend ray", param_hint=flag)
    scale_to_zero_s = _seconds(scale_to_zero_time, "--scale-to-zero-time")
    uploads = _upload_limits(upload_check_timeout, upload_check_memory, max_model_upload_store, disk_flood_stage)
    _check_store(store, ray_address)

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise typer.BadParameter("--ssl-certfile and --ssl-keyfile go together", param_hint="--ssl-certfile")
    proxies = _trusted_proxies(trusted_proxies)
    limits = _http_limits(
        http_max_content_length,
        http_max_header_size,
        http_max_initial_line_length,
        http_read_timeout,
        http_max_connections,
    )
    # The data directory is looked at and locked only once every flag is valid: a refused flag
    # leaves nothing behind, not even a lock file.
    read_only = _check_data_dir(data_dir)
    node_lock = _lock_data_dir(data_dir, read_only, checks_sqlite=store is None)
    settings = ServerSettings(
        host=host,
        port=port,
        data_dir=data_dir,
        elastic_password=os.environ.get("ELASTIC_PASSWORD") or None,
        precision=precision,
        login_free_failures=login_free_failures,
        http=limits,
        read_only=read_only,
        processors=processors,
        ml_memory_bytes=ml_memory_bytes,
        model_repository=repository,
        backend=backend,
        ray_address=ray_address,
        ray_model_cache=None if ray_model_cache is None else ray_model_cache.resolve(),
        uploads=uploads,
        store=store,
        **({} if scale_to_zero_s is None else {"scale_to_zero_time_s": scale_to_zero_s}),
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http=protocol_class(limits),
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        # Elasticsearch's answers carry neither a `server` nor a `date` header.
        server_header=False,
        date_header=False,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        proxy_headers=bool(proxies),  # uvicorn's default believes any loopback client's headers
        forwarded_allow_ips=proxies or None,
    )
    node_lock.release()  # held to the end (an exit of any kind releases it too)


def _trusted_proxies(value: str | None) -> list[str]:
    """--trusted-proxies as addresses and networks; anything else is refused rather than ignored."""
    import ipaddress

    proxies = [item.strip() for item in (value or "").split(",") if item.strip()]
    for item in proxies:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise typer.BadParameter(
                f"[{item}] is not an IP address or network", param_hint="--trusted-proxies"
            ) from None
    return proxies


def _seconds(value: str | None, flag: str) -> float | None:
    """A time value (`15m`, `30s`) as seconds; a bad one names its flag."""
    if value is None:
        return None
    from elserve.errors import ParseException
    from elserve.timevalue import parse_time

    try:
        seconds = parse_time(value, flag, value).seconds
    except ParseException as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None
    if seconds is None:
        raise typer.BadParameter("must be a duration such as 15m", param_hint=flag)
    return seconds


def _check_store(store: str | None, ray_address: str | None) -> None:
    """--store: a postgresql:// URL, with psycopg installed, and a database this release can use."""
    if store is None:
        return
    from elserve.store.postgres import INSTALL_HINT, is_postgres_url

    if not is_postgres_url(store):
        raise typer.BadParameter("must be a postgresql:// URL", param_hint="--store")
    if ray_address is not None:
        # Every front end runs each recorded deployment itself; on one shared Ray cluster they would all
        # own (and at shutdown delete) the same Serve applications: one owner per application is not built.
        raise typer.BadParameter(
            "front ends sharing a store cannot share one Ray cluster yet: each starts its own Ray", param_hint="--store"
        )
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise typer.BadParameter(INSTALL_HINT, param_hint="--store") from None
    from elserve.store.postgres import check_store

    problem, status = check_store(store)
    if problem is not None:
        logging.getLogger("elserve").error("%s", problem)
        raise typer.Exit(status)


def _check_data_dir(data_dir: Path) -> bool:
    """True: serve read-only. A data directory that cannot be written is said in one log line; without
    a store that can be read either there is nothing to serve (exit 78, EX_CONFIG)."""
    from elserve.store import check_data_dir

    check = check_data_dir(data_dir)
    log = logging.getLogger("elserve")
    if check.reserve_released:
        log.warning(
            "the disk holding the data directory [%s] is full: elserve gave back its reserve to start; free "
            "space on it (deleting unused models frees theirs)",
            data_dir,
        )
    if check.problem is None:
        return False
    if check.disk_full:
        log.error(
            "the disk holding the data directory [%s] is full (%s): free space on it, then start elserve again",
            data_dir,
            check.problem,
        )
        raise typer.Exit(75)  # EX_TEMPFAIL: the same start succeeds once there is room
    if check.readable_store:
        log.error(
            "the data directory [%s] cannot be written (%s): serving its state read-only; creating, changing "
            "or deleting endpoints, deployments and users answers 503 until it is writable and elserve restarts",
            data_dir,
            check.problem,
        )
        return True
    log.error(
        "the data directory [%s] cannot be written (%s) and holds no state to serve: make it writable "
        "by this user, or choose another with --data-dir",
        data_dir,
        check.problem,
    )
    raise typer.Exit(78)


def _upload_limits(check_timeout: str, check_memory: str | None, store: str, flood_stage: str) -> UploadLimits:
    from elserve.bytesize import parse_byte_size
    from elserve.errors import ParseException
    from elserve.store.disk_space import parse_flood_stage

    timeout = _seconds(check_timeout, "--upload-check-timeout")
    if not timeout:
        raise typer.BadParameter("must be a positive time value", param_hint="--upload-check-timeout")
    sizes: dict[str, int | None] = {"--upload-check-memory": None}
    for flag, text in (("--upload-check-memory", check_memory), ("--max-model-upload-store", store)):
        if text is not None:
            try:
                sizes[flag] = parse_byte_size(text, flag)
            except ParseException as exc:
                raise typer.BadParameter(exc.reason, param_hint=flag) from None
    try:
        parse_flood_stage(flood_stage)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--disk-flood-stage") from None
    store_limit = sizes["--max-model-upload-store"]
    assert store_limit is not None
    return UploadLimits(
        check_timeout_s=timeout,
        check_memory_bytes=sizes["--upload-check-memory"],
        store_limit_bytes=store_limit,
        flood_stage=flood_stage,
    )


def _lock_data_dir(data_dir: Path, read_only: bool, checks_sqlite: bool = True) -> NodeLock:
    """The data directory's node lock, and (`checks_sqlite`: no `--store` names another) a SQLite store
    that can be read, or none yet: a fresh install. Held until the process exits; a second server, or
    an empty or unreadable store, exits 78 with one line."""
    from elserve.store import SqliteRepository
    from elserve.store.node_lock import DataDirLocked, NodeLock
    from elserve.store.sqlite import StoreUnreadable

    log = logging.getLogger("elserve")
    try:
        lock = NodeLock.acquire(data_dir)
    except DataDirLocked as exc:
        log.error("%s", exc)
        raise typer.Exit(78) from None
    try:
        if checks_sqlite:
            SqliteRepository(ServerSettings(data_dir=data_dir).store_path, read_only=read_only).close()
    except StoreUnreadable as exc:
        lock.release()
        log.error("%s", exc)
        raise typer.Exit(78) from None
    return lock


def _http_limits(
    max_content_length: str, max_header_size: str, max_initial_line: str, read_timeout: str, max_connections: int | None
) -> HttpLimits:
    from elserve.api.protocol import default_max_connections
    from elserve.bytesize import parse_byte_size
    from elserve.errors import ParseException
    from elserve.timevalue import parse_time

    values = {}
    for flag, text in (
        ("--http-max-content-length", max_content_length),
        ("--http-max-header-size", max_header_size),
        ("--http-max-initial-line-length", max_initial_line),
    ):
        try:
            values[flag] = parse_byte_size(text, flag)
        except ParseException as exc:
            raise typer.BadParameter(exc.reason, param_hint=flag) from None
    try:
        timeout = parse_time(read_timeout, "--http-read-timeout", "10s").seconds
    except ParseException as exc:
        raise typer.BadParameter(exc.reason, param_hint="--http-read-timeout") from None
    if not timeout:
        raise typer.BadParameter("must be a positive time value", param_hint="--http-read-timeout")
    return HttpLimits(
        max_content_length=values["--http-max-content-length"],
        max_header_size=values["--http-max-header-size"],
        max_initial_line_length=values["--http-max-initial-line-length"],
        read_timeout_s=timeout,
        max_connections=max_connections or default_max_connections(),
    )


ModelRepository = Annotated[
    str | None,
    typer.Option(
        "--model-repository",
        envvar="ELSERVE_MODEL_REPOSITORY",
        help="Elastic's model repository for the built-in ELSER ids and elastic: imports: an https://, http:// or "
        "file:// base URL (Elasticsearch's xpack.ml.model_repository). Default: the config file's, else "
        "https://ml-models.elastic.co.",
        show_default=False,
    ),
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="ELSERVE_CONFIG",
        help="A TOML config file; read: model_repository (or [xpack.ml] model_repository).",
        show_default=False,
    ),
]


def _model_repository(flag: str | None, config_file: Path | None) -> str:
    """--model-repository (or its variable), else the config file's entry, else Elastic's public repository."""
    from elserve.models.sources import ModelDownloadError
    from elserve.models.sources.elastic import DEFAULT_MODEL_REPOSITORY, normalize_repository
    from elserve.settings import model_repository_from, read_config_file

    repository = flag
    hint = "--model-repository"
    if repository is None and config_file is not None:
        try:
            repository = model_repository_from(read_config_file(config_file))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--config") from None
        hint = "--config"
    try:
        return normalize_repository(repository or DEFAULT_MODEL_REPOSITORY)
    except ModelDownloadError as exc:
        raise typer.BadParameter(exc.reason, param_hint=hint) from None


@contextmanager
def _model_parts(
    data_dir: Path, model_repository: str | None, config: Path | None, store: str | None = None
) -> Iterator[tuple[Repository, ModelCache, Catalogue]]:
    """The data directory's store, model cache and catalogue (built-ins plus its registry), for one
    command: the store is closed after it, and what fails in it is printed and exits 1."""
    from elserve.models.cache import ModelCache
    from elserve.models.catalogue import Catalogue
    from elserve.models.registry import ModelRegistry
    from elserve.store import open_store
    from elserve.store.sqlite import StoreUnreadable

    repository = _model_repository(model_repository, config)
    settings = ServerSettings(data_dir=data_dir, model_repository=repository)
    _check_store(store, None)
    try:
        repo = open_store(store, settings.store_path)  # --store: the registry the front ends share
    except StoreUnreadable as exc:  # an empty or foreign elserve.db is not replaced by a fresh one
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        yield (
            repo,
            ModelCache(settings.model_cache_dir),
            Catalogue(model_repository=repository, registry=ModelRegistry(repo)),
        )
    except Exception as exc:
        typer.echo(f"error: {getattr(exc, 'reason', exc)}", err=True)
        raise typer.Exit(1) from None
    finally:
        repo.close()


@models_app.callback()
def models_callback(ctx: typer.Context) -> None:
    # What a models command creates in the data directory is owner-only, as what the server creates
    # (0700 directories, 0600 files): the same umask as `elserve serve`, for the command's length.
    previous = os.umask(0o077)
    ctx.call_on_close(lambda: os.umask(previous))


@models_app.command("list")
def models_list(
    data_dir: DataDir = Path("data"),
    model_repository: ModelRepository = None,
    config: ConfigFile = None,
    store: StoreUrl = None,
) -> None:
    """List the models: the built-in ids and the imported ones, where their files come from, and whether
    they are installed in the data directory."""
    from elserve.models.importing import list_models

    with _model_parts(data_dir, model_repository, config, store) as (_, cache, catalogue):
        entries = list_models(catalogue, cache)
    for entry in entries:
        state = "installed" if entry.installed is not None else "not installed"
        kind = "built-in" if entry.builtin else "imported"
        typer.echo(f"{entry.model_id}\t{kind}\t{state}\t{entry.source}\t{entry.description}")


@models_app.command("download")
def models_download(
    model_id: Annotated[str, typer.Argument(help="A catalogue id, e.g. .elser_model_2.")],
    data_dir: DataDir = Path("data"),
    model_repository: ModelRepository = None,
    config: ConfigFile = None,
    store: StoreUrl = None,
) -> None:
    """Download a model into the data directory's cache (what PUT does on first use)."""
    from elserve.models.downloads import ModelDownloads

    logging.basicConfig(level="INFO", format="%(message)s")
    with _model_parts(data_dir, model_repository, config, store) as (_, cache, catalogue):
        path = asyncio.run(ModelDownloads(cache, catalogue).ensure(model_id))
    typer.echo(str(path))


@models_app.command("import")
def models_import(
    source: Annotated[
        str,
        typer.Argument(
            help="hf:<owner>/<name>[@<revision>], file:<directory or .tar.gz/.zip archive>, or "
            "elastic:<packaged model id> (from the model repository) / elastic:<repository URL>#<id>."
        ),
    ],
    model_id: Annotated[str, typer.Option("--model-id", help="The id to register the model under.")],
    data_dir: DataDir = Path("data"),
    sha256: Annotated[
        str | None,
        typer.Option(help="Expected sha256: of a file: archive or directory digest, or of an elastic: package."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="The model's description.")] = None,
    model_repository: ModelRepository = None,
    config: ConfigFile = None,
    store: StoreUrl = None,
) -> None:
    """Install a model from a source and register it (eland_import_hub_model's counterpart); an
    elasticsearch-service endpoint can then use it by its --model-id."""
    from elserve.endpoints.ids import ID_LENGTH_LIMIT, id_too_long_message, invalid_id_message, is_valid_id
    from elserve.models.catalogue import ModelSpec
    from elserve.models.importing import import_model

    if not is_valid_id(model_id):
        raise typer.BadParameter(
            invalid_id_message(model_id).replace("inference_id", "model_id"), param_hint="--model-id"
        )
    if len(model_id) > ID_LENGTH_LIMIT:
        raise typer.BadParameter(id_too_long_message("model_id", model_id), param_hint="--model-id")
    if sha256 is not None:
        try:
            sha256 = ModelSpec(model_id, "file:/", sha256).sha256
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--sha256") from None
    logging.basicConfig(level="INFO", format="%(message)s")
    with _model_parts(data_dir, model_repository, config, store) as (_, cache, catalogue):
        model = import_model(source, model_id, catalogue=catalogue, cache=cache, sha256=sha256, description=description)
    typer.echo(f"imported [{model.model_id}] from [{model.source}] into [{cache.root / (model.cache_key or '')}]")


@models_app.command("rm")
def models_rm(
    model_id: Annotated[str, typer.Argument(help="An imported model's id, or a built-in id (its files only).")],
    data_dir: DataDir = Path("data"),
    model_repository: ModelRepository = None,
    config: ConfigFile = None,
    store: StoreUrl = None,
) -> None:
    """Remove a model and its files; refused while an endpoint or deployment of the data directory uses it."""
    from elserve.models.importing import remove_model
    from elserve.operations.model_users import model_users

    with _model_parts(data_dir, model_repository, config, store) as (repo, cache, catalogue):
        removed = remove_model(model_id, catalogue=catalogue, cache=cache, users=model_users(repo))
    typer.echo(f"removed [{model_id}]" + "".join(f"\n  deleted {p}" for p in removed))


@users_app.command("reset-password")
def reset_password(
    user: Annotated[str | None, typer.Argument(help="The user (default: elastic).", show_default=False)] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="The user, as elasticsearch-reset-password takes it.")
    ] = None,
    enable: Annotated[
        bool,
        typer.Option("--enable", help="Also enable the user if it is disabled (not in elasticsearch-reset-password)."),
    ] = False,
    data_dir: DataDir = Path("data"),
    store: StoreUrl = None,
) -> None:
    """Generate a new password for a native user and print it (as elasticsearch-reset-password does).

    Works on a stopped or a running server's data directory: the store is SQLite in WAL mode, and a
    running server checks the stored hash on every request, so the old password stops working at once.
    With --store, in the database several front ends share: on every one of them at once.
    A disabled user stays disabled (as with Elasticsearch's tool) unless --enable is given; either way
    the command says so.
    """
    from elserve.security.passwords import generate_password
    from elserve.security.users import UserStore
    from elserve.store import open_store

    name = user or username or "elastic"
    settings = ServerSettings(data_dir=data_dir)
    _check_store(store, None)
    if store is None and not settings.store_path.exists():
        raise typer.BadParameter(f"no elserve data in [{data_dir}]", param_hint="--data-dir")
    repo = open_store(store, settings.store_path)
    try:
        users = UserStore(repo)
        found = users.get(name)
        if found is None:
            raise typer.BadParameter(f"user [{name}] does not exist")
        password = generate_password()
        users.set_password(name, password)
        if not found.enabled and enable:
            users.set_enabled(name, True)
    finally:
        repo.close()
    if not found.enabled:
        if enable:
            typer.echo(f"The [{name}] user was disabled and is now enabled.")
        else:
            typer.echo(
                f"warning: the [{name}] user is disabled: this password logs in only once it is enabled "
                f"(run this command again with --enable, or POST /_security/user/{name}/_enable).",
                err=True,
            )
    typer.echo(f"Password for the [{name}] user successfully reset.\nNew value: {password}")


if __name__ == "__main__":
    app()
