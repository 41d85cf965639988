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
    with pytest.raises(
        ModelDownloadError, match=r"lacks the model files \['model.safetensors', 'tokenizer.json or vocab.txt'\]"
    ):
        FileSource(tmp_path / "half", None).fetch(dest, tmp_path, lambda d, t: None)


def _tar(archive: Path, src: Path, top: str | None) -> Path:
    import tarfile

    with tarfile.open(archive, "w:gz") as tf:
        for p in sorted(src.iterdir()):
            tf.add(p, arcname=f"{top}/{p.name}" if top else p.name)
    return archive


def _zip(archive: Path, src: Path, top: str | None) -> Path:
    import zipfile

    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.iterdir()):
            zf.write(p, arcname=f"{top}/{p.name}" if top else p.name)
    return archive


@pytest.mark.parametrize("make", [_tar, _zip])
@pytest.mark.parametrize("top", [None, "my-model"])
def test_archives(tmp_path: Path, make, top: str | None) -> None:
    from elserve.models.sources.file import source_sha256

    src = _model(tmp_path / "src", **{"README.md": b"card"})
    archive = make(tmp_path / ("model.tar.gz" if make is _tar else "model.zip"), src, top)
    dest = tmp_path / "dest"
    dest.mkdir()
    source = open_source(f"file:{archive}", source_sha256(archive))
    source.fetch(dest, tmp_path / "scratch", lambda d, t: None)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (dest / "config.json").read_bytes() == (src / "config.json").read_bytes()
    with pytest.raises(ModelDownloadError, match="checksums do not match"):
        open_source(f"file:{archive}", "2" * 64).fetch(dest, tmp_path / "scratch", lambda d, t: None)


def test_archive_members_outside_are_refused(tmp_path: Path) -> None:
    import io
    import tarfile
    import zipfile

    evil_tar = tmp_path / "evil.tar.gz"
    with tarfile.open(evil_tar, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.json")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"{}"))
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as zf:
        zf.writestr("../escaped.json", "{}")
    for archive in (evil_tar, evil_zip):
        dest = tmp_path / f"dest-{archive.name}"
        dest.mkdir()
        with pytest.raises(ModelDownloadError, match=r"could not be unpacked|outside"):
            FileSource(archive, None).fetch(dest, tmp_path / "scratch", lambda d, t: None)
    assert not (tmp_path / "escaped.json").exists() and not (tmp_path / "scratch" / "escaped.json").exists()
    with pytest.raises(ModelDownloadError, match="not found"):
        FileSource(tmp_path / "absent.zip", None).fetch(tmp_path, tmp_path / "scratch", lambda d, t: None)
