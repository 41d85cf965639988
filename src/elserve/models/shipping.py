"""A model's files carried from one machine's cache to another's, for a source only the first can
read (`sources.readable_elsewhere`): the Ray backend puts `pack`'s buffers in its object store, and
each node's replica hands them to `install_packed`.

The receiving side installs them through the cache's own atomic install, as a `file:` source of a
scratch directory under its cache root, under the sender's cache key (the same directory name on
every node) and checked against a directory digest (`sources.file.directory_sha256`): the spec's
own when it is one, else the digest the sender computed from its copy (`packed_sha256`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from elserve.models.cache import SHIPPED, ModelCache
from elserve.models.catalogue import ModelSpec
from elserve.models.sources import MODEL_FILES, ModelDownloadError
from elserve.models.sources.file import directory_sha256, is_archive, model_files

# name -> the file's bytes. uint8 arrays rather than bytes: Ray's object store hands arrays back as
# views of its shared memory, so a replica writes a large model to disk without a copy in its heap.
PackedFiles = Mapping[str, np.ndarray]


def pack(directory: Path) -> dict[str, np.ndarray]:
    """The model files present in an installed directory (`sources.MODEL_FILES`), by name."""
    return {path.name: np.fromfile(path, dtype=np.uint8) for path in model_files(directory)}


def packed_sha256(spec: ModelSpec, directory: Path) -> str:
    """The directory digest a receiver checks the packed files against: the spec's sha256 when it is
    a directory digest (a `file:` directory with a checksum given at import), so a corrupted local copy
    is refused elsewhere too; else the digest of the sender's copy (an upload's or archive's sha256
    covers other bytes: the assembled definition, the archive)."""
    scheme, _, rest = spec.source.partition(":")
    if scheme == "file" and spec.sha256 is not None and not is_archive(Path(rest)):
        return spec.sha256
    return directory_sha256(directory)


def install_packed(cache: ModelCache, spec: ModelSpec, files: PackedFiles, sha256: str) -> Path:
    """Install packed files as `spec` (under its cache key) unless that key is installed; return the directory.

    Raises `ModelDownloadError` when the files are not a model or their digest is not `sha256`
    (then nothing is installed). Concurrent installers of one key wait on the cache's lock; the
    later ones find it installed.
    """
    installed = cache.path_for(spec)
    if installed is not None:
        return installed
    unknown = sorted(set(files) - set(MODEL_FILES))
    if unknown:  # names from another process never name a path outside the scratch directory
        raise ModelDownloadError(f"the shipped files of model [{spec.model_id}] hold unknown files {unknown}")
    scratch = cache.root / SHIPPED / uuid.uuid4().hex
    scratch.mkdir(parents=True)
    try:
        for name, data in files.items():
            with (scratch / name).open("wb") as out:
                out.write(np.ascontiguousarray(data, dtype=np.uint8).data)
        local = ModelSpec(spec.model_id, f"file:{scratch}", sha256, key=spec.cache_key)
        try:
            return cache.install(local)
        except ModelDownloadError as exc:
            raise ModelDownloadError(
                f"the files of model [{spec.model_id}] shipped from the server (source [{spec.source}]) "
                f"could not be installed in [{cache.root}]: {exc.reason}"
            ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["PackedFiles", "install_packed", "pack", "packed_sha256"]
