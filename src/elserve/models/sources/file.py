"""The `file:` source: a model directory on this machine (`file:/path/to/model_dir`).

Used for imported models and tests. The encoder's files are copied into the
cache, so the model stays usable if the original directory changes or goes.
Its sha256 is `directory_sha256`: a digest over the model files' names and
contents, so one number covers the whole directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from elserve.models.sources import (
    MODEL_FILES,
    ModelDownloadError,
    ProgressCallback,
    missing_required,
)
from elserve.models.sources.pip import file_sha256


def model_files(directory: Path) -> list[Path]:
    """The encoder's files present in `directory`, sorted by name."""
    return sorted(p for name in MODEL_FILES if (p := directory / name).exists())


def directory_sha256(directory: Path) -> str:
    """sha256 over `<name> NUL <sha256 of file> LF` for each model file, in name order."""
    digest = hashlib.sha256()
    for path in model_files(directory):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class FileSource:
    directory: Path
    sha256: str | None

    @classmethod
    def parse(cls, rest: str, sha256: str | None) -> FileSource:
        # Accept both `file:/abs/dir` and the URL form `file:///abs/dir`.
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ModelDownloadError("model source [file:] must name a directory", status=400)
        return cls(Path(path).expanduser(), sha256)

    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> None:
        if not self.directory.is_dir():
            raise ModelDownloadError(f"model directory [{self.directory}] not found", status=404)
        files = model_files(self.directory)
        missing = missing_required({p.name for p in files})
        if missing:
            raise ModelDownloadError(f"model directory [{self.directory}] lacks the model files {missing}")
        total = sum(p.stat().st_size for p in files)
        done = 0
        progress(done, total)
        for path in files:
            with path.open("rb") as src, (dest / path.name).open("wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
                    done += len(block)
                    progress(done, max(total, done))
        if self.sha256 is not None:
            # Checked on the copy, so what is installed is what was verified.
            actual = directory_sha256(dest)
            if actual != self.sha256:
                raise ModelDownloadError(
                    f"Model sha256 checksums do not match, expected [{self.sha256}] but got [{actual}]"
                )


__all__ = ["FileSource", "directory_sha256", "model_files"]
