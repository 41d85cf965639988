"""The `elserve` command: arguments into settings, then the parts. No logic of its own."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from elserve.bench.run import bench as bench_command  # its options; importing loads only typer
from elserve.settings import ServerSettings

app = typer.Typer(
    help="elserve: an Elasticsearch-compatible inference service for learned sparse embeddings (ELSER, SPLADE).",
    no_args_is_help=True,
    add_completion=False,
)
models_app = typer.Typer(help="Inspect and download the models of the catalogue.", no_args_is_help=True)
users_app = typer.Typer(help="Manage the built-in users.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.command("bench")(bench_command)

DataDir = Annotated[Path, typer.Option("--data-dir", help="Directory for state (SQLite) and the model cache.")]


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
            "(encoder layers in bfloat16; top-20 token overlap about 0.99, see README)."
        ),
    ] = "exact",
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
) -> None:
    """Run the service: Elasticsearch's inference and trained-model APIs over HTTP.

    The `elastic` superuser's password comes from ELASTIC_PASSWORD when it is set;
    otherwise one is generated on the first start and printed once.
    """
    import uvicorn

    from elserve.api.app import create_app
    from elserve.runtime.encoder import PRECISIONS

    from elserve.deployments.capacity import parse_memory

    if precision not in PRECISIONS:
        raise typer.BadParameter(f"must be one of {', '.join(PRECISIONS)}", param_hint="--precision")
    try:
        ml_memory_bytes = None if ml_memory is None else parse_memory(ml_memory)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ml-memory") from None

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(
        host=host,
        port=port,
        data_dir=data_dir,
        elastic_password=os.environ.get("ELASTIC_PASSWORD") or None,
        precision=precision,
        processors=processors,
        ml_memory_bytes=ml_memory_bytes,
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


@models_app.command("list")
def models_list() -> None:
    """List the catalogue: model ids and where their files come from."""
    from elserve.models.catalogue import BUILTIN_MODELS

    for spec in BUILTIN_MODELS:
        typer.echo(f"{spec.model_id}\t{spec.source}\t{spec.description}")


@models_app.command("download")
def models_download(
    model_id: Annotated[str, typer.Argument(help="A catalogue id, e.g. .elser_model_2.")],
    data_dir: DataDir = Path("data"),
) -> None:
    """Download a model into the data directory's cache (what PUT does on first use)."""
    from elserve.models.cache import ModelCache
    from elserve.models.downloads import ModelDownloads

    logging.basicConfig(level="INFO", format="%(message)s")
    downloads = ModelDownloads(ModelCache(ServerSettings(data_dir=data_dir).model_cache_dir))
    path = asyncio.run(downloads.ensure(model_id))
    typer.echo(str(path))


@users_app.command("reset-password")
def reset_password(
    username: Annotated[str, typer.Option("--username", "-u", help="The user.")] = "elastic",
    data_dir: DataDir = Path("data"),
) -> None:
    """Generate a new password for a user and print it (as elasticsearch-reset-password does)."""
    from elserve.security.passwords import generate_password
    from elserve.security.users import UserStore
    from elserve.store import SqliteRepository

    settings = ServerSettings(data_dir=data_dir)
    users = UserStore(SqliteRepository(settings.store_path))
    user = users.get(username)
    if user is None:
        raise typer.BadParameter(f"user [{username}] does not exist")
    password = generate_password()
    users.set_password(username, password, user.roles)
    typer.echo(f"New value: {password}")


if __name__ == "__main__":
    app()
