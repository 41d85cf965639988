"""Hostile and unlucky uploads against real servers: a model whose code loops or allocates without end
(checked in a child process under limits, refused with the reason, the server answering meanwhile),
a kill -9 while an upload completes (finished at the next start, nothing left behind), uploads
bounded by their declared length, the store cap and the disk's flood-stage watermark."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from tests.support.model_factory import build_torchscript_dir
from tests.support.server import PASSWORD, Server
from tests.support.waiting import wait_until

CHECK_NAME = "elserve-check"


class _Loops(torch.nn.Module):
    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        x = input_ids.float()
        while bool(x.sum() > -1.0):  # forever: the sum only grows
            x = x + 1.0
        return x


class _Allocates(torch.nn.Module):
    def forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        big = torch.ones(1 << 30, 6)  # 24 GiB
        return big[:1].reshape(1, 1, 6) + input_ids.float().sum()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_torchscript_dir(tmp_path_factory.mktemp("hardening") / "model")


def _script(module: torch.nn.Module, path: Path) -> bytes:
    torch.jit.save(torch.jit.script(module), str(path))
    return path.read_bytes()


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=300)


def _put_config(http: httpx.Client, model_id: str, model_dir: Path) -> None:
    config = json.loads((model_dir / "trained_model_config.json").read_text())
    r = http.put(f"/_ml/trained_models/{model_id}", json=config)
    assert r.status_code == 200, r.text


def _put_part(http: httpx.Client, model_id: str, part: int, data: bytes, total: int, parts: int = 1) -> httpx.Response:
    body = {"definition": base64.b64encode(data).decode(), "total_definition_length": total, "total_parts": parts}
    return http.put(f"/_ml/trained_models/{model_id}/definition/{part}", json=body)


def _put_vocabulary(http: httpx.Client, model_id: str, model_dir: Path) -> httpx.Response:
    return http.put(
        f"/_ml/trained_models/{model_id}/vocabulary", json=json.loads((model_dir / "vocab.json").read_text())
    )


def _fully_defined(http: httpx.Client, model_id: str) -> bool:
    r = http.get(f"/_ml/trained_models/{model_id}", params={"include": "definition_status"})
    assert r.status_code == 200, r.text
    return r.json()["trained_model_configs"][0]["fully_defined"]


def _error(r: httpx.Response) -> tuple[int, str, str]:
    return r.status_code, r.json()["error"]["type"], r.json()["error"]["reason"]


def _in_background(call) -> threading.Thread:
    """Send a request from a thread whose server may be killed meanwhile (then it has no answer)."""

    def run() -> None:
        with contextlib.suppress(httpx.TransportError):
            call()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _checks(server: Server) -> list[int]:
    return [pid for pid in server.worker_pids() if _name(pid) == CHECK_NAME]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _leftovers(data_dir: Path) -> list[str]:
    """Assemblies, trash and staging directories anywhere under the models and uploads directories."""
    found = []
    for root in (data_dir / "models", data_dir / "model-uploads"):
        for path in root.rglob("*") if root.is_dir() else []:
            if path.name.startswith((".assembling-", ".upload-", ".deleted-")):
                found.append(str(path.relative_to(data_dir)))
    return found


@pytest.fixture(scope="module")
def checking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default upload check (time enough for a real check on a loaded machine)."""
    with Server(tmp_path_factory.mktemp("checking") / "data").start() as server:
        yield server


def test_a_forward_that_never_ends_is_refused_and_the_server_answers_meanwhile(model_dir: Path, tmp_path: Path) -> None:
    # The check has 5 s: a model that loops is found out in seconds (whatever the machine, it loops).
    strict_server = Server(tmp_path / "data", args=["--upload-check-timeout", "5s"]).start()
    definition = _script(_Loops(), tmp_path / "loops.pt")
    with _client(strict_server) as http:
        _put_config(http, "loops", model_dir)
        assert _put_part(http, "loops", 0, definition, len(definition)).status_code == 200
        answers: list[httpx.Response] = []
        completing = threading.Thread(target=lambda: answers.append(_put_vocabulary(http, "loops", model_dir)))
        completing.start()
        wait_until(lambda: _checks(strict_server), "check process")
        # While the model's code spins in its child: the server answers, and takes another upload.
        with _client(strict_server) as other:
            assert other.get("/", timeout=60).status_code == 200
            _put_config(other, "meanwhile", model_dir)
            assert other.get("/_ml/trained_models/loops/_stats").json()["trained_model_stats"][0]["upload"] == {
                "state": "checking"
            }
        completing.join(300)
        status, kind, reason = _error(answers[0])
        assert (status, kind) == (400, "status_exception")
        assert reason == (
            "model [loops] cannot be served: loading it and running it on a sample batch did not finish within "
            "[5s] (the upload check's time limit); delete the model and upload it again"
        )
        assert not _fully_defined(http, "loops")
        stats = http.get("/_ml/trained_models/loops/_stats").json()["trained_model_stats"][0]
        assert stats["upload"] == {"state": "failed", "reason": reason}
        assert http.post("/_ml/trained_models/loops/deployment/_start").status_code == 404
        wait_until(lambda: not _checks(strict_server), "end of the check process", 30)
        assert http.delete("/_ml/trained_models/loops").status_code == 200
        assert http.delete("/_ml/trained_models/meanwhile").status_code == 200
    assert _leftovers(strict_server.data_dir) == []
    strict_server.stop()


