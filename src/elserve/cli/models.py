"""`elserve models ...`: list, download, import and remove the models of a data directory (or a --store)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from elserve.cli.options import DEFAULTS, ConfigFile, DataDir, ModelRepository, StoreUrl, settings_from
from elserve.cli.startup import check_store_reachable
from elserve.settings import ServeFlags

if TYPE_CHECKING:
    from elserve.models.cache import ModelCache
    from elserve.models.catalogue import Catalogue
    from elserve.store import Repository

models_app = typer.Typer(help="Import, list, download and remove models.", no_args_is_help=True)


# The options every models command takes after its own: where its models and their registry are.
_DATA_OPTIONS = (
    inspect.Parameter("data_dir", inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS.data_dir, annotation=DataDir),
    inspect.Parameter("model_repository", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ModelRepository),
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigFile),
    inspect.Parameter("store", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=StoreUrl),
)


def _taking_data_options(body: Callable[..., None]) -> Callable[..., None]:
    """`body` as a command that takes, after its own arguments, the options every models command shares
    (--data-dir, --model-repository, --config, --store); they reach it as one value, `data`."""
    own = [p for p in inspect.signature(body, eval_str=True).parameters.values() if p.name != "data"]

    @functools.wraps(body)
    def command(
        *, data_dir: Path, model_repository: str | None, config: Path | None, store: str | None, **arguments: Any
    ) -> None:
        flags = ServeFlags(data_dir=data_dir, model_repository=model_repository, config=config, store=store)
        body(**arguments, data=flags)

    command.__dict__["__signature__"] = inspect.Signature([*own, *_DATA_OPTIONS])  # the options typer reads
    return command


@contextmanager
def _model_parts(data: ServeFlags) -> Iterator[tuple[Repository, ModelCache, Catalogue]]:
    """The data directory's store, model cache and catalogue (built-ins plus its registry), for one
    command: the store is closed after it, and what fails in it is printed and exits 1."""
    from elserve.models.cache import ModelCache
    from elserve.models.catalogue import Catalogue
    from elserve.models.registry import ModelRegistry
    from elserve.store import open_store
    from elserve.store.sqlite import StoreUnreadable

    settings = settings_from(data)
    check_store_reachable(data.store)
    try:
        repo = open_store(data.store, settings.store_path)  # --store: the registry the front ends share
    except StoreUnreadable as exc:  # an empty or foreign elserve.db is not replaced by a fresh one
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        yield (
            repo,
            ModelCache(settings.model_cache_dir),
            Catalogue(model_repository=settings.model_repository, registry=ModelRegistry(repo)),
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
@_taking_data_options
def models_list(data: ServeFlags) -> None:
    """List the models: the built-in ids and the imported ones, where their files come from, and whether
    they are installed in the data directory."""
    from elserve.models.importing import list_models

    with _model_parts(data) as (_, cache, catalogue):
        entries = list_models(catalogue, cache)
    for entry in entries:
        state = "installed" if entry.installed is not None else "not installed"
        kind = "built-in" if entry.builtin else "imported"
        typer.echo(f"{entry.model_id}\t{kind}\t{state}\t{entry.source}\t{entry.description}")


@models_app.command("download")
@_taking_data_options
def models_download(
    model_id: Annotated[str, typer.Argument(help="A catalogue id, e.g. .elser_model_2.")],
    *,
    data: ServeFlags,
) -> None:
    """Download a model into the data directory's cache (what PUT does on first use)."""
    from elserve.models.downloads import ModelDownloads

    logging.basicConfig(level="INFO", format="%(message)s")
    with _model_parts(data) as (_, cache, catalogue):
        path = asyncio.run(ModelDownloads(cache, catalogue).ensure(model_id))
    typer.echo(str(path))


@models_app.command("import")
@_taking_data_options
def models_import(
    source: Annotated[
        str,
        typer.Argument(
            help="hf:<owner>/<name>[@<revision>], file:<directory or .tar.gz/.zip archive>, or "
            "elastic:<packaged model id> (from the model repository) / elastic:<repository URL>#<id>."
        ),
    ],
    model_id: Annotated[str, typer.Option("--model-id", help="The id to register the model under.")],
    sha256: Annotated[
        str | None,
        typer.Option(help="Expected sha256: of a file: archive or directory digest, or of an elastic: package."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="The model's description.")] = None,
    *,
    data: ServeFlags,
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
    with _model_parts(data) as (_, cache, catalogue):
        model = import_model(source, model_id, catalogue=catalogue, cache=cache, sha256=sha256, description=description)
    typer.echo(f"imported [{model.model_id}] from [{model.source}] into [{cache.root / (model.cache_key or '')}]")


@models_app.command("rm")
@_taking_data_options
def models_rm(
    model_id: Annotated[str, typer.Argument(help="An imported model's id, or a built-in id (its files only).")],
    *,
    data: ServeFlags,
) -> None:
    """Remove a model and its files; refused while an endpoint or deployment of the data directory uses it."""
    from elserve.models.importing import remove_model
    from elserve.operations.model_users import model_users

    with _model_parts(data) as (repo, cache, catalogue):
        removed = remove_model(model_id, catalogue=catalogue, cache=cache, users=model_users(repo))
    typer.echo(f"removed [{model_id}]" + "".join(f"\n  deleted {p}" for p in removed))
