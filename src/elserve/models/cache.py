"""The on-disk model cache: one directory per source, installed atomically.

Layout under `root`:

    <cache_key>/                 an installed model (its files plus MARKER)
    .partial/<cache_key>/        an install in progress: model/ is assembled here
    .resume/<cache_key>/         the source's scratch: kept after a failure, so that a later
                                 attempt resumes a large download (a prefix, never trusted)
    .locks/<cache_key>.lock      held (flock) by whoever installs that key
    .shipped/<random>/           files another machine sent (`models.shipping`), being installed
                                 from here as a `file:` source; removed after, or when stale

The key is the source's sha256 (`ModelSpec.cache_key`), or for `hf:`/`elastic:`
sources the digest of the source string, so two ids with one source share one
copy and it is fetched once. The model is assembled in `.partial/<key>/model`,
then renamed to `<key>`: the rename is the commit point, so a failure or
`kill -9` never leaves a directory that looks installed. The per-key lock
makes concurrent installers (threads or other processes on the same cache:
the CLI importing while a server downloads) wait for one another instead of
both fetching, and tells a stale `.partial` (its installer died, the lock is
free) from a live one.

A spec with a `fallback` (the built-in ELSER ids) installs the fallback when
its own source cannot be reached (`SourceUnavailable`), once per process and
source: later installs in the same process go straight to the fallback.
Whichever of the two is installed is the one served.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from elserve.models.catalogue import ModelSpec
from elserve.models.sources import (
    ModelDownloadError,
    ProgressCallback,
    Source,
    SourceUnavailable,
    missing_required,
    open_source,
)

logger = logging.getLogger("elserve.models")

MARKER = "elserve-model.json"
_PARTIAL = ".partial"
_RESUME = ".resume"
_LOCKS = ".locks"
SHIPPED = ".shipped"
# A shipped scratch directory untouched this long was left by an installer that died (kill -9).
SHIPPED_STALE_HOURS = 6.0
# A download prefix untouched this long is dropped (a model given up on should not hold the disk forever).
RESUME_DAYS = 7.0

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


def _newest_mtime(directory: Path) -> float:
    return max((p.stat().st_mtime for p in directory.rglob("*") if p.is_file()), default=directory.stat().st_mtime)


def _keep_only_resumable(scratch: Path) -> None:
    """After a failure: keep what a later attempt can resume (`resume/`), drop the rest of the scratch."""
    if not scratch.is_dir():
        return
    for entry in scratch.iterdir():
        if entry.name != "resume":
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        scratch.rmdir()  # only if empty


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
        self._unavailable: dict[str, str] = {}  # source -> why it could not be reached (this process)
        self._unavailable_lock = threading.Lock()
        try:
            (self.root / _PARTIAL).mkdir(parents=True, exist_ok=True)
            (self.root / _LOCKS).mkdir(parents=True, exist_ok=True)
            self.clean_stale()
        except OSError:
            pass  # a read-only data directory: installed models still load; an install fails and says why

    def _installed(self, key: str) -> Path | None:
        path = self.root / key
        return path if (path / MARKER).is_file() else None

    def path_for(self, spec: ModelSpec) -> Path | None:
        """The installed model directory (the spec's own, else its fallback's), or None if neither is installed."""
        installed = self.installed_spec(spec)
        return None if installed is None else self._installed(installed.cache_key)

    def installed_spec(self, spec: ModelSpec) -> ModelSpec | None:
        """Which of `spec` and its fallback is installed (the spec's own first), or None."""
        if self._installed(spec.cache_key) is not None:
            return spec
        if spec.fallback is not None and self._installed(spec.fallback.cache_key) is not None:
            return spec.fallback
        return None

    def record(self, path: Path) -> dict[str, Any]:
        """What the installer wrote down about an installed model (source, checksums, revision, time)."""
        try:
            record = json.loads((path / MARKER).read_text())
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def unavailable_reason(self, spec: ModelSpec) -> str | None:
        """Why the spec's own source could not be reached in this process, if it could not."""
        with self._unavailable_lock:
            return self._unavailable.get(spec.source)

    def install(self, spec: ModelSpec, progress: ProgressCallback = _ignore_progress) -> Path:
        """Fetch the model if it is not installed yet; return its directory.

        Raises `ModelDownloadError`; then nothing is installed and no partial
        directory is left behind.
        """
        installed = self.path_for(spec)
        if installed is not None:
            return installed
        fallback = spec.fallback
        if fallback is None:
            return self._install(spec, progress)
        reason = self.unavailable_reason(spec)
        if reason is None:
            try:
                return self._install(spec, progress)
            except SourceUnavailable as exc:
                reason = exc.reason
                with self._unavailable_lock:
                    self._unavailable[spec.source] = reason
                served_by = fallback.metadata.get("elserve", {}).get("served_by", fallback.source)
                logger.warning(
                    "[%s] its source could not be reached (%s): serving %s from [%s] instead (its description says so)",
                    spec.model_id,
                    reason,
                    served_by,
                    fallback.source,
                )
        else:
            logger.info("[%s] installing the fallback [%s] (%s)", spec.model_id, fallback.source, reason)
        return self._install(fallback, progress)

    def _install(self, spec: ModelSpec, progress: ProgressCallback) -> Path:
        installed = self._installed(spec.cache_key)
        if installed is not None:
            return installed
        key = spec.cache_key
        with self._key_lock(key, blocking=True):
            installed = self._installed(key)  # another installer may have finished while we waited
            if installed is not None:
                return installed
            partial = self.root / _PARTIAL / key
            shutil.rmtree(partial, ignore_errors=True)  # left by a dead installer: we hold the lock
            model = partial / "model"
            model.mkdir(parents=True)
            scratch = self.root / _RESUME / key
            scratch.mkdir(parents=True, exist_ok=True)
            try:
                fetched = self._open_source(spec.source, spec.sha256).fetch(model, scratch, progress)
                missing = missing_required({p.name for p in model.iterdir()})
                if missing:
                    raise ModelDownloadError(f"the source [{spec.source}] did not give the model files {missing}")
                record = {
                    "installed_for": spec.model_id,
                    "source": spec.source,
                    "sha256": spec.sha256,
                    "installed_at": int(time.time() * 1000),
                    "files": sorted(p.name for p in model.iterdir()),
                    **({"fetched": dict(fetched)} if fetched else {}),
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
                shutil.rmtree(scratch, ignore_errors=True)
            except BaseException:
                _keep_only_resumable(scratch)
                raise
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        logger.info("installed model [%s] from [%s] in [%s]", spec.model_id, spec.source, final)
        return final

    def installed(self) -> list[tuple[Path, dict[str, Any]]]:
        """Every installed model directory and its record, by name."""
        found = []
        for path in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if not path.name.startswith(".") and (path / MARKER).is_file():
                found.append((path, self.record(path)))
        return found

    def remove(self, key: str) -> bool:
        """Delete an installed model directory (the marker first, so it never looks installed half-deleted)."""
        if not key or key.startswith(".") or "/" in key:
            return False
        with self._key_lock(key, blocking=True):
            path = self.root / key
            if not path.is_dir():
                return False
            (path / MARKER).unlink(missing_ok=True)
            _fsync_dir(path)
            shutil.rmtree(path)
            shutil.rmtree(self.root / _RESUME / key, ignore_errors=True)
        logger.info("removed model files [%s] from [%s]", key, self.root)
        return True

    def clean_stale(self, resume_days: float = RESUME_DAYS) -> list[Path]:
        """Remove partial installs whose installer is gone (its lock is free), download prefixes kept
        to resume that are of no more use (their model is installed) or older than `resume_days`, and
        shipped files left by a dead installer (untouched for `SHIPPED_STALE_HOURS`); return them."""
        removed = []
        for partial in sorted((self.root / _PARTIAL).iterdir()):
            with self._key_lock(partial.name, blocking=False) as acquired:
                if acquired:
                    shutil.rmtree(partial, ignore_errors=True)
                    removed.append(partial)
        resume = self.root / _RESUME
        oldest = time.time() - resume_days * 86400
        for scratch in sorted(resume.iterdir()) if resume.is_dir() else []:
            with self._key_lock(scratch.name, blocking=False) as acquired:
                if acquired and (self._installed(scratch.name) is not None or _newest_mtime(scratch) < oldest):
                    shutil.rmtree(scratch, ignore_errors=True)
                    removed.append(scratch)
        shipped = self.root / SHIPPED
        stale = time.time() - SHIPPED_STALE_HOURS * 3600
        for scratch in sorted(shipped.iterdir()) if shipped.is_dir() else []:
            if _newest_mtime(scratch) < stale:
                shutil.rmtree(scratch, ignore_errors=True)
                removed.append(scratch)
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
