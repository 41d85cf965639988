"""A hostile model repository (issue 24, row 10), over real HTTP: a declared size the disk cannot hold,
partial files piling up, a body that dribbles, and redirects to another host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elserve.models import ModelCache, ModelDownloadError, ModelSpec
from elserve.models.sources.elastic import ElasticRepositorySource, elastic_source
from elserve.models.sources.transfer import TransferPolicy
from tests.models.repository_server import Behaviour, serve_directory, write_package

MIB = 1 << 20


def _policy(**changes: float) -> TransferPolicy:
    return TransferPolicy(backoff_s=0.0, **changes)


def _cache(root: Path, policy: TransferPolicy) -> ModelCache:
    def open_source(source: str, sha256: str | None) -> ElasticRepositorySource:
        return ElasticRepositorySource.parse(source.removeprefix("elastic:"), sha256, policy)

    return ModelCache(root, open_source=open_source)


def test_a_declared_size_over_the_free_space_is_refused_before_any_byte(tmp_path: Path) -> None:
    model = os.urandom(MIB)
    write_package(tmp_path / "repo", "huge", model, size=10**15)  # a petabyte, as the metadata says
    with serve_directory(tmp_path / "repo") as (url, behaviour):
        cache = _cache(tmp_path / "cache", _policy())
        with pytest.raises(
            ModelDownloadError, match=r"not enough free disk space .* it is \[1000000000000000\] bytes"
        ) as refused:
            cache.install(ModelSpec("huge", elastic_source(url, "huge"), None))
    assert refused.value.status == 507
    assert [name for _, name, _ in behaviour.requests if name.endswith(".pt")] == []  # not a byte asked for
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_a_model_keeps_one_partial_file_whatever_checksums_the_repository_names(tmp_path: Path) -> None:
    """A repository that changes its checksum on every attempt (each download then breaks off) leaves one
    partial file for the model, not one per checksum."""
    cache = _cache(tmp_path / "cache", _policy(retries=0))
    write_package(tmp_path / "repo", "m", b"")
    with serve_directory(tmp_path / "repo", Behaviour(drops={"m.pt": [MIB] * 3})) as (url, _):
        for _ in range(3):
            write_package(tmp_path / "repo", "m", os.urandom(2 * MIB))
            with pytest.raises(ModelDownloadError):
                cache.install(ModelSpec("m", elastic_source(url, "m"), None))
            partials = list((tmp_path / "cache").rglob("*.part"))
            assert len(partials) == 1, partials
            assert partials[0].stat().st_size <= 2 * MIB


def test_a_dribbling_metadata_file_fails_at_its_deadline(tmp_path: Path) -> None:
    write_package(tmp_path / "repo", "m", os.urandom(1024))
    # One byte every 0.2 s: never quiet for a read timeout, and a few minutes to send the whole metadata.
    with serve_directory(tmp_path / "repo", Behaviour(dribbles={"m.metadata.json": 0.2})) as (url, _):
        source = ElasticRepositorySource.parse(f"{url}#m", None, _policy(fetch_deadline_s=2.0))
        started = time.monotonic()
        with pytest.raises(ModelDownloadError, match=r"was not fetched within its deadline of \[2s\]"):
            source.metadata()
        assert time.monotonic() - started < 60  # 2 s asked; the bound only tells a deadline from a hang


def test_a_dribbling_model_file_fails_at_its_deadline_and_keeps_its_prefix(tmp_path: Path) -> None:
    model = os.urandom(64 * 1024)
    write_package(tmp_path / "repo", "m", model)
    with serve_directory(tmp_path / "repo", Behaviour(dribbles={"m.pt": 0.01})) as (url, _):
        # 2 s plus 64 KiB at 1 MiB/s: well before the dribble's 10 minutes.
        cache = _cache(tmp_path / "cache", _policy(fetch_deadline_s=2.0, min_rate_bytes_s=float(MIB)))
        started = time.monotonic()
        with pytest.raises(ModelDownloadError, match="was not fetched within its deadline"):
            cache.install(ModelSpec("m", elastic_source(url, "m"), None))
        assert time.monotonic() - started < 60
    [partial] = list((tmp_path / "cache").rglob("*.part"))  # kept, to resume; a prefix, never trusted
    assert 0 < partial.stat().st_size < len(model)


def test_a_redirect_to_another_host_is_not_followed(tmp_path: Path) -> None:
    """The `elserve models import` process: the repository redirects the metadata to another server (in the
    issue, elserve's own `/_security/user`); nothing is asked of that server, and the import says why."""
    write_package(tmp_path / "repo", "m", os.urandom(1024))
    (tmp_path / "elsewhere").mkdir()
    with serve_directory(tmp_path / "elsewhere") as (elsewhere, other):
        target = elsewhere + "_security/user"
        with serve_directory(tmp_path / "repo", Behaviour(redirects={"m.metadata.json": target})) as (url, _):
            done = subprocess.run(
                [
                    str(Path(sys.executable).with_name("elserve")),
                    "models",
                    "import",
                    "elastic:m",
                    "--model-id",
                    "m",
                    "--data-dir",
                    str(tmp_path / "data"),
                    "--model-repository",
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=540,
                check=False,
            )
    assert done.returncode == 1
    assert f"redirects to [{target}], another host" in done.stderr
    assert other.requests == []


def test_a_redirect_on_the_same_host_is_followed(tmp_path: Path) -> None:
    model = os.urandom(1024)
    write_package(tmp_path / "repo", "m", model)
    (tmp_path / "repo" / "moved.pt").write_bytes(model)
    with serve_directory(tmp_path / "repo") as (url, behaviour):
        behaviour.redirects["m.pt"] = url + "moved.pt"
        path = _cache(tmp_path / "cache", _policy()).install(ModelSpec("m", elastic_source(url, "m"), None))
    assert (path / "model.pt").read_bytes() == model
