"""`create_app(settings)`: the parts wired together, once, and the routers mounted."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elserve.api.deprecation_headers import DeprecationWarningHeaders
from elserve.api.errors import install_error_handlers
from elserve.api.http_middleware import HttpMiddleware
from elserve.api.metrics import Metrics, RequestMetrics
from elserve.api.node import NodeInfo
from elserve.api.recent_errors import RecentErrors, RecordErrors
from elserve.api.request_body import RequestBodyLimits
from elserve.api.routes import (
    console,
    has_privileges,
    inference,
    inference_services,
    metrics,
    ml_memory,
    openapi,
    root,
    trained_models,
)
from elserve.api.routes import security as security_routes
from elserve.deployments.adaptive import ScalerTimings
from elserve.deployments.backend import DeploymentBackend
from elserve.deployments.capacity import NodeCapacity
from elserve.deployments.manager import DeploymentManager
from elserve.models.cache import ModelCache
from elserve.models.catalogue import Catalogue
from elserve.models.downloads import ModelDownloads
from elserve.models.registry import ModelRegistry
from elserve.operations.inference import InferenceOperations
from elserve.operations.model_upload import ModelUploads
from elserve.operations.trained_models import TrainedModelOperations
from elserve.security.authc import Security
from elserve.security.throttle import LoginThrottle
from elserve.settings import ServerSettings
from elserve.store import Repository, StoreWriteError, is_shared, open_store

log = logging.getLogger("elserve")

# With a shared store, how often a front end brings its deployments to the store's records (started by
# another front end: started here; deleted by another: stopped here). Endpoints themselves are read from
# the store on every request, so their changes are seen at once; this bounds only the stray allocations.
RECONCILE_INTERVAL_S = 2.0


@dataclass
class Services:
    settings: ServerSettings
    repo: Repository
    security: Security
    node: NodeInfo
    downloads: ModelDownloads
    deployments: DeploymentBackend
    metrics: Metrics
    inference: InferenceOperations
    trained_models: TrainedModelOperations


class ElasticProductHeader(HttpMiddleware):
    """`X-Elastic-Product: Elasticsearch` on every answer: the official clients refuse a 2xx without it."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-elastic-product", b"Elasticsearch")]
            await send(message)

        await self.app(scope, receive, send_with_header)


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # The deprecation warnings wrap even Starlette's `ServerErrorMiddleware`, which answers an
        # unexpected error (500) itself, outside the middlewares added with `add_middleware`.
        return DeprecationWarningHeaders(super().build_middleware_stack())


def _print_generated_password(password: str) -> None:
    print(
        "\n" + "-" * 72 + "\n"
        f"The password of the `elastic` superuser was generated: {password}\n"
        "It is stored only as a hash and shown only now. Set ELASTIC_PASSWORD to choose it.\n" + "-" * 72 + "\n",
        file=sys.stdout,
        flush=True,
    )


def build_services(settings: ServerSettings) -> Services:
    if not settings.read_only:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    repo = open_store(settings.store, settings.store_path, read_only=settings.read_only)
    security = Security(repo, LoginThrottle(free_failures=settings.login_free_failures))
    try:
        generated = security.users.bootstrap_elastic(settings.elastic_password)
    except StoreWriteError:
        generated = None  # read-only: the stored `elastic` stays as it is (cli.py said why, once)
    if generated is not None:
        _print_generated_password(generated)
    capacity = NodeCapacity.of_machine(settings.processors, settings.ml_memory_bytes)
    node = NodeInfo.load(repo, settings.host, settings.port, capacity)
    # Imported and uploaded models (the registry, in the store) resolve after the built-ins.
    registry = ModelRegistry(repo)
    cache = ModelCache(settings.model_cache_dir)
    downloads = ModelDownloads(cache, Catalogue(model_repository=settings.model_repository, registry=registry))
    uploads = ModelUploads(registry, cache, settings.data_dir / "model-uploads", settings.uploads)
    if not settings.read_only:
        _resume_uploads(uploads)
    timings = ScalerTimings(
        interval_s=settings.scaler_interval_s,
        scale_to_zero_after_s=settings.scale_to_zero_time_s,
        scale_up_cooldown_s=settings.scale_up_cooldown_s,
    )
    metrics = Metrics()
    deployments: DeploymentBackend
    if settings.backend == "ray":
        deployments = _ray_backend(settings, downloads, timings, metrics, repo)
    else:
        deployments = DeploymentManager(
            downloads,
            max_batch_tokens=settings.max_batch_tokens,
            timings=timings,
            observer=metrics,
            precision=settings.precision,
            capacity=capacity,
        )
    metrics.watch(deployments)
    inference = InferenceOperations(repo, deployments)
    return Services(
        settings=settings,
        repo=repo,
        security=security,
        node=node,
        downloads=downloads,
        deployments=deployments,
        metrics=metrics,
        inference=inference,
        trained_models=TrainedModelOperations(
            repo, deployments, downloads, inference.endpoints_using, uploads, settings.max_batch_tokens
        ),
    )


