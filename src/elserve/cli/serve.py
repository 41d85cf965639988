"""`elserve serve`: its options, read into the server's settings, then the server under uvicorn."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from elserve.cli.options import DEFAULTS, ConfigFile, DataDir, ModelRepository, StoreUrl, settings_from
from elserve.cli.startup import check_data_dir, check_store_reachable, lock_data_dir
from elserve.settings import ServeFlags, ServerSettings


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULTS.host,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULTS.port,
    data_dir: DataDir = DEFAULTS.data_dir,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = DEFAULTS.log_level,
    precision: Annotated[
        str,
        typer.Option(
            help="exact: the reference SPLADE vectors (within 1e-4). bf16: faster, approximate "
            "(encoder layers in bfloat16; top-20 token overlap about 0.99, see README); only on a CPU "
            "with native bfloat16 (avx512_bf16, amx_bf16 or aarch64 bf16). int8: faster, approximate (int8 "
            "weights and activations in the encoder layers, see docs/performance.md; the weights' rounding "
            "takes ~13 s of a thread at load at BERT-base); refused where this CPU runs it no faster than exact."
        ),
    ] = DEFAULTS.precision,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile.")
    ] = DEFAULTS.ssl_certfile,
    ssl_keyfile: Annotated[
        Path | None, typer.Option(help="The PEM private key of --ssl-certfile.")
    ] = DEFAULTS.ssl_keyfile,
    login_free_failures: Annotated[
        int, typer.Option(help="Failed logins of a user from one address before its further attempts are slowed.")
    ] = DEFAULTS.login_free_failures,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            help="Proxies (comma-separated addresses or networks, e.g. 10.0.0.5,192.168.0.0/24) whose "
            "X-Forwarded-For and X-Forwarded-Proto are believed: the client address of the audit log and the "
            "login brake. Default: none, every request is its socket's peer.",
            show_default=False,
        ),
    ] = DEFAULTS.trusted_proxies,
    http_max_content_length: Annotated[
        str, typer.Option(help="Largest request body, after decompression (Elasticsearch's http.max_content_length).")
    ] = DEFAULTS.http_max_content_length,
    http_max_header_size: Annotated[
        str, typer.Option(help="Largest header block (Elasticsearch's http.max_header_size).")
    ] = DEFAULTS.http_max_header_size,
    http_max_initial_line_length: Annotated[
        str, typer.Option(help="Longest request line (Elasticsearch's http.max_initial_line_length).")
    ] = DEFAULTS.http_max_initial_line_length,
    http_read_timeout: Annotated[
        str,
        typer.Option(
            help="A new connection must send its request head within this, a request head must arrive within "
            "this from its first byte, and a body may not stall longer; such a connection is closed."
        ),
    ] = DEFAULTS.http_read_timeout,
    http_max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open HTTP connections at most; one more is closed at once and logged. Default: 10000, or the "
            "open-files limit (ulimit -n) less 256 for the server's own files if that is lower.",
            show_default=False,
        ),
    ] = DEFAULTS.http_max_connections,
    processors: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processors allocations may use (allocations x threads of normal-priority deployments); "
            "default: the machine's. As Elasticsearch's node.processors.",
        ),
    ] = DEFAULTS.processors,
    ml_memory: Annotated[
        str | None,
        typer.Option(
            help="Memory allocations may use: a size (4gb, 512mb) or a share of the machine (40%); default 30%, "
            "as Elasticsearch's xpack.ml.max_machine_memory_percent.",
        ),
    ] = DEFAULTS.ml_memory,
    model_repository: ModelRepository = DEFAULTS.model_repository,
    config: ConfigFile = DEFAULTS.config,
    backend: Annotated[
        str,
        typer.Option(
            help="Where allocations run: local (worker processes on this machine) or ray (Ray Serve replicas "
            "on a Ray cluster; needs pip install 'elserve[ray]').",
        ),
    ] = DEFAULTS.backend,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="With --backend ray: the Ray cluster to join (host:port, ray://host:port or auto), left running "
            "at shutdown; default: a local Ray on 127.0.0.1, stopped with the server.",
        ),
    ] = DEFAULTS.ray_address,
    ray_model_cache: Annotated[
        Path | None,
        typer.Option(
            help="With --backend ray: where each Ray node keeps its models (the same path on every node, on "
            "each node's own disk; the replicas fetch the model there from its verified source). Default: "
            "this server's model cache path.",
        ),
    ] = DEFAULTS.ray_model_cache,
    upload_check_timeout: Annotated[
        str,
        typer.Option(
            help="An uploaded model is loaded and run on a sample batch in a child process when its upload "
            "completes; past this time the check is killed and the model refused.",
        ),
    ] = DEFAULTS.upload_check_timeout,
    upload_check_memory: Annotated[
        str | None,
        typer.Option(
            help="The memory (heap) that upload check may use, e.g. 4gb. Default: 1gb plus 4 x the model's definition.",
        ),
    ] = DEFAULTS.upload_check_memory,
    max_model_upload_store: Annotated[
        str,
        typer.Option(
            help="What uploaded models may take on disk together (Elasticsearch's bound on its native model store).",
        ),
    ] = DEFAULTS.max_model_upload_store,
    disk_flood_stage: Annotated[
        str,
        typer.Option(
            help="Uploads stop before the data directory's disk is this full: a used percentage or ratio "
            "(95%, 0.95) or the free space to keep (500mb), as Elasticsearch's "
            "cluster.routing.allocation.disk.watermark.flood_stage.",
        ),
    ] = DEFAULTS.disk_flood_stage,
    scale_to_zero_time: Annotated[
        str | None,
        typer.Option(
            help="Adaptive allocations: idle this long, a deployment with no minimum goes to zero allocations "
            "(Elasticsearch's xpack.ml.trained_models.adaptive_allocations.scale_to_zero_time), e.g. 15m.",
        ),
    ] = DEFAULTS.scale_to_zero_time,
    store: StoreUrl = DEFAULTS.store,
) -> None:
    """Run the service: Elasticsearch's inference and trained-model APIs over HTTP.

    The `elastic` superuser's password comes from ELASTIC_PASSWORD when it is set (until a password
    is set through the API); otherwise one is generated on the first start and printed once.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(0o077)  # the data directory holds password hashes: owner-only, whatever is created
    # Each option above is the ServeFlags field of its name.
    settings = settings_from(ServeFlags(**ctx.params, elastic_password=os.environ.get("ELASTIC_PASSWORD") or None))
    check_store_reachable(settings.store)
    # The data directory is looked at and locked only once every flag is valid: a refused flag
    # leaves nothing behind, not even a lock file.
    read_only = check_data_dir(settings.data_dir)
    node_lock = lock_data_dir(settings.data_dir, read_only, checks_sqlite=settings.store is None)
    _run(replace(settings, read_only=read_only))
    node_lock.release()  # held to the end (an exit of any kind releases it too)


def _run(settings: ServerSettings) -> None:
    """The app under uvicorn until it stops."""
    import uvicorn

    from elserve.api.app import create_app
    from elserve.api.protocol import protocol_class

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=protocol_class(settings.http),
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        # Elasticsearch's answers carry neither a `server` nor a `date` header.
        server_header=False,
        date_header=False,
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        proxy_headers=bool(settings.trusted_proxies),  # uvicorn's default believes any loopback client's headers
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )
