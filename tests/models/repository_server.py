"""Test helpers: a model package in Elastic's repository layout, and a loopback HTTP server for it.

The server answers `Range` requests as a CDN does (206 + Content-Range), can drop the connection after
a number of bytes of a file (the next request resumes), can stall a file until released, can redirect a
file elsewhere or dribble it a byte at a time (a hostile repository), and records every request it got.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.http_server import loopback_http_server

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##c"]


def write_package(
    repository: Path,
    packaged_id: str,
    model: bytes,
    *,
    vocabulary: list[str] | None = None,
    sha256: str | None = None,
    size: int | None = None,
) -> dict:
    """Write `<id>.metadata.json`, `<id>.pt` and `<id>.vocab.json` (sha256/size overridable to corrupt them)."""
    repository.mkdir(parents=True, exist_ok=True)
    (repository / f"{packaged_id}.pt").write_bytes(model)
    (repository / f"{packaged_id}.vocab.json").write_text(json.dumps({"vocabulary": vocabulary or VOCABULARY}))
    metadata = {
        "packaged_model_id": packaged_id,
        "description": f"test package {packaged_id}",
        "model_type": "pytorch",
        "size": len(model) if size is None else size,
        "sha256": hashlib.sha256(model).hexdigest() if sha256 is None else sha256,
        "vocabulary_file": f"{packaged_id}.vocab.json",
        "inference_config": {
            "text_expansion": {"tokenization": {"bert": {"do_lower_case": True, "max_sequence_length": 512}}}
        },
        "tags": [],
    }
    (repository / f"{packaged_id}.metadata.json").write_text(json.dumps(metadata))
    return metadata


def package_elastic_dir(elastic_dir: Path, repository: Path, packaged_id: str) -> dict:
    """Publish a model directory in the Elastic layout (`tests.support.model_factory.build_torchscript_dir`) as a
    package of a repository: its configuration becomes the metadata, with the `.pt`'s size and sha256."""
    model = (elastic_dir / "model.pt").read_bytes()
    vocabulary = json.loads((elastic_dir / "vocab.json").read_text())["vocabulary"]
    metadata = write_package(repository, packaged_id, model, vocabulary=vocabulary)
    config = json.loads((elastic_dir / "trained_model_config.json").read_text())
    metadata = {**config, **{k: metadata[k] for k in ("packaged_model_id", "size", "sha256", "vocabulary_file")}}
    (repository / f"{packaged_id}.metadata.json").write_text(json.dumps(metadata))
    return metadata


@dataclass
class Behaviour:
    drops: dict[str, list[int]] = field(default_factory=dict)  # file -> byte counts after which to drop, in turn
    gates: dict[str, threading.Event] = field(default_factory=dict)  # file -> sent nothing of it until set
    stalls: dict[str, tuple[int, threading.Event]] = field(default_factory=dict)  # file -> (bytes, wait) once
    redirects: dict[str, str] = field(default_factory=dict)  # file -> a 302 to this URL
    dribbles: dict[str, float] = field(default_factory=dict)  # file -> seconds between its bytes
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    behaviour: Behaviour

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        behaviour = self.behaviour
        name = urlsplit(self.path).path.lstrip("/")  # as a proxy, the request line holds the whole URL
        with behaviour.lock:
            behaviour.requests.append(("GET", name, self.headers.get("Range")))
            drop = behaviour.drops[name].pop(0) if behaviour.drops.get(name) else None
        if (location := behaviour.redirects.get(name)) is not None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.root / name
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        if (gate := behaviour.gates.get(name)) is not None:
            gate.wait(60)
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if (interval := behaviour.dribbles.get(name)) is not None:
            for i in range(len(body)):  # a byte at a time, never stalling long enough for a read timeout
                try:
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(interval)
            return
        with behaviour.lock:
            stall = behaviour.stalls.pop(name, None)
        if stall is not None:
            sent, event = stall
            # In two writes, the second small, as TCP may deliver them: the client must keep both.
            for piece in (body[: max(sent - 100, 0)], body[max(sent - 100, 0) : sent]):
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.05)
            event.wait(60)  # the client is killed meanwhile; the rest goes nowhere
            with suppress(OSError):
                self.wfile.write(body[sent:])
            return
        if drop is not None:
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # as a dropped connection: fewer bytes than Content-Length
            return
        self.wfile.write(body)


@contextmanager
def serve_directory(root: Path, behaviour: Behaviour | None = None) -> Iterator[tuple[str, Behaviour]]:
    """Serve `root` on a free loopback port; yields (base URL, behaviour)."""
    behaviour = behaviour or Behaviour()
    handler = type("Handler", (_Handler,), {"root": root, "behaviour": behaviour})
    with loopback_http_server(handler) as url:
        try:
            yield f"{url}/", behaviour
        finally:  # what waits on a gate or a stall goes, so that the server can stop
            for gate in behaviour.gates.values():
                gate.set()
            for _, event in behaviour.stalls.values():
                event.set()
