"""`python -m elserve.bench`: the same command as `elserve bench`."""

import typer

from elserve.bench.run import bench

if __name__ == "__main__":  # runner processes are spawned: they import this module again
    typer.run(bench)
