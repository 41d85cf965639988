"""A local Hugging Face hub mirror for tests: the routes huggingface_hub's `snapshot_download` calls.

    GET  /api/models/<repo>/revision/<revision>     the commit a revision names (repo_info)
    GET  /api/models/<repo>/tree/<commit>           the file listing with checksums (list_repo_tree)
    HEAD /<repo>/resolve/<commit>/<file>            ETag (sha256 for LFS files, git blob id otherwise), size
    GET  /<repo>/resolve/<commit>/<file>            the file

Each repository is a directory of files served at one made-up commit, `main` names it.
"""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.http_server import loopback_http_server

LFS_SUFFIXES = (".safetensors", ".bin", ".pt")


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()


class HubRepo:
    def __init__(self, repo_id: str, directory: Path) -> None:
        self.repo_id = repo_id
        self.directory = directory
        self.commit = hashlib.sha1(repo_id.encode() + b"@main", usedforsecurity=False).hexdigest()

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.directory.iterdir()) if p.is_file()}

    def entry(self, name: str, data: bytes) -> dict:
        entry: dict = {"type": "file", "path": name, "size": len(data), "oid": _git_blob_id(data)}
        if name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry


class _Handler(http.server.BaseHTTPRequestHandler):
    repos: dict[str, HubRepo]
    served: list[str]
    corrupt: set[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.served.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            repo = self.repos.get("/".join(parts[2:4]))
            if repo is None:
                self.send_error(404)
                return
            if parts[4] == "revision":
                files = repo.files()
                return self._json(
                    {"id": repo.repo_id, "sha": repo.commit, "siblings": [{"rfilename": n} for n in files]}
                )
            return self._json([repo.entry(name, data) for name, data in repo.files().items()])
        if len(parts) == 5 and parts[2] == "resolve":
            repo = self.repos.get("/".join(parts[:2]))
            if repo is None or parts[3] not in (repo.commit, "main"):
                self.send_error(404)
                return
            data = repo.files().get(parts[4])
            if data is None:
                self.send_error(404)
                return
            entry = repo.entry(parts[4], data)
            etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
            if parts[4] in self.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])  # one bit off: the checksum tells
            self.send_response(200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{etag}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            return
        self.send_error(404)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)


@contextmanager
def hub_mirror(repos: list[HubRepo], corrupt: set[str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """Serve the repositories; yields (endpoint URL, the requests served)."""
    served: list[str] = []
    handler = type(
        "Handler", (_Handler,), {"repos": {r.repo_id: r for r in repos}, "served": served, "corrupt": corrupt or set()}
    )
    with loopback_http_server(handler) as url:
        yield url, served
