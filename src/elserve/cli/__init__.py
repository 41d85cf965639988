"""The `elserve` command: arguments into settings, then the parts. No logic of its own.

`ServerSettings.from_flags` (settings.py) reads and checks the flags; each module here wires one
command group: `serve.py`, `models.py`, `users.py`; `elserve bench` is bench/run.py's command.
`options.py` holds the options several commands share, `startup.py` what is looked at before serving.
"""

from __future__ import annotations

import typer

from elserve.bench.run import bench as bench_command  # its options; importing loads only typer
from elserve.cli.models import models_app
from elserve.cli.serve import serve
from elserve.cli.users import users_app

app = typer.Typer(
    help="elserve: an Elasticsearch-compatible inference service for learned sparse embeddings (ELSER, SPLADE).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.command("bench")(bench_command)
app.command()(serve)

__all__ = ["app"]
