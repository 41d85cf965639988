"""`elserve serve` with bad flags: one usage error naming every one (exit 2), and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _serve(data: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elserve.cli", "serve", "--data-dir", str(data), *flags],
        capture_output=True,
        text=True,
        env=os.environ | {"COLUMNS": "400"},
        timeout=300,  # only against a hang: no flag here is good enough to start a server
    )


def test_every_bad_flag_in_one_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = _serve(
        data,
        "--precision",
        "fast",
        "--backend",
        "moon",
        "--http-max-header-size",
        "12",
        "--trusted-proxies",
        "bogus",
        "--store",
        "mysql://db",
    )
    assert done.returncode == 2, done.stderr
    said = " ".join(done.stderr.replace("│", " ").split())  # as one line, out of typer's box
    assert "Validation Failed: 1: Invalid value for --precision: must be one of exact, bf16, int8;" in said
    assert "2: Invalid value for --backend: must be local or ray;" in said
    assert "3: Invalid value for --store: must be a postgresql:// URL;" in said
    assert "4: Invalid value for --trusted-proxies: [bogus] is not an IP address or network;" in said
    assert "5: Invalid value for --http-max-header-size:" in said and "6:" not in said
    assert not data.exists()  # refused flags leave nothing, not even a lock file


def test_one_bad_flag_as_click_says_one(tmp_path: Path) -> None:
    done = _serve(tmp_path / "data", "--ray-address", "127.0.0.1:6379")
    assert done.returncode == 2
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "Invalid value for --ray-address: only with --backend ray" in said and "Validation Failed" not in said
