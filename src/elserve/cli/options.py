"""The options several commands share, and bad flags as the command line says them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from elserve.settings import FlagErrors, ServeFlags, ServerSettings

# Every flag's default, in one place (the settings' own): the options below and in serve.py show them.
DEFAULTS = ServeFlags()

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


def settings_from(flags: ServeFlags) -> ServerSettings:
    """The settings of these flags; when any is bad, a usage error (exit 2) naming every bad flag."""
    try:
        return ServerSettings.from_flags(flags)
    except FlagErrors as exc:
        raise bad_flags(exc) from None


class BadFlags(typer.BadParameter):
    """Several bad flags in one message (exit 2, as one bad flag)."""

    def format_message(self) -> str:
        return self.message


def bad_flags(errors: FlagErrors) -> typer.BadParameter:
    """One bad flag as click says one (`Invalid value for '--flag': ...`); several numbered in one
    message, as Elasticsearch's `ValidationException` numbers its errors."""
    each = [typer.BadParameter(message, param_hint=flag) for flag, message in errors.problems]
    if len(each) == 1:
        return each[0]
    return BadFlags("Validation Failed: " + "".join(f"{i}: {e.format_message()};" for i, e in enumerate(each, 1)))