def test_a_forward_that_allocates_without_end_is_refused_outside_the_server(
    checking_server: Server, model_dir: Path, tmp_path: Path
) -> None:
    server = checking_server
    definition = _script(_Allocates(), tmp_path / "allocates.pt")
    assert server.process is not None
    before = _rss(server.process.pid)
    with _client(server) as http:
        _put_config(http, "allocates", model_dir)
        assert _put_part(http, "allocates", 0, definition, len(definition)).status_code == 200
        status, kind, reason = _error(_put_vocabulary(http, "allocates", model_dir))
        assert (status, kind) == (400, "status_exception")
        assert reason.startswith("model [allocates] cannot be served: it needs more than [")
        assert "of memory (the upload check's limit)" in reason and "can't allocate memory" in reason
        assert not _fully_defined(http, "allocates")
        assert http.delete("/_ml/trained_models/allocates").status_code == 200
    # The server itself never held the model's memory (24 GiB asked; a request's own cost is far below).
    assert _rss(server.process.pid) - before < 512 * 2**20


def test_a_definition_that_is_not_torchscript_is_refused_without_a_server_path(
    checking_server: Server, model_dir: Path
) -> None:
    server = checking_server
    with _client(server) as http:
        _put_config(http, "not-torchscript", model_dir)
        junk = b"not a zip archive at all" * 10
        assert _put_part(http, "not-torchscript", 0, junk, len(junk)).status_code == 200
        r = _put_vocabulary(http, "not-torchscript", model_dir)
        status, kind, reason = _error(r)
        assert (status, kind) == (400, "status_exception")
        assert reason.startswith("model [not-torchscript] cannot be served: [model.pt] is not a TorchScript model")
        assert str(server.data_dir) not in r.text and "/tmp" not in r.text
        assert http.delete("/_ml/trained_models/not-torchscript").status_code == 200


def test_a_delete_while_the_check_runs_ends_it(checking_server: Server, model_dir: Path, tmp_path: Path) -> None:
    definition = _script(_Loops(), tmp_path / "loops.pt")
    with _client(checking_server) as http:
        _put_config(http, "deleted-early", model_dir)
        assert _put_part(http, "deleted-early", 0, definition, len(definition)).status_code == 200
        answers: list[httpx.Response] = []
        completing = threading.Thread(target=lambda: answers.append(_put_vocabulary(http, "deleted-early", model_dir)))
        completing.start()
        wait_until(lambda: _checks(checking_server), "check process")
        with _client(checking_server) as other:
            assert other.delete("/_ml/trained_models/deleted-early").status_code == 200
        # Ended at once, not at the check's 120 s limit (the bound is far below it, far above a kill).
        completing.join(60)
        assert answers and _error(answers[0]) == (
            404,
            "resource_not_found_exception",
            "Could not find trained model [deleted-early]",
        )
        wait_until(lambda: not _checks(checking_server), "end of the check process", 30)
        assert http.get("/_ml/trained_models/deleted-early").status_code == 404
    assert _leftovers(checking_server.data_dir) == []


@pytest.mark.slow  # the graceful shutdown drains the check's request for its 30 s first
def test_sigterm_stops_a_server_whose_upload_check_is_running(tmp_path: Path, model_dir: Path) -> None:
    server = Server(tmp_path / "data", args=["--upload-check-timeout", "600s"]).start()
    definition = _script(_Loops(), tmp_path / "loops.pt")
    with _client(server) as http:
        _put_config(http, "spins", model_dir)
        assert _put_part(http, "spins", 0, definition, len(definition)).status_code == 200
        _in_background(lambda: _put_vocabulary(http, "spins", model_dir))
        wait_until(lambda: _checks(server), "check process")
        checks = _checks(server)
        # A bound against a hang: the graceful shutdown drains for up to 30 s (the check's request).
        assert server.stop(signal.SIGTERM, timeout=120) in (0, -signal.SIGTERM)
    for pid in checks:
        wait_until(lambda pid=pid: _name(pid) != CHECK_NAME, "end of the check process", 30)


