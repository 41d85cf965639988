"""Uploads on a small real disk (a tmpfs: skipped, with the reason, where this machine cannot mount
one): a full disk refuses uploads with Elasticsearch's flood-stage block, a DELETE still goes
through, a full disk at start is said as such; a read-only data directory answers 503 without a path."""

from __future__ import annotations

import base64
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import PASSWORD, Server
from tests.support.tmpfs import small_tmpfs

CONFIG = {
    "model_type": "pytorch",
    "inference_config": {"text_expansion": {"tokenization": {"bert": {"do_lower_case": True}}}},
}
BLOCK = (
    429,
    "cluster_block_exception",
    "index [.ml-inference-native-000002] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded "
    "flood-stage watermark, index has read-only-allow-delete block];",
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "48m") as mount:
        yield mount


def _fill(disk: Path, name: str) -> None:
    """Write until the disk is full."""
    block = b"\0" * (1 << 20)
    with open(disk / name, "ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(block[:size])
            except OSError as e:
                assert e.errno == errno.ENOSPC
    assert os.statvfs(disk).f_bavail == 0


def _error(r: httpx.Response) -> tuple[int, str, str]:
    return r.status_code, r.json()["error"]["type"], r.json()["error"]["reason"]


def _part(http: httpx.Client, model_id: str, data: bytes, total: int) -> httpx.Response:
    body = {"definition": base64.b64encode(data).decode(), "total_definition_length": total, "total_parts": 2}
    return http.put(f"/_ml/trained_models/{model_id}/definition/0", json=body)


@pytest.mark.slow  # four starts on a tmpfs
def test_a_full_disk_blocks_uploads_deletes_still_work_and_a_restart_says_it_is_full(small_disk: Path) -> None:
    data_dir = small_disk  # the server log (beside the data directory) stays off the small disk
    # The watermark keeps nothing free: the disk really fills (the default keeps 5%).
    args = ["--disk-flood-stage", "0b"]
    server = Server(data_dir, args=args).start()
    with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
        for model_id in ("kept", "deleted"):
            assert http.put(f"/_ml/trained_models/{model_id}", json=CONFIG).status_code == 200
            assert _part(http, model_id, b"x" * 1000, 2000).status_code == 200
        _fill(small_disk, "filler")
        assert (
            _error(
                http.put(
                    "/_ml/trained_models/kept/definition/1",
                    json={
                        "definition": base64.b64encode(b"y" * 1000).decode(),
                        "total_definition_length": 2000,
                        "total_parts": 2,
                    },
                )
            )
            == BLOCK
        )
        assert _error(http.put("/_ml/trained_models/kept/vocabulary", json={"vocabulary": ["a"]})) == BLOCK
        # Deleting is what frees the disk: it goes through.
        r = http.delete("/_ml/trained_models/deleted")
        assert r.status_code == 200, r.text
        assert http.get("/_ml/trained_models/deleted").status_code == 404
    server.stop()

    _fill(small_disk, "filler-2")
    reserve = data_dir / "elserve.db.reserve"
    if reserve.exists():  # given back at start: the server starts and says the disk is full
        server = Server(data_dir, args=args).start()
        try:
            with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
                assert http.get("/_ml/trained_models/kept").status_code == 200
                assert http.get("/_ml/trained_models/deleted").status_code == 404
        finally:
            server.stop()
        assert "is full: elserve gave back its reserve to start" in server.log()
        _fill(small_disk, "filler-3")
        assert not reserve.exists()
    # No reserve left to give: the start is refused, saying why.
    server = Server(data_dir, args=args)
    with pytest.raises(RuntimeError, match="exited with 75"):
        server.start()
    assert "the disk holding the data directory" in server.log() and "is full" in server.log()
    assert "malformed" not in server.log()
    # Room again: the store is intact.
    (small_disk / "filler").unlink()
    server = Server(data_dir, args=args).start()
    try:
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
            assert http.get("/_ml/trained_models/kept").status_code == 200
    finally:
        server.stop()


def test_a_read_only_data_dir_answers_503_without_a_path(tmp_path: Path) -> None:
    """The uploads' directory made read-only under a running server (a read-only bind mount over it)."""
    data_dir = tmp_path / "data"
    staging = data_dir / "model-uploads"
    staging.mkdir(parents=True)
    server = Server(data_dir).start()
    bound = subprocess.run(["mount", "--bind", str(staging), str(staging)], capture_output=True, text=True)
    if bound.returncode != 0:
        server.stop()
        pytest.skip(f"a bind mount cannot be made here: {bound.stderr.strip() or bound.returncode}")
    try:
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
            assert http.put("/_ml/trained_models/staged", json=CONFIG).status_code == 200
            assert _part(http, "staged", b"x" * 10, 20).status_code == 200
            subprocess.run(["mount", "-o", "remount,bind,ro", str(staging)], check=True)
            assert http.put("/_ml/trained_models/frozen", json=CONFIG).status_code == 200
            # Its staged part cannot be removed now (it goes at the next start): the model is deleted all the same.
            assert http.delete("/_ml/trained_models/staged").status_code == 200
            assert http.get("/_ml/trained_models/staged").status_code == 404
            for r in (
                _part(http, "frozen", b"x" * 10, 20),
                http.put("/_ml/trained_models/frozen/vocabulary", json={"vocabulary": ["a"]}),
            ):
                status, kind, reason = _error(r)
                assert (status, kind) == (503, "status_exception"), r.text
                assert reason == "the uploaded model's files could not be written: Read-only file system"
                assert str(tmp_path) not in r.text
    finally:
        subprocess.run(["umount", "-l", str(staging)], check=False)
        server.stop()