def _resume_uploads(uploads: ModelUploads) -> None:
    """What a crash left of uploads is removed now; completions it cut short run again in the background
    (each checks its model in a child process, which may take a while)."""
    waiting = uploads.recover()
    if waiting:
        log.info("completing %d upload(s) interrupted by the last stop: %s", len(waiting), ", ".join(waiting))

        def resume() -> None:
            for model_id in waiting:
                uploads.resume(model_id)

        threading.Thread(target=resume, name="elserve-upload-resume", daemon=True).start()


def _ray_backend(
    settings: ServerSettings, downloads: ModelDownloads, timings: ScalerTimings, metrics: Metrics, repo: Repository
) -> DeploymentBackend:
    """Ray Serve replicas instead of local workers; Ray is imported only here (an optional extra)."""
    from elserve.deployments.rayserve.cluster import RayCluster
    from elserve.deployments.rayserve.manager import RayDeploymentManager

    return RayDeploymentManager(
        downloads,
        RayCluster(settings.ray_address, num_cpus=settings.processors),
        max_batch_tokens=settings.max_batch_tokens,
        timings=timings,
        observer=metrics,
        precision=settings.precision,
        replica_cache_root=settings.ray_model_cache,
        repo=repo,
    )


async def _reconcile(services: Services) -> None:
    while True:
        await asyncio.sleep(RECONCILE_INTERVAL_S)
        try:
            await services.inference.reconcile()
        except Exception:
            log.warning("reconciling deployments with the store failed", exc_info=True)


def create_app(settings: ServerSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        services.inference.restore()  # deployments come back by themselves, as on an Elasticsearch restart
        # What is imported and built by now lives as long as the server: out of the cyclic collector's
        # reach, a full collection walks only what requests made. Over PyTorch's 200,000 objects one
        # took 110 ms, every few seconds under bulk load: the slowest query of each pass.
        gc.freeze()
        # A thread that tokenizes a bulk request hands the GIL back to the event loop within 1 ms, not
        # the default 5: a query under bulk load waited for that handoff (p99 19-23 ms against 23-31).
        sys.setswitchinterval(0.001)
        log.info("elserve listening on http://%s:%d (data in %s)", settings.host, settings.port, settings.data_dir)
        reconciling = asyncio.create_task(_reconcile(services)) if is_shared(services.repo) else None
        try:
            yield
        finally:
            if reconciling is not None:
                reconciling.cancel()
            services.trained_models.uploads.close()  # an upload's check running now would hold the exit
            await services.deployments.stop_all()
            services.repo.close()

    app = _App(
        title="elserve",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.state.recent_errors = RecentErrors()
    app.include_router(root.router)
    app.include_router(inference_services.router)  # before `/_inference/{id}`: `_services` is no endpoint id
    app.include_router(inference.router)
    app.include_router(trained_models.router)
    app.include_router(ml_memory.router)
    app.include_router(metrics.router)
    app.include_router(has_privileges.router)  # before `/_security/user/{name}` takes its path
    app.include_router(security_routes.router)
    app.include_router(console.router)
    app.include_router(openapi.router)
    app.add_middleware(RequestBodyLimits, max_content_length=settings.http.max_content_length)
    app.add_middleware(RequestMetrics)
    app.add_middleware(RecordErrors, errors=app.state.recent_errors)
    app.add_middleware(ElasticProductHeader)
    return app
