"""`python -m elserve.cli`: the `elserve` command."""

from elserve.cli import app

app()
