"""What the rest of elserve may ask of persistent state: JSON documents by kind and id."""

from __future__ import annotations

from typing import Any, Protocol


class Repository(Protocol):
    """A durable map `(kind, id) -> JSON document`.

    Kinds used: `endpoint` (inference endpoint configurations), `deployment`
    (deployments started through the ML API or by endpoints), `user`, `role`,
    `api_key` (secrets and passwords only as hashes), `trained_model` (the model
    registry), `model_alias` (a trained model alias -> `{"model_id": ...}`), `node`
    (the cluster's ids, and each front end's node id), and on a Ray cluster front
    ends share, `ray_application` (what the lease holder last deployed) and
    `front_end_stats` (each front end's counters).
    Every write is committed before the call returns, so a `kill -9` loses nothing
    that was acknowledged. Two implementations: `SqliteRepository` (the data
    directory's file) and `PostgresRepository` (a database several front ends
    share: another process may change any document between two calls).
    """

    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> list[tuple[str, dict[str, Any]]]: ...

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None: ...

    def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Insert only if absent; False when the key already exists (atomically)."""
        ...

    def delete(self, kind: str, key: str) -> bool: ...

    def close(self) -> None: ...
