"""Prometheus metrics (an elserve extension, `GET /_prometheus/metrics`).

HTTP requests by route and status with latencies; per deployment the queue
depth, pending requests, allocations, batch sizes in texts and tokens, and
worker restarts. Values that already live in the deployments are read at
scrape time by a collector instead of being copied on every change.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import Message, Receive, Scope, Send

from elserve.api.http_middleware import HttpMiddleware
from elserve.deployments.backend import DeploymentBackend

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)


class _DeploymentCollector(Collector):
    def __init__(self, deployments: DeploymentBackend) -> None:
        self._deployments = deployments

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = GaugeMetricFamily("elserve_queue_depth", "Texts waiting to be batched", labels=["deployment"])
        pending = GaugeMetricFamily(
            "elserve_pending_requests", "Requests admitted and not yet answered", labels=["deployment"]
        )
        allocations = GaugeMetricFamily("elserve_allocations", "Started allocations", labels=["deployment"])
        target = GaugeMetricFamily("elserve_target_allocations", "Requested allocations", labels=["deployment"])
        for d in self._deployments.all():
            queue.add_metric([d.deployment_id], d.queued_texts)
            pending.add_metric([d.deployment_id], d.pending_requests)
            allocations.add_metric([d.deployment_id], d.started_allocations)
            target.add_metric([d.deployment_id], d.config.number_of_allocations)
        yield from (queue, pending, allocations, target)


class Metrics:
    """The registry and the instruments; also the deployments' `Observer`."""

    def __init__(self, deployments: DeploymentBackend | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "elserve_http_requests", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "elserve_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "elserve_batch_size", "Texts per batch", ["deployment"], buckets=_SIZE_BUCKETS, registry=self.registry
        )
        self.batch_tokens = Histogram(
            "elserve_batch_tokens", "Tokens per batch", ["deployment"], buckets=_TOKEN_BUCKETS, registry=self.registry
        )
        self.restarts = Counter(
            "elserve_worker_restarts", "Worker processes restarted", ["deployment"], registry=self.registry
        )
        # The deployments with series of their own; a deployment's series go with it (else id churn
        # would grow the page, and this process, without bound).
        self._labelled: set[str] = set()
        self._deployments: DeploymentBackend | None = None
        if deployments is not None:
            self.watch(deployments)

    def watch(self, deployments: DeploymentBackend) -> None:
        self._deployments = deployments
        self.registry.register(_DeploymentCollector(deployments))

    def batch(self, deployment_id: str, size: int, tokens: int) -> None:
        self._label(deployment_id)
        self.batch_size.labels(deployment_id).observe(size)
        self.batch_tokens.labels(deployment_id).observe(tokens)

    def worker_restart(self, deployment_id: str) -> None:
        self._label(deployment_id)
        self.restarts.labels(deployment_id).inc()

    def _label(self, deployment_id: str) -> None:
        """A deployment's first series: the gone deployments' are dropped first (so at most the live ones
        and this one are kept)."""
        if deployment_id not in self._labelled:
            self._forget_gone()
            self._labelled.add(deployment_id)

    def _forget_gone(self) -> None:
        if self._deployments is None:
            return
        live = {d.deployment_id for d in self._deployments.all()}
        for gone in self._labelled - live:
            for metric in (self.batch_size, self.batch_tokens, self.restarts):
                with contextlib.suppress(KeyError):  # this metric never had a series for it
                    metric.remove(gone)
        self._labelled &= live

    def exposition(self) -> bytes:
        self._forget_gone()
        return generate_latest(self.registry)


class RequestMetrics(HttpMiddleware):
    """ASGI middleware: count and time every request by its route template (not its raw path)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"]
                services.metrics.requests.labels(route, method, str(status)).inc()
                services.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
