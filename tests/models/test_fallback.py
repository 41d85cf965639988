"""A built-in id whose preferred source cannot be reached falls back (one log line, said in its description),
once per process; a corrupt preferred source does not fall back; whichever is installed stays served."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from elserve.errors import StatusException
from elserve.models import Catalogue, DownloadStatus, ModelCache, ModelDownloadError, ModelDownloads, ModelSpec
from elserve.models.catalogue import ELSER_V2_MODEL, ELSER_V2_MODEL_LINUX_X86
from elserve.models.sources.elastic import elastic_source
from elserve.models.sources.file import directory_sha256
from tests.models.repository_server import Behaviour, serve_directory, write_package
from tests.support.counting_opener import CountingOpener


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens: connection refused


def _preferred(model_id: str, repository: str, package: str, model_dir: Path) -> ModelSpec:
    fallback = ModelSpec(
        model_id, f"file:{model_dir}", directory_sha256(model_dir), f"{model_id}: the fallback, said so"
    )
    return ModelSpec(model_id, elastic_source(repository, package), None, "the preferred", fallback=fallback)


def test_unreachable_repository_falls_back_once_per_process(
    tmp_path: Path, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repository = closed_port_url()
    a = _preferred("a", repository, "pkg_a", model_dir)
    b = _preferred("b", repository, "pkg_a", model_dir)  # the same package: the same source
    opener = CountingOpener()
    downloads = ModelDownloads(
        ModelCache(tmp_path / "cache", open_source=opener), Catalogue([a, b]), progress_bar=False
    )
    caplog.set_level(logging.INFO, logger="elserve.models")
    path = asyncio.run(downloads.ensure("a"))
    assert (path / "model.safetensors").is_file()
    assert opener.sources == [a.source, a.fallback.source]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"[a] its source could not be reached ([{repository}pkg_a.metadata.json] could not be reached"
    )
    assert "instead" in warnings[0] and a.fallback.source in warnings[0]
    served = downloads.spec("a")
    assert served.description == "a: the fallback, said so"
    state = downloads.state("a")
    assert state.status is DownloadStatus.DOWNLOADED and state.source == a.fallback.source
    # b shares the fallback's copy: installed, nothing fetched, nothing probed again
    assert asyncio.run(downloads.ensure("b")) == path
    assert len(opener.sources) == 2


def test_a_reachable_repository_is_preferred_and_what_is_installed_stays(tmp_path: Path, model_dir: Path) -> None:
    model = os.urandom(1000)
    write_package(tmp_path / "repo", "pkg", model)
    with serve_directory(tmp_path / "repo") as (url, _):
        spec = _preferred(ELSER_V2_MODEL, url, "pkg", model_dir)
        downloads = ModelDownloads(ModelCache(tmp_path / "cache"), Catalogue([spec]), progress_bar=False)
        path = asyncio.run(downloads.ensure(ELSER_V2_MODEL))
        assert (path / "model.pt").read_bytes() == model
        assert downloads.spec(ELSER_V2_MODEL).description == "the preferred"
        state = downloads.state(ELSER_V2_MODEL)
        assert state.source == spec.source and state.rate_bytes_per_s is not None and state.eta_s is None
    # a fallback installed earlier (the repository was down then) stays what this id serves
    other = tmp_path / "other-cache"
    offline = _preferred(ELSER_V2_MODEL, closed_port_url(), "pkg", model_dir)
    fallback_path = ModelCache(other).install(offline)
    with serve_directory(tmp_path / "repo") as (url, behaviour):
        opener = CountingOpener()
        online = _preferred(ELSER_V2_MODEL, url, "pkg", model_dir)
        online = ModelSpec(online.model_id, offline.source, None, fallback=online.fallback)
        assert ModelCache(other, open_source=opener).install(online) == fallback_path
        assert opener.sources == [] and behaviour.requests == []


def test_a_corrupt_preferred_source_fails_without_falling_back(tmp_path: Path, model_dir: Path) -> None:
    write_package(tmp_path / "repo", "pkg", b"weights", sha256="0" * 64)
    spec = _preferred("m", (tmp_path / "repo").as_uri(), "pkg", model_dir)
    downloads = ModelDownloads(ModelCache(tmp_path / "cache"), Catalogue([spec]), progress_bar=False)
    with pytest.raises(ModelDownloadError, match="Model sha256 checksums do not match"):
        asyncio.run(downloads.ensure("m"))
    state = downloads.state("m")
    assert state.status is DownloadStatus.FAILED and "checksums do not match" in (state.error or "")
    assert downloads.cache.path_for(spec) is None


def test_builtin_ids_fall_back_to_splade_tiny_when_the_repository_is_down(shared_cache: ModelCache) -> None:
    # the shared cache holds SPLADE-tiny already: the fallback is found without probing anything
    catalogue = Catalogue(model_repository=closed_port_url())
    downloads = ModelDownloads(ModelCache(shared_cache.root), catalogue, progress_bar=False)
    for model_id in (ELSER_V2_MODEL, ELSER_V2_MODEL_LINUX_X86):
        served = downloads.spec(model_id)
        assert "SPLADE-tiny" in served.description and "could not be reached" in served.description
        assert downloads.state(model_id).status is DownloadStatus.DOWNLOADED


def test_download_state_shows_rate_and_eta_while_running(tmp_path: Path) -> None:
    model = os.urandom(4 << 20)
    write_package(tmp_path / "repo", "pkg", model)
    stalled = threading.Event()
    with serve_directory(tmp_path / "repo", Behaviour(stalls={"pkg.pt": (2 << 20, stalled)})) as (url, _):
        spec = ModelSpec("m", elastic_source(url, "pkg"), None)
        downloads = ModelDownloads(ModelCache(tmp_path / "cache"), Catalogue([spec]), progress_bar=False)
        downloads.start("m")
        try:
            state = downloads.state("m")
            deadline = time.monotonic() + 300  # the bound only guards against a hang
            while state.done_bytes < 2 << 20:  # wait for the first two MiB; the server then stalls
                assert time.monotonic() < deadline and state.status is DownloadStatus.DOWNLOADING, state
                time.sleep(0.02)
                state = downloads.state("m")
            assert state.status is DownloadStatus.DOWNLOADING and state.total_bytes == 4 << 20
            assert state.rate_bytes_per_s is not None and state.rate_bytes_per_s > 0
            assert state.eta_s is not None and state.eta_s > 0
        finally:
            stalled.set()
        path = asyncio.run(downloads.ensure("m"))
    assert (path / "model.pt").read_bytes() == model


def test_rm_of_a_builtin_deletes_its_files_unless_a_sharing_id_is_in_use(tmp_path: Path, model_dir: Path) -> None:
    from elserve.models.importing import remove_model

    repository = closed_port_url()
    a = _preferred("a", repository, "pkg_a", model_dir)
    b = _preferred("b", repository, "pkg_b", model_dir)  # another package, the same fallback
    cache = ModelCache(tmp_path / "cache")
    catalogue = Catalogue([a, b])
    path = cache.install(a)
    in_use: dict[str, list[str]] = {"b": ["b-endpoint"]}
    with pytest.raises(
        StatusException, match=r"Cannot delete model \[a\] as it is currently used by \['b-endpoint'\] \(through \[b\]"
    ):
        remove_model("a", catalogue=catalogue, cache=cache, users=lambda m: in_use.get(m, []))
    assert path.is_dir()
    in_use.clear()
    assert remove_model("a", catalogue=catalogue, cache=cache, users=lambda m: []) == [path]
    assert not path.exists() and cache.path_for(a) is None and cache.path_for(b) is None
    assert catalogue.resolve("a") is a  # a built-in stays in the catalogue; the next use installs again


def test_stale_download_prefixes_are_dropped(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ModelCache(root)
    fresh, old = root / ".resume" / "fresh" / "resume", root / ".resume" / "old" / "resume"
    for directory in (fresh, old):
        directory.mkdir(parents=True)
        (directory / "x.pt.part").write_bytes(b"prefix")
    week_ago = time.time() - 8 * 86400
    os.utime(old / "x.pt.part", (week_ago, week_ago))
    ModelCache(root)  # a restart
    assert (fresh / "x.pt.part").exists() and not old.parent.exists()
