"""Elastic's model repository layout: from a `file://` directory and from a loopback HTTP server, resumed after a
dropped connection and after a killed installer; corrupt, truncated and misnamed packages refused, never installed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from elserve.models import ModelCache, ModelDownloadError, ModelSpec
from elserve.models.cache import MARKER
from elserve.models.sources.elastic import (
    ElasticRepositorySource,
    elastic_source,
    normalize_repository,
    packaged_model_id,
    resolve_package_location,
)
from elserve.models.sources.transfer import TransferPolicy
from tests.models.repository_server import VOCABULARY, Behaviour, serve_directory, write_package

ELASTIC_FILES = ["model.pt", "trained_model_config.json", "vocab.json"]
MIB = 1 << 20


def _installed_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != MARKER)


def _nothing_installed(root: Path) -> bool:
    return not any((p / MARKER).exists() for p in root.iterdir() if not p.name.startswith("."))


def test_file_repository(tmp_path: Path) -> None:
    model = os.urandom(3 * MIB + 17)
    metadata = write_package(tmp_path / "repo", "my_model", model)
    spec = ModelSpec("my-model", elastic_source((tmp_path / "repo").as_uri(), "my_model"), None)
    assert spec.source == f"elastic:file://{tmp_path}/repo/#my_model"
    seen: list[tuple[int, int | None]] = []
    cache = ModelCache(tmp_path / "cache")
    path = cache.install(spec, lambda done, total: seen.append((done, total)))
    assert _installed_files(path) == ELASTIC_FILES
    assert (path / "model.pt").read_bytes() == model
    assert json.loads((path / "vocab.json").read_text())["vocabulary"] == VOCABULARY
    assert json.loads((path / "trained_model_config.json").read_text()) == metadata
    assert seen[-1] == (len(model), len(model))
    record = cache.record(path)
    assert record["fetched"]["sha256"] == hashlib.sha256(model).hexdigest()
    assert not (tmp_path / "cache" / ".resume" / spec.cache_key).exists()  # nothing left to resume


def test_http_repository_resumes_after_dropped_connections(tmp_path: Path) -> None:
    model = os.urandom(5 * MIB + 3)
    write_package(tmp_path / "repo", "m", model)
    behaviour = Behaviour(drops={"m.pt": [MIB + 100, 2 * MIB]})  # two drops: after 1 MiB + 100, then after 2 MiB more
    with serve_directory(tmp_path / "repo", behaviour) as (url, _):
        spec = ModelSpec("m", elastic_source(url, "m"), None)
        cache = ModelCache(tmp_path / "cache", open_source=_fast_retries)
        path = cache.install(spec)
    assert (path / "model.pt").read_bytes() == model
    ranges = [r for method, name, r in behaviour.requests if name == "m.pt"]
    assert ranges == [None, f"bytes={MIB + 100}-", f"bytes={3 * MIB + 100}-"]


def test_corrupt_checksum_is_refused_and_nothing_kept(tmp_path: Path) -> None:
    model = os.urandom(MIB)
    write_package(tmp_path / "repo", "m", model, sha256="0" * 64)
    cache = ModelCache(tmp_path / "cache")
    spec = ModelSpec("m", elastic_source((tmp_path / "repo").as_uri(), "m"), None)
    with pytest.raises(ModelDownloadError, match=r"Model sha256 checksums do not match, expected \[0{64}\] but got"):
        cache.install(spec)
    assert cache.path_for(spec) is None and _nothing_installed(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.part"))  # a file that failed its check is not kept to resume
    # the repository is repaired: a later install succeeds
    write_package(tmp_path / "repo", "m", model)
    assert (cache.install(spec) / "model.pt").read_bytes() == model


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    model = os.urandom(MIB)
    write_package(tmp_path / "repo", "m", model, size=len(model) + 1000, sha256=hashlib.sha256(model).hexdigest())
    with serve_directory(tmp_path / "repo") as (url, _):
        cache = ModelCache(tmp_path / "cache", open_source=_fast_retries)
        spec = ModelSpec("m", elastic_source(url, "m"), None)
        with pytest.raises(ModelDownloadError, match=rf"Model size does not match, expected \[{len(model) + 1000}\]"):
            cache.install(spec)
    assert cache.path_for(spec) is None and _nothing_installed(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_a_bad_prefix_kept_from_an_earlier_attempt_is_not_trusted(tmp_path: Path) -> None:
    model = os.urandom(2 * MIB)
    write_package(tmp_path / "repo", "m", model)
    spec = ModelSpec("m", elastic_source((tmp_path / "repo").as_uri(), "m"), None)
    part = tmp_path / "cache" / ".resume" / spec.cache_key / "resume" / f"{hashlib.sha256(model).hexdigest()}.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * MIB)  # a prefix that is not the file's
    path = ModelCache(tmp_path / "cache").install(spec)
    assert (path / "model.pt").read_bytes() == model


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"packaged_model_id": "other"}, "Invalid package name"),
        ({"size": 0}, "Invalid package size"),
        ({"sha256": "abc"}, "Invalid package sha"),
        ({"vocabulary_file": "../outside.json"}, r"Illegal path in package location \[../outside.json\]"),
        ({"vocabulary_file": "m.vocab.txt"}, "unknown format vocabulary file format"),
    ],
)
def test_bad_metadata_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    metadata = write_package(tmp_path / "repo", "m", b"weights")
    (tmp_path / "repo" / "m.metadata.json").write_text(json.dumps(metadata | change))
    (tmp_path / "repo" / "m.vocab.txt").write_text("a\n")
    cache = ModelCache(tmp_path / "cache")
    with pytest.raises(ModelDownloadError, match=message):
        cache.install(ModelSpec("m", elastic_source((tmp_path / "repo").as_uri(), "m"), None))
    assert _nothing_installed(tmp_path / "cache")


def test_expected_sha256_must_match_the_package(tmp_path: Path) -> None:
    write_package(tmp_path / "repo", "m", b"weights")
    spec = ModelSpec("m", elastic_source((tmp_path / "repo").as_uri(), "m"), "1" * 64)
    with pytest.raises(ModelDownloadError, match=r"has sha256 \[[0-9a-f]{64}\], expected \[1{64}\]"):
        ModelCache(tmp_path / "cache").install(spec)


def test_source_strings_and_locations() -> None:
    assert packaged_model_id(".elser_model_2") == "elser_model_2"
    assert packaged_model_id("my_model") == "my_model"
    assert normalize_repository("https://ml-models.elastic.co") == "https://ml-models.elastic.co/"
    assert normalize_repository("/srv/models") == "file:///srv/models/"
    source = ElasticRepositorySource.parse("file:///srv/models/#elser_model_2", None)
    assert (source.repository, source.packaged_model_id) == ("file:///srv/models/", "elser_model_2")
    default = ElasticRepositorySource.parse("elser_model_2", None)
    assert default.repository == "https://ml-models.elastic.co/"
    assert resolve_package_location("http://h/base", "x.pt") == "http://h/base/x.pt"
    for bad in ("ftp://h/x", "h/x", "https://user:pw@h/"):
        with pytest.raises(ModelDownloadError):
            normalize_repository(bad)
    with pytest.raises(ModelDownloadError, match="Illegal"):
        resolve_package_location("http://h/base/", "http://other/x.pt")
    with pytest.raises(ModelDownloadError, match="must be"):
        ElasticRepositorySource.parse("http://h/#../x", None)


_INSTALL = """
import sys
from pathlib import Path
from elserve.models import ModelCache, ModelSpec
ModelCache(Path(sys.argv[1])).install(ModelSpec("m", sys.argv[2], None))
"""


def test_kill_9_mid_download_leaves_nothing_trusted_and_the_next_install_resumes(tmp_path: Path) -> None:
    model = os.urandom(4 * MIB)
    write_package(tmp_path / "repo", "m", model)
    stalled = threading.Event()
    behaviour = Behaviour(stalls={"m.pt": (2 * MIB + 5, stalled)})
    root = tmp_path / "cache"
    with serve_directory(tmp_path / "repo", behaviour) as (url, _):
        spec = ModelSpec("m", elastic_source(url, "m"), None)
        part = root / ".resume" / spec.cache_key / "resume" / f"{hashlib.sha256(model).hexdigest()}.pt.part"
        proc = subprocess.Popen([sys.executable, "-c", _INSTALL, str(root), spec.source])
        try:
            # The installer imports elserve (and PyTorch) first: seconds on a loaded machine, many more on a slow one.
            deadline = time.monotonic() + 300  # the bound only guards against a hang
            while not (part.exists() and part.stat().st_size >= 2 * MIB):
                assert proc.poll() is None, "the installer exited early"
                assert time.monotonic() < deadline, "the installer did not start downloading"
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stalled.set()
        kept = part.stat().st_size
        assert 2 * MIB <= kept <= 2 * MIB + 5
        cache = ModelCache(root)  # a restart
        assert cache.path_for(spec) is None and _nothing_installed(root)
        assert not list((root / ".partial").iterdir())
        path = cache.install(spec)
    assert (path / "model.pt").read_bytes() == model
    ranges = [r for method, name, r in behaviour.requests if name == "m.pt"]
    assert ranges == [None, f"bytes={kept}-"]


def _fast_retries(source: str, sha256: str | None) -> ElasticRepositorySource:
    return ElasticRepositorySource.parse(source.removeprefix("elastic:"), sha256, TransferPolicy(backoff_s=0.0))


def test_an_install_in_another_process_is_waited_for_not_repeated(tmp_path: Path) -> None:
    # e.g. `elserve models import` while the server downloads the same model into the same data directory
    model = os.urandom(3 * MIB)
    write_package(tmp_path / "repo", "m", model)
    stalled = threading.Event()
    behaviour = Behaviour(stalls={"m.pt": (MIB, stalled)})
    root = tmp_path / "cache"
    with serve_directory(tmp_path / "repo", behaviour) as (url, _):
        spec = ModelSpec("m", elastic_source(url, "m"), None)
        part = root / ".resume" / spec.cache_key / "resume" / f"{hashlib.sha256(model).hexdigest()}.pt.part"
        proc = subprocess.Popen([sys.executable, "-c", _INSTALL, str(root), spec.source])
        result: list[Path] = []
        waiter = threading.Thread(target=lambda: result.append(ModelCache(root).install(spec)))
        try:
            deadline = time.monotonic() + 300  # as above: a bound against a hang, not a time to meet
            while not (part.exists() and part.stat().st_size >= MIB):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            waiter.start()
            waiter.join(0.5)
            assert waiter.is_alive()  # waiting on the other process's lock, not downloading
        finally:
            stalled.set()
        assert proc.wait(300) == 0
        waiter.join(300)
    assert result and (result[0] / "model.pt").read_bytes() == model
    assert [name for _, name, _ in behaviour.requests].count("m.pt") == 1


@pytest.fixture(scope="module")
def torchscript_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.model_factory import build_torchscript_dir

    return build_torchscript_dir(tmp_path_factory.mktemp("ts") / "splade-ts")


def test_a_torchscript_splade_package_over_http_with_a_drop(tmp_path: Path, torchscript_dir: Path) -> None:
    import torch

    from tests.models.repository_server import package_elastic_dir

    metadata = package_elastic_dir(torchscript_dir, tmp_path / "repo", "splade_ts")
    size = metadata["size"]
    with serve_directory(tmp_path / "repo", Behaviour(drops={"splade_ts.pt": [size // 2]})) as (url, behaviour):
        path = ModelCache(tmp_path / "cache", open_source=_fast_retries).install(
            ModelSpec("splade-ts", elastic_source(url, "splade_ts"), None)
        )
    assert [r for _, name, r in behaviour.requests if name == "splade_ts.pt"] == [None, f"bytes={size // 2}-"]
    assert (path / "model.pt").read_bytes() == (torchscript_dir / "model.pt").read_bytes()
    assert json.loads((path / "vocab.json").read_text()) == json.loads((torchscript_dir / "vocab.json").read_text())
    config = json.loads((path / "trained_model_config.json").read_text())
    assert (
        config["inference_config"]
        == json.loads((torchscript_dir / "trained_model_config.json").read_text())["inference_config"]
    )
    # the installed TorchScript loads and answers as the one built
    window = config["inference_config"]["text_expansion"]["tokenization"]["bert"]["max_sequence_length"]
    inputs = (
        torch.tensor([[2, 10, 11, 3] + [0] * (window - 4)]),
        torch.tensor([[1, 1, 1, 1] + [0] * (window - 4)]),
        torch.zeros(1, window, dtype=torch.long),
        torch.arange(window, dtype=torch.long),
    )
    with torch.no_grad():
        got = torch.jit.load(str(path / "model.pt"))(*inputs)
        want = torch.jit.load(str(torchscript_dir / "model.pt"))(*inputs)
    assert torch.equal(got[0] if isinstance(got, tuple) else got, want[0] if isinstance(want, tuple) else want)


def test_downloads_go_through_the_proxy_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = os.urandom(MIB + 1)
    write_package(tmp_path / "repo", "m", model)
    with serve_directory(tmp_path / "repo") as (proxy, behaviour):
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, proxy)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        # a host that does not resolve: only the proxy can answer for it
        spec = ModelSpec("m", elastic_source("http://models.invalid/", "m"), None)
        path = ModelCache(tmp_path / "cache").install(spec)
    assert (path / "model.pt").read_bytes() == model
    assert ("GET", "m.pt", None) in behaviour.requests
