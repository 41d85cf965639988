from __future__ import annotations

from pathlib import Path

import pytest

from elserve.models import ModelDownloadError
from elserve.models.sources import open_source
from elserve.models.sources.file import FileSource, directory_sha256


def _model(directory: Path, **extra: bytes) -> Path:
    directory.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (directory / name).write_bytes(name.encode() * 100)
    for name, data in extra.items():
        (directory / name).write_bytes(data)
    return directory


def test_parse() -> None:
    assert open_source("file:/models/m", None) == FileSource(Path("/models/m"), None)
    assert open_source("file:///models/m", None) == FileSource(Path("/models/m"), None)
    with pytest.raises(ModelDownloadError, match="must name a directory"):
        open_source("file:", None)


def test_copies_model_files_with_progress(tmp_path: Path) -> None:
    src = _model(tmp_path / "src", **{"heads.pt": b"x", "tokenizer_config.json": b"{}"})
    dest = tmp_path / "dest"
    dest.mkdir()
    seen: list[tuple[int, int | None]] = []
    FileSource(src, directory_sha256(src)).fetch(dest, tmp_path, lambda d, t: seen.append((d, t)))
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    total = sum((src / p.name).stat().st_size for p in dest.iterdir())
    assert seen[0] == (0, total) and seen[-1] == (total, total)


def test_digest_covers_names_and_contents(tmp_path: Path) -> None:
    a = _model(tmp_path / "a")
    b = _model(tmp_path / "b")
    assert directory_sha256(a) == directory_sha256(b)
    (b / "config.json").write_bytes(b"{}")
    assert directory_sha256(a) != directory_sha256(b)
    (tmp_path / "a" / "vocab.txt").write_bytes(b"")
    assert directory_sha256(a) != directory_sha256(_model(tmp_path / "c"))


def test_checksum_mismatch(tmp_path: Path) -> None:
    src = _model(tmp_path / "src")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ModelDownloadError) as raised:
        FileSource(src, "1" * 64).fetch(dest, tmp_path, lambda d, t: None)
    assert raised.value.reason == (
        f"Model sha256 checksums do not match, expected [{'1' * 64}] but got [{directory_sha256(src)}]"
    )


def test_missing_directory_and_files(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ModelDownloadError, match=r"model directory \[.*/nope\] not found"):
        FileSource(tmp_path / "nope", None).fetch(dest, tmp_path, lambda d, t: None)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(ModelDownloadError, match=r"lacks the model files \['model.safetensors', 'tokenizer.json'\]"):
        FileSource(tmp_path / "half", None).fetch(dest, tmp_path, lambda d, t: None)
