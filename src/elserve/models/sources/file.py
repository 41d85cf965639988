"""The `file:` source: a model directory or archive on this machine (`file:/path/to/model_dir`,
`file:/path/to/model.tar.gz`, `file:/path/to/model.zip`).

Used for imported models, air-gapped installs and tests. The encoder's files
are copied into the cache, so the model stays usable if the original changes
or goes. A directory's sha256 is `directory_sha256` (a digest over the model
files' names and contents, so one number covers the whole directory); an
archive's is the archive file's own.

An archive holds the model files at its top or in one top-level directory.
It is unpacked into scratch; members that would land outside it (absolute
paths, `..`, links) are refused.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from elserve.models.sources import (
    MODEL_FILES,
    ModelDownloadError,
    ProgressCallback,
    SourceUnavailable,
    missing_required,
)
from elserve.models.sources.transfer import file_sha256

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def model_files(directory: Path) -> list[Path]:
    """The encoder's files present in `directory`, sorted by name."""
    return sorted(p for name in MODEL_FILES if (p := directory / name).exists())


def directory_sha256(directory: Path) -> str:
    """sha256 over `<name> NUL <sha256 of file> LF` for each model file, in name order."""
    digest = hashlib.sha256()
    for path in model_files(directory):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def source_sha256(path: Path) -> str:
    """The sha256 a `file:` source of `path` is checked against: the archive's, or the directory's digest."""
    return file_sha256(path) if is_archive(path) else directory_sha256(path)


def _unpack(archive: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    target = (into / info.filename).resolve()
                    if not target.is_relative_to(root):
                        raise ModelDownloadError(f"the archive [{archive}] has a member outside it: [{info.filename}]")
                zf.extractall(into)
        else:
            with tarfile.open(archive) as tf:
                # The `data` filter refuses absolute paths, `..`, links out of the directory and devices.
                tf.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelDownloadError(f"[{archive}] could not be unpacked: {exc}") from exc


def _model_root(unpacked: Path) -> Path:
    """The unpacked directory holding the model: the top, or its only directory."""
    if model_files(unpacked):
        return unpacked
    entries = [p for p in unpacked.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return unpacked


@dataclass(frozen=True)
class FileSource:
    path: Path
    sha256: str | None

    @property
    def directory(self) -> Path:  # the name it had before archives
        return self.path

    @classmethod
    def parse(cls, rest: str, sha256: str | None) -> FileSource:
        # Accept both `file:/abs/dir` and the URL form `file:///abs/dir`.
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ModelDownloadError("model source [file:] must name a directory or an archive", status=400)
        return cls(Path(path).expanduser(), sha256)

    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> None:
        if is_archive(self.path):
            if not self.path.is_file():
                raise SourceUnavailable(f"model archive [{self.path}] not found", status=404)
            if self.sha256 is not None:
                actual = file_sha256(self.path)
                if actual != self.sha256:
                    raise ModelDownloadError(
                        f"Model sha256 checksums do not match, expected [{self.sha256}] but got [{actual}]"
                    )
            unpacked = scratch / "unpacked"
            shutil.rmtree(unpacked, ignore_errors=True)
            _unpack(self.path, unpacked)
            self._copy(_model_root(unpacked), dest, progress)
            return
        if not self.path.is_dir():
            raise SourceUnavailable(f"model directory [{self.path}] not found", status=404)
        self._copy(self.path, dest, progress)
        if self.sha256 is not None:
            # Checked on the copy, so what is installed is what was verified.
            actual = directory_sha256(dest)
            if actual != self.sha256:
                raise ModelDownloadError(
                    f"Model sha256 checksums do not match, expected [{self.sha256}] but got [{actual}]"
                )

    def _copy(self, directory: Path, dest: Path, progress: ProgressCallback) -> None:
        files = model_files(directory)
        missing = missing_required({p.name for p in files})
        if missing:
            raise ModelDownloadError(f"model directory [{self.path}] lacks the model files {missing}")
        total = sum(p.stat().st_size for p in files)
        done = 0
        progress(done, total)
        for path in files:
            with path.open("rb") as src, (dest / path.name).open("wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
                    done += len(block)
                    progress(done, max(total, done))


__all__ = ["ARCHIVE_SUFFIXES", "FileSource", "directory_sha256", "is_archive", "model_files", "source_sha256"]
