"""Clients of a test server (support/server.py) as the `elastic` superuser: the official `elasticsearch`
client and a raw `httpx` one.

`REQUEST_TIMEOUT` only guards against a hang: a request that puts an endpoint may load a model on a
loaded machine, so it is minutes; a test whose timeout is under test passes its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from elasticsearch import Elasticsearch

from tests.support.server import PASSWORD, Server

REQUEST_TIMEOUT = 300.0


def make_client(server: Server, **kwargs: Any) -> Elasticsearch:
    """The `elasticsearch` client as `elastic`; `kwargs` go to `Elasticsearch` (e.g. `retry_on_status=()`)."""
    options: dict[str, Any] = {"basic_auth": ("elastic", PASSWORD), "request_timeout": REQUEST_TIMEOUT} | kwargs
    return Elasticsearch(server.url, **options)


def make_http(server: Server, **kwargs: Any) -> httpx.Client:
    """A raw `httpx` client as `elastic` (close it, or use it as a context manager)."""
    options: dict[str, Any] = {"auth": ("elastic", PASSWORD), "timeout": REQUEST_TIMEOUT} | kwargs
    return httpx.Client(base_url=server.url, **options)


def put_at_once(servers: list[Server], path: str, body: dict[str, Any]) -> list[httpx.Response]:
    """The same `PUT` sent to every server at the same moment (a barrier), one thread each."""
    barrier = threading.Barrier(len(servers))

    def put(server: Server) -> httpx.Response:
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=300) as http:
            barrier.wait()
            return http.put(path, json=body)

    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(put, servers))
