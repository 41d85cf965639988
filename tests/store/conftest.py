"""The `postgres` tests' server (tests/store/postgres_cluster.py)."""

from tests.store.postgres_cluster import postgres_cluster, postgres_url

__all__ = ["postgres_cluster", "postgres_url"]
