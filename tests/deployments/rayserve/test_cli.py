"""`elserve serve --backend ray` without Ray installed: exit 2, saying how to install it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from elserve.cli import app


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    # `import ray` fails, as on a machine without the extra (whether or not this one has it).
    monkeypatch.setitem(sys.modules, "ray", None)
    # `serve` sets the process's umask and logging before it checks its options: put them back.
    umask = os.umask(0o022)
    os.umask(umask)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "data"), *args], env={"COLUMNS": "200"})
    finally:
        os.umask(umask)
        root.handlers[:] = handlers
        root.setLevel(level)


def test_backend_ray_without_ray_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _serve(tmp_path, monkeypatch, "--backend", "ray")
    assert result.exit_code == 2
    assert "pip install 'elserve[ray]'" in result.output


def test_ray_address_needs_the_ray_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _serve(tmp_path, monkeypatch, "--ray-address", "127.0.0.1:6379")
    assert result.exit_code == 2
    assert "only with --backend ray" in result.output
