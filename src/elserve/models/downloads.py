"""Background model downloads: one per source, shared by every caller, with visible state.

Progress (bytes, rate, ETA) is in `DownloadState`; a `rich` bar on stderr shows it too when
stderr is a terminal (the CLI's import and download).

The HTTP server calls `await downloads.ensure(model_id)` (creating an
endpoint, starting a deployment) or `downloads.start(model_id)` (fire and
forget, as `PUT _ml/trained_models/{id}` does) and reads
`downloads.state(model_id)` for the trained-model stats. A download runs in
its own thread (pip and file copies block); callers that come while it runs
wait for the same one. A failed download stays visible as `failed` with its
reason until a later `ensure` or `start` tries again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elserve.models.cache import ModelCache, model_size_bytes
from elserve.models.catalogue import Catalogue, ModelSpec, UnknownModelError
from elserve.models.sources import ModelDownloadError

logger = logging.getLogger("elserve.models")

_LOG_EVERY_PERCENT = 25


class DownloadStatus(enum.StrEnum):
    ABSENT = "absent"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    FAILED = "failed"


@dataclass(frozen=True)
class DownloadState:
    """What `GET /_ml/trained_models/{id}/_stats` can show about a model's files.

    `done_bytes`/`total_bytes` count the transfer while downloading (pip: the
    wheel); for a model found already installed they are its installed size.
    `rate_bytes_per_s` and `eta_s` are measured over this download (None until
    it has moved). Times are epoch milliseconds, as Elasticsearch prints them.
    `source` is where the files come from: the catalogue's source, or its
    fallback's once that is the one being installed or installed.
    """

    model_id: str
    status: DownloadStatus
    done_bytes: int = 0
    total_bytes: int | None = None
    error: str | None = None
    started_at: int | None = None
    finished_at: int | None = None
    path: Path | None = None
    rate_bytes_per_s: float | None = None
    eta_s: float | None = None
    source: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Job:
    """One download of one source; its fields change only under `lock`."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.lock = threading.Lock()
        self.status = DownloadStatus.DOWNLOADING
        self.done_bytes = 0
        self.total_bytes: int | None = None
        self.error: str | None = None
        self.started_at = _now_ms()
        self.finished_at: int | None = None
        self.path: Path | None = None
        self.future: concurrent.futures.Future[Path] = concurrent.futures.Future()
        # Running from the start: an awaiting caller that times out or is
        # cancelled must not cancel the download the others share.
        self.future.set_running_or_notify_cancel()
        self._logged_percent = -1
        self._first: tuple[float, int] | None = None  # (monotonic time, bytes) of the first report
        self.rate: float | None = None

    def snapshot(self, model_id: str, source: str | None = None) -> DownloadState:
        with self.lock:
            eta = None
            if self.status is DownloadStatus.DOWNLOADING and self.rate and self.total_bytes:
                eta = max(self.total_bytes - self.done_bytes, 0) / self.rate
            return DownloadState(
                model_id=model_id,
                status=self.status,
                done_bytes=self.done_bytes,
                total_bytes=self.total_bytes,
                error=self.error,
                started_at=self.started_at,
                finished_at=self.finished_at,
                path=self.path,
                rate_bytes_per_s=self.rate,
                eta_s=eta,
                source=source,
            )

    def on_progress(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        with self.lock:
            if self._first is None or done < self.done_bytes:
                self._first = (now, done)  # the first report, or a new file (the fallback) starting over
            elif now > self._first[0] and done > self._first[1]:
                # Over the bytes moved by this download: a resumed prefix does not count as speed.
                self.rate = (done - self._first[1]) / (now - self._first[0])
            self.done_bytes, self.total_bytes = done, total
        if total:
            percent = done * 100 // total
            step = percent - percent % _LOG_EVERY_PERCENT
            if step > self._logged_percent:
                self._logged_percent = step
                logger.info("[%s] downloaded %d of %d bytes (%d%%)", self.spec.model_id, done, total, percent)


class _ProgressBar:
    """One `rich` display for every running download (rich allows one live display)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: Any = None
        self._active = 0

    def add(self, description: str) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                )
                self._progress.start()
            self._active += 1
            return self._progress.add_task(description, total=None)

    def update(self, task: Any, done: int, total: int | None) -> None:
        progress = self._progress
        if progress is not None:
            progress.update(task, completed=done, total=total)

    def remove(self, task: Any) -> None:
        with self._lock:
            if self._progress is None:
                return
            self._progress.remove_task(task)
            self._active -= 1
            if self._active == 0:
                self._progress.stop()
                self._progress = None


class ModelDownloads:
    def __init__(
        self,
        cache: ModelCache,
        catalogue: Catalogue | None = None,
        *,
        progress_bar: bool | None = None,
    ) -> None:
        """`progress_bar`: draw a `rich` bar on stderr; by default only when stderr is a terminal."""
        self.cache = cache
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self._jobs: dict[str, _Job] = {}  # by cache key: ids sharing a source share a job
        self._lock = threading.Lock()
        if progress_bar is None:
            progress_bar = sys.stderr is not None and sys.stderr.isatty()
        self._bar = _ProgressBar() if progress_bar else None

    async def ensure(self, model_id: str) -> Path:
        """The installed model's directory, downloading it first if needed.

        Raises `UnknownModelError` (404) for an id not in the catalogue and
        `ModelDownloadError` if the download fails. Cancelling the await does
        not stop the download.
        """
        started = self._start(model_id)
        if isinstance(started, Path):
            return started
        return await asyncio.wrap_future(started.future)

    def start(self, model_id: str) -> DownloadState:
        """Begin the download if the model is neither installed nor downloading; do not wait."""
        self._start(model_id)
        return self.state(model_id)

    def state(self, model_id: str) -> DownloadState:
        spec = self.catalogue.get(model_id)
        job = self._jobs.get(spec.cache_key)
        source = self.spec(model_id).source
        if job is not None and job.status is DownloadStatus.DOWNLOADING:
            return job.snapshot(model_id, source)
        path = self.cache.path_for(spec)
        if path is not None:
            if job is not None and job.status is DownloadStatus.DOWNLOADED:
                return job.snapshot(model_id, source)
            size = model_size_bytes(path)
            return DownloadState(model_id, DownloadStatus.DOWNLOADED, size, size, path=path, source=source)
        if job is not None and job.status is DownloadStatus.FAILED:
            return job.snapshot(model_id, source)
        return DownloadState(model_id, DownloadStatus.ABSENT, source=source)

    def report(self, model_id: str) -> dict[str, Any] | None:
        """The download as `_stats` shows it (elserve's `download` object), while one runs or after one
        failed; None otherwise (installed, never asked for, or not a catalogue model)."""
        try:
            state = self.state(model_id)
        except UnknownModelError:
            return None
        if state.status not in (DownloadStatus.DOWNLOADING, DownloadStatus.FAILED):
            return None
        report: dict[str, Any] = {"state": state.status.value, "source": state.source}
        report["downloaded_bytes"] = state.done_bytes
        if state.total_bytes is not None:
            report["total_bytes"] = state.total_bytes
        if state.rate_bytes_per_s is not None:
            report["bytes_per_second"] = round(state.rate_bytes_per_s)
        if state.eta_s is not None:
            report["remaining_time_in_millis"] = round(state.eta_s * 1000)
        if state.started_at is not None:
            report["start_time"] = state.started_at
        if state.error is not None:
            report["reason"] = state.error
        return report

    def spec(self, model_id: str) -> ModelSpec:
        """The catalogue's spec as served: its fallback (whose description says why) when that is the one
        installed, or being installed because the spec's own source could not be reached."""
        spec = self.catalogue.get(model_id)
        installed = self.cache.installed_spec(spec)
        if installed is not None:
            return installed
        if spec.fallback is not None and self.cache.unavailable_reason(spec) is not None:
            return spec.fallback
        return spec

    def _start(self, model_id: str) -> Path | _Job:
        spec = self.catalogue.get(model_id)
        with self._lock:
            job = self._jobs.get(spec.cache_key)
            if job is not None and job.status is DownloadStatus.DOWNLOADING:
                return job
            path = self.cache.path_for(spec)
            if path is not None:
                return path
            job = _Job(spec)
            self._jobs[spec.cache_key] = job
        thread = threading.Thread(target=self._run, args=(job,), name=f"download {model_id}", daemon=True)
        thread.start()
        return job

    def _run(self, job: _Job) -> None:
        spec = job.spec
        logger.info("[%s] starting model download from [%s]", spec.model_id, spec.source)
        bar_task = self._bar.add(spec.model_id) if self._bar is not None else None

        def progress(done: int, total: int | None) -> None:
            job.on_progress(done, total)
            if self._bar is not None:
                self._bar.update(bar_task, done, total)

        try:
            path = self.cache.install(spec, progress)
        except Exception as e:
            error = e if isinstance(e, ModelDownloadError) else _as_download_error(e)
            with job.lock:
                job.status, job.error, job.finished_at = DownloadStatus.FAILED, error.reason, _now_ms()
            logger.error("[%s] Model importing failed due to [%s]", spec.model_id, error.reason)
            job.future.set_exception(error)
        else:
            with job.lock:
                job.status, job.path, job.finished_at = DownloadStatus.DOWNLOADED, path, _now_ms()
                if job.total_bytes is None:  # another installer (the same fallback) did the transfer
                    job.done_bytes = job.total_bytes = model_size_bytes(path)
            seconds = (job.finished_at - job.started_at) / 1000
            logger.info("[%s] finished model download after [%.1f] seconds: [%s]", spec.model_id, seconds, path)
            job.future.set_result(path)
        finally:
            if self._bar is not None:
                self._bar.remove(bar_task)


def _as_download_error(e: Exception) -> ModelDownloadError:
    # Elasticsearch answers an IOException during import with 503, anything else with 500
    # (TransportLoadTrainedModelPackage.java).
    status = 503 if isinstance(e, OSError) else 500
    error = ModelDownloadError(f"an {type(e).__name__} [{e}]", status=status)
    error.__cause__ = e
    return error
