"""`python -m elserve.bench`: the same command as `elserve bench`."""

import typer

from elserve.bench.run import bench

typer.run(bench)
