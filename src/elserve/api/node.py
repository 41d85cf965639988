"""This server as an Elasticsearch node: a stable id, and the shape stats and `GET /` print."""

from __future__ import annotations

import base64
import secrets
import socket
from dataclasses import dataclass

from elserve.deployments.capacity import NodeCapacity, machine_memory
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
    allocated_processors: int
    machine_memory: int
    ml_memory_limit: int  # the native memory allocations may use

    @classmethod
    def load(cls, repo: Repository, host: str, port: int, capacity: NodeCapacity) -> NodeInfo:
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
            allocated_processors=capacity.processors,
            machine_memory=machine_memory(),
            ml_memory_limit=capacity.memory_bytes,
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
                    "ml.machine_memory": str(self.machine_memory),
                    "ml.allocated_processors": str(self.allocated_processors),
                    "ml.allocated_processors_double": str(float(self.allocated_processors)),
                    "ml.config_version": "12.0.0",
                    # elserve's own: the memory allocations may use (`elserve serve --ml-memory`).
                    "elserve.ml_memory_limit": str(self.ml_memory_limit),
                },
                "roles": ["ml"],
                "version": ES_VERSION,
                "min_index_version": 8000099,
                "max_index_version": 9039000,
            }
        }

