"""Counters of the front ends sharing a store and a Ray cluster, so that `_stats` answers the same on each.

Every front end counts what it sends to each Ray node's replicas; it publishes its counters in the store
(kind `front_end_stats`, one document per front end process) and reads the others'. A deployment's
`nodes[]` entry for a Ray node then sums the counters of every front end for that node, and the
deployment's totals sum them all, as Elasticsearch sums its nodes' (`AssignmentStats.toXContent`). What
another front end counted shows at its next publication (every second). A front end that stops removes
its document; one killed stops counting once its document is older than `_STALE_MS`, as an
Elasticsearch node's counters leave the stats with the node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import deque
from typing import Any

from elserve.deployments.stats import DeploymentCounters, now_ms
from elserve.store import Repository, StoreWriteError

log = logging.getLogger("elserve.deployments")

_KIND = "front_end_stats"
_STALE_MS = 60_000
FRONT_END = ""  # the key of what a front end counts itself (admission, timeouts) rather than per Ray node

_COUNTS = ("inference_count", "error_count", "timeout_count", "rejected_execution_count", "cache_hit_count")


def counters_doc(c: DeploymentCounters) -> dict[str, Any]:
    doc: dict[str, Any] = {name: getattr(c, name) for name in _COUNTS}
    doc.update(
        total_inference_time_s=c.total_inference_time_s,
        last_access_ms=c.last_access_ms,
        peak_throughput_per_minute=c.peak_throughput_per_minute,
        minutes=[list(m) for m in c._minutes],
        hit_minutes=[list(m) for m in c._hit_minutes],
    )
    return doc


def counters_from(doc: dict[str, Any]) -> DeploymentCounters:
    c = DeploymentCounters(
        total_inference_time_s=float(doc.get("total_inference_time_s") or 0.0),
        last_access_ms=doc.get("last_access_ms"),
        peak_throughput_per_minute=int(doc.get("peak_throughput_per_minute") or 0),
    )
    for name in _COUNTS:
        setattr(c, name, int(doc.get(name) or 0))
    c._minutes = deque((tuple(m) for m in doc.get("minutes") or []), maxlen=2)
    c._hit_minutes = deque((tuple(m) for m in doc.get("hit_minutes") or []), maxlen=2)
    return c


def summed(counters: list[DeploymentCounters]) -> DeploymentCounters:
    """One set of counters for several front ends': counts and times add up, per minute too; the last access
    is the latest; the peak is the highest of each one's and of the minutes' sums."""
    if len(counters) == 1:
        return counters[0]
    total = DeploymentCounters()
    minutes: dict[int, list[float]] = {}
    hits: dict[int, int] = {}
    for c in counters:
        for name in _COUNTS:
            setattr(total, name, getattr(total, name) + getattr(c, name))
        total.total_inference_time_s += c.total_inference_time_s
        if c.last_access_ms is not None:
            total.last_access_ms = max(total.last_access_ms or 0, c.last_access_ms)
        total.peak_throughput_per_minute = max(total.peak_throughput_per_minute, c.peak_throughput_per_minute)
        for minute, n, t in c._minutes:
            each = minutes.setdefault(minute, [0, 0.0])
            each[0] += n
            each[1] += t
        for minute, n in c._hit_minutes:
            hits[minute] = hits.get(minute, 0) + n
    for minute in sorted(minutes)[-2:]:
        n, t = minutes[minute]
        total._minutes.append((minute, int(n), t))
        total.peak_throughput_per_minute = max(total.peak_throughput_per_minute, int(n))
    for minute in sorted(hits)[-2:]:
        total._hit_minutes.append((minute, hits[minute]))
    return total


class FrontEndCounters:
    """This front end's counters in the store, and the other front ends' as last published."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self.key = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
        self._others: dict[str, dict[str, list[DeploymentCounters]]] = {}

    def publish(self, own: dict[str, dict[str, DeploymentCounters]]) -> None:
        """Blocking. Write ours (deployment id -> Ray node id or FRONT_END -> counters); read the others'."""
        doc = {
            "updated_ms": now_ms(),
            "deployments": {d: {n: counters_doc(c) for n, c in nodes.items()} for d, nodes in own.items()},
        }
        try:
            self._repo.put(_KIND, self.key, doc)
            published = self._repo.list(_KIND)
        except StoreWriteError as exc:
            log.warning("could not share this front end's counters: %s", exc)
            return
        fresh = now_ms() - _STALE_MS
        others: dict[str, dict[str, list[DeploymentCounters]]] = {}
        for key, theirs in published:
            if key == self.key or not isinstance(theirs, dict) or int(theirs.get("updated_ms") or 0) < fresh:
                continue
            for deployment_id, nodes in (theirs.get("deployments") or {}).items():
                for node_id, counters in nodes.items():
                    others.setdefault(deployment_id, {}).setdefault(node_id, []).append(counters_from(counters))
        self._others = others

    def with_others(self, deployment_id: str, node_id: str, own: DeploymentCounters) -> DeploymentCounters:
        return summed([own, *self._others.get(deployment_id, {}).get(node_id, [])])

    def close(self) -> None:
        """Blocking. This front end stops: its counters leave the stats."""
        with contextlib.suppress(StoreWriteError):  # stale within a minute anyway
            self._repo.delete(_KIND, self.key)
