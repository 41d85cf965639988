"""The `hf:` source against a local hub mirror: revision pinned to a commit, checksums checked,
HF_ENDPOINT and HF_HUB_OFFLINE honoured, only the model's files fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from elserve.models import ModelCache, ModelDownloadError, ModelSpec
from elserve.models.cache import MARKER
from elserve.models.sources import SourceUnavailable
from elserve.models.sources.hf import HfSource
from tests.models.hub_mirror import HubRepo, hub_mirror
from tests.support.model_factory import build_bert_dir

REPO = "tiny-org/tiny-splade"


@pytest.fixture
def hub_repo(tmp_path: Path) -> HubRepo:
    directory = build_bert_dir(tmp_path / "hub-files" / "tiny-splade")
    (directory / "README.md").write_text("# a model card\n")  # not a model file: not fetched
    (directory / "pytorch_model.bin").write_bytes(b"pickled weights: never fetched")
    return HubRepo(REPO, directory)


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return cache


def test_snapshot_from_a_mirror(
    tmp_path: Path, hub_repo: HubRepo, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hub_mirror([hub_repo]) as (endpoint, served):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        cache = ModelCache(tmp_path / "cache")
        seen: list[tuple[int, int | None]] = []
        path = cache.install(ModelSpec("my-splade", f"hf:{REPO}", None), lambda d, t: seen.append((d, t)))
    files = sorted(p.name for p in path.iterdir() if p.name != MARKER)
    assert files == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    for name in files:
        assert (path / name).read_bytes() == (hub_repo.directory / name).read_bytes()
    assert cache.record(path)["fetched"] == {"revision": hub_repo.commit, "repo_id": REPO}
    assert f"GET /api/models/{REPO}/revision/main" in served
    assert not any("README.md" in r or "pytorch_model.bin" in r for r in served)
    assert seen and seen[-1][0] >= (hub_repo.directory / "model.safetensors").stat().st_size


def test_offline_serves_the_hub_cache_and_a_pinned_revision(
    tmp_path: Path, hub_repo: HubRepo, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hub_mirror([hub_repo]) as (endpoint, _):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        ModelCache(tmp_path / "first").install(ModelSpec("m", f"hf:{REPO}@{hub_repo.commit}", None))
    # the mirror is gone; offline, the hub cache answers (an air-gapped machine with a copied HF cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = ModelCache(tmp_path / "second").install(ModelSpec("m", f"hf:{REPO}@{hub_repo.commit}", None))
    assert (path / "model.safetensors").read_bytes() == (hub_repo.directory / "model.safetensors").read_bytes()
    # offline and not in the hub cache: unavailable, nothing installed
    with pytest.raises(SourceUnavailable, match="could not be fetched"):
        ModelCache(tmp_path / "third").install(ModelSpec("m", "hf:tiny-org/absent", None))


def test_a_corrupt_file_is_refused(
    tmp_path: Path, hub_repo: HubRepo, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hub_mirror([hub_repo], corrupt={"tokenizer.json"}) as (endpoint, _):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        cache = ModelCache(tmp_path / "cache")
        spec = ModelSpec("m", f"hf:{REPO}", None)
        with pytest.raises(ModelDownloadError, match=r"\[tokenizer.json\] checksums do not match"):
            cache.install(spec)
        assert cache.path_for(spec) is None


def test_unknown_repository_and_bad_source_strings(
    tmp_path: Path, hub_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hub_mirror([]) as (endpoint, _):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        with pytest.raises(SourceUnavailable, match=r"could not be fetched.*404"):
            ModelCache(tmp_path / "cache").install(ModelSpec("m", "hf:nobody/nothing", None))
    for bad in ("", "a/b/c", "a/b@", "../x"):
        with pytest.raises(ModelDownloadError, match="must be"):
            HfSource.parse(bad, None)
    assert HfSource.parse("naver/splade-v3@abc", None) == HfSource("naver/splade-v3", "abc")
