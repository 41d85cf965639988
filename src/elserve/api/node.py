"""This server as an Elasticsearch node: a stable id, and the shape stats and `GET /` print."""

from __future__ import annotations

import base64
import re
import secrets
import socket
from dataclasses import dataclass

from elserve.api.params import parse_bool
from elserve.deployments.capacity import NodeCapacity, machine_memory
from elserve.store import Repository, StoreWriteError, is_shared
from elserve.version import ES_VERSION

_KIND = "node"
# This node's roles, and every role name a `role:true|false` node filter may name
# (`DiscoveryNodeRole.roles()`).
ROLES = ("ml",)
_ROLE_NAMES = frozenset(
    {
        "data", "data_content", "data_hot", "data_warm", "data_cold", "data_frozen", "index", "ingest",
        "master", "ml", "remote_cluster_client", "search", "transform", "voting_only",
    }
)  # fmt: skip


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
        """The node and cluster ids persist in the store; the ephemeral id is per start. A store several front
        ends share holds one cluster id, and a node id per front end: each is a node of that cluster, known by
        its host name and port (a front end restarted there is the same node again)."""
        doc = _ids(repo, "local")
        name = socket.gethostname()
        node_id = doc["node_id"]
        if is_shared(repo):
            node_id = _ids(repo, f"front_end:{name}:{port}")["node_id"]
        return cls(
            node_id=node_id,
            name=name,
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
                "roles": list(ROLES),
                "version": ES_VERSION,
                "min_index_version": 8000099,
                "max_index_version": 9039000,
            }
        }

    def selected_by(self, node_ids: str | None) -> bool:
        """Whether a node filter (`{node_id}` of the nodes APIs: comma-separated) selects this node,
        as `DiscoveryNodes.resolveNodes` resolves it over a one-node cluster: `_local`, `_all`, the
        node's id, its name, host address or host name (`*` wildcards), `role:true|false` (adds or
        removes the nodes with that role; `data` is any data role), or `attribute:value` (wildcards
        in both). Filters apply in order; none selects every node."""
        if not node_ids:
            return True
        host = self.transport_address.rpartition(":")[0]
        selected = False
        for spec in node_ids.split(","):
            if spec in ("_local", self.node_id):
                selected = True
                continue
            if spec == "_all" or any(_simple_match(spec, v) for v in (self.name, host)):
                selected = True
            name, colon, value = spec.partition(":")
            if not colon:
                continue
            if name in _ROLE_NAMES:
                has_role = any(r.startswith("data") for r in ROLES) if name == "data" else name in ROLES
                if has_role:
                    selected = parse_bool(value, True)
            elif name != "coordinating_only":  # a node with a role is never coordinating-only
                attributes = next(iter(self.discovery_node().values()))["attributes"]
                if any(_simple_match(name, k) and _simple_match(value, v) for k, v in attributes.items()):
                    selected = True
        return selected


def _ids(repo: Repository, key: str) -> dict:
    """The ids recorded under `key`, made and recorded first if none are (of two front ends making them at
    once, one's are kept and both use them)."""
    doc = repo.get(_KIND, key)
    if doc is None:
        made = {"node_id": _es_id(), "cluster_uuid": _es_id()}
        try:
            if repo.create(_KIND, key, made):
                return made
        except StoreWriteError:
            return made  # a read-only data directory: ids for this run only
        doc = repo.get(_KIND, key) or made
    return doc


def _simple_match(pattern: str, value: str) -> bool:
    """`Regex.simpleMatch`: `*` matches any run of characters, nothing else is special."""
    if "*" not in pattern:
        return pattern == value
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None
