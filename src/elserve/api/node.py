"""This server as an Elasticsearch node: a stable id, and the shape stats and `GET /` print."""

from __future__ import annotations

import base64
import os
import secrets
import socket
from dataclasses import dataclass

from elserve.store import Repository, StoreWriteError
from elserve.version import ES_VERSION

_KIND = "node"


def _es_id() -> str:
    """Elasticsearch's ids: 22 url-safe base64 characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    name: str
    cluster_name: str
    cluster_uuid: str
    ephemeral_id: str
    transport_address: str

    @classmethod
    def load(cls, repo: Repository, host: str, port: int) -> NodeInfo:
        """The node and cluster ids persist in the data directory; the ephemeral id is per start."""
        doc = repo.get(_KIND, "local")
        if doc is None:
            doc = {"node_id": _es_id(), "cluster_uuid": _es_id()}
            try:
                repo.put(_KIND, "local", doc)
            except StoreWriteError:
                pass  # a read-only data directory: ids for this run only
        return cls(
            node_id=doc["node_id"],
            name=socket.gethostname(),
            cluster_name="elserve",
            cluster_uuid=doc["cluster_uuid"],
            ephemeral_id=_es_id(),
            transport_address=f"{host}:{port}",
        )

    def discovery_node(self) -> dict:
        """`{node_id: {...}}` as `deployment_stats.nodes[].node` prints it."""
        return {
            self.node_id: {
                "name": self.name,
                "ephemeral_id": self.ephemeral_id,
                "transport_address": self.transport_address,
                "external_id": self.name,
                "attributes": {
                    "ml.machine_memory": str(_machine_memory()),
                    "ml.allocated_processors": str(_processors()),
                    "ml.config_version": "12.0.0",
                },
                "roles": ["ml"],
                "version": ES_VERSION,
                "min_index_version": 8000099,
                "max_index_version": 9039000,
            }
        }


def _processors() -> int:
    return os.cpu_count() or 1


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0