def test_kill9_while_an_upload_completes_is_repaired_at_the_next_start(tmp_path: Path, model_dir: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir).start()
    definition = (model_dir / "model.pt").read_bytes()
    with _client(server) as http:
        # One upload deleted (nothing staged is left), one whose registry entry goes behind the server's
        # back below (its staging becomes an orphan).
        _put_config(http, "half", model_dir)
        assert _put_part(http, "half", 0, b"abc", 6, 2).status_code == 200
        assert http.delete("/_ml/trained_models/half").status_code == 200
        assert not (data_dir / "model-uploads" / "half").exists()
        _put_config(http, "orphan", model_dir)
        assert _put_part(http, "orphan", 0, b"abc", 6, 2).status_code == 200
        _put_config(http, "interrupted", model_dir)
        half = len(definition) // 2
        assert _put_part(http, "interrupted", 0, definition[:half], len(definition), 2).status_code == 200
        assert _put_part(http, "interrupted", 1, definition[half:], len(definition), 2).status_code == 200
        _in_background(lambda: _put_vocabulary(http, "interrupted", model_dir))
        wait_until(lambda: _checks(server), "check process")
        checks = _checks(server)
        server.kill9()
    for pid in checks:  # the check dies with the server
        wait_until(lambda pid=pid: _name(pid) != CHECK_NAME, "end of the check process", 30)
    assert _leftovers(data_dir), "the kill left no assembly: the test did not interrupt the completion"
    with sqlite3.connect(data_dir / "elserve.db") as db:
        db.execute("DELETE FROM documents WHERE kind = 'trained_model' AND key = 'orphan'")
    # What an earlier version's crash left in the model cache goes too.
    (data_dir / "models" / ".upload-0123abcd").mkdir(parents=True)
    (data_dir / "models" / ".upload-0123abcd" / "model.pt").write_bytes(definition)

    server = Server(data_dir).start()
    try:
        with _client(server) as http:
            wait_until(lambda: _fully_defined(http, "interrupted"), "completion after the restart")
            wait_until(lambda: _leftovers(data_dir) == [], "removal of the staging (after the registry's update)")
            assert not (data_dir / "model-uploads" / "interrupted").exists()
            assert not (data_dir / "model-uploads" / "orphan").exists()
            r = _put_part(http, "interrupted", 0, definition[:half], len(definition), 2)
            assert _error(r)[:2] == (400, "resource_already_exists_exception")
            assert http.delete("/_ml/trained_models/interrupted").status_code == 200
            assert [p.name for p in (data_dir / "models").iterdir() if not p.name.startswith(".")] == []
    finally:
        server.stop()


def test_uploads_are_bounded_by_the_declared_length_the_store_and_the_disk(tmp_path: Path, model_dir: Path) -> None:
    data_dir = tmp_path / "data"
    server = Server(data_dir, args=["--max-model-upload-store", "1mb"]).start()
    with _client(server) as http:
        _put_config(http, "bounded", model_dir)
        assert _error(_put_part(http, "bounded", 0, b"x" * 11, 10, 2)) == (
            400,
            "status_exception",
            "part [0] of model [bounded] brings its definition to [11] bytes, more than its total_definition_length [10]",  # noqa: E501  # Elasticsearch's message, whole so that it greps
        )
        assert _error(_put_part(http, "bounded", 0, b"x" * 10, 2 * 2**20, 2)) == (
            409,
            "status_exception",
            "model [bounded] declares a total_definition_length of [2097152] bytes; with the [0b] uploaded models "
            "take already, that exceeds the native model store's maximum acceptable size of 1mb, please delete "
            "older unused pytorch models",
        )
        assert _put_part(http, "bounded", 0, b"x" * 10, 20, 2).status_code == 200
    server.stop()

    # The same data directory, its disk counted as past the flood-stage watermark (1pb to keep free).
    server = Server(data_dir, args=["--disk-flood-stage", "1pb"]).start()
    block = (
        429,
        "cluster_block_exception",
        "index [.ml-inference-native-000002] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded "
        "flood-stage watermark, index has read-only-allow-delete block];",
    )
    try:
        with _client(server) as http:
            config = json.loads((model_dir / "trained_model_config.json").read_text())
            assert _error(http.put("/_ml/trained_models/refused", json=config)) == block
            assert _error(_put_part(http, "bounded", 1, b"x" * 10, 20, 2)) == block
            assert _error(_put_vocabulary(http, "bounded", model_dir)) == block
            # Deleting frees the disk: it goes through, as Elasticsearch's read_only_allow_delete block lets it.
            assert http.delete("/_ml/trained_models/bounded").status_code == 200
            assert _leftovers(data_dir) == [] and not (data_dir / "model-uploads" / "bounded").exists()
    finally:
        server.stop()
