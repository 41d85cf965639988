"""The Ray cluster this server runs on: joined by address, or a local one started (and stopped) here.

All calls into Ray's driver API are blocking; callers run them in a thread. Serve answers status
only when asked (its long-poll is internal to Ray), so the manager asks on a short timer.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.exceptions import ActorAlreadyExistsError

from elserve.deployments.rayserve.mapping import ServeStatus

log = logging.getLogger("elserve.deployments")

# Serve's controller and the replicas live in this namespace, so that a server restarted against the
# same cluster finds (and replaces) its applications.
NAMESPACE = "elserve"
# A local Ray's shared-memory object store: the vectors of a batch are small.
_LOCAL_OBJECT_STORE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class RayNode:
    """One Ray node as Elasticsearch's `nodes[].node` shows it."""

    node_id: str
    name: str
    address: str


class RayCluster:
    def __init__(self, address: str | None, *, num_cpus: int | None = None) -> None:
        """`address`: an existing cluster (`ray://...`, `host:port` or `auto`), left running at shutdown;
        None: a local Ray on 127.0.0.1, stopped with this server."""
        self.address = address
        self._num_cpus = num_cpus
        self.owned = address is None

    def connect(self) -> None:
        if ray.is_initialized():
            return
        if self.owned:
            ray.init(
                num_cpus=self._num_cpus,
                include_dashboard=False,
                namespace=NAMESPACE,
                object_store_memory=_LOCAL_OBJECT_STORE_BYTES,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
            )
        else:
            ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False)
        # No Serve HTTP proxy: elserve's own API is the front end; the replicas are reached by handle.
        try:
            serve.start(http_options={"location": "NoServer"})
        except ActorAlreadyExistsError:
            # Another front end started Serve on this cluster at the same moment (its controller is a
            # named actor): this one then uses it, as `serve.start` does once the controller exists.
            serve.start(http_options={"location": "NoServer"})
        how = "started here" if self.owned else "given"
        log.info("connected to Ray at [%s] (%s)", self.address or "a local Ray", how)

    @staticmethod
    def restore_signal_handlers() -> None:
        """Give SIGTERM and SIGINT back to the server (call from the main thread after `connect`).

        Ray's driver installs a C++ failure handler for them, which aborts the process 3 s after
        SIGTERM (its alarm), in the middle of the graceful shutdown that deletes the applications.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            handler = signal.getsignal(sig)
            if handler is not None:
                signal.signal(sig, handler)

    def shutdown(self, applications: list[str]) -> None:
        """Remove our applications; stop Serve and Ray if this server started them, else only disconnect."""
        if not ray.is_initialized():
            return
        try:
            for name in applications:
                serve.delete(name)
            if self.owned:
                serve.shutdown()
        finally:
            ray.shutdown()  # a local Ray started by ray.init stops with it; a joined cluster stays

    def statuses(self, applications: list[str]) -> dict[str, ServeStatus | None]:
        """Serve's view of each application (None: Serve does not know it), in one call to its controller."""
        known = serve.status().applications
        return {name: _serve_status(known[name]) if name in known else None for name in applications}

    def nodes(self) -> dict[str, RayNode]:
        return {
            n["NodeID"]: RayNode(n["NodeID"], n.get("NodeManagerHostname") or n["NodeName"], n["NodeManagerAddress"])
            for n in ray.nodes()
            if n.get("Alive")
        }

    def replica_nodes(self, applications: list[str]) -> dict[str, dict[str, list[int]]]:
        """Per application: node id -> pids of its live replica actors (Ray's actor table, read from the
        GCS: it needs no dashboard)."""
        placed: dict[str, dict[str, list[int]]] = {name: {} for name in applications}
        for actor in ray._private.state.actors().values():  # the one GCS-backed listing without a dashboard
            kind, _, rest = str(actor.get("ActorClassName", "")).partition(":")
            application = rest.rsplit(":", 1)[0]
            if kind == "ServeReplica" and application in placed and actor.get("State") == "ALIVE":
                placed[application].setdefault(actor["Address"]["NodeID"], []).append(int(actor.get("Pid") or 0))
        return placed


def _serve_status(app: Any) -> ServeStatus:
    replicas: dict[str, int] = {}
    messages = [app.message] if app.message else []
    for deployment in app.deployments.values():
        for state, n in deployment.replica_states.items():
            name = str(getattr(state, "value", state))
            replicas[name] = replicas.get(name, 0) + n
        if deployment.message:
            messages.append(deployment.message)
    return ServeStatus(str(getattr(app.status, "value", app.status)), replicas, "; ".join(messages))
