"""One Ray Serve replica = one allocation: the model from this node's own cache, the encoder, and
the same token-budget batching as a local allocation's deployment (queue.RequestQueue).

This module runs inside Ray's worker processes; it imports no Ray at module level, so the class
can be tested and pickled without Ray's Serve decorators (manager.py applies them).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elserve.deployments import batch_hold
from elserve.deployments.queue import Entry, RequestQueue
from elserve.models.cache import ModelCache
from elserve.models.catalogue import ModelSpec
from elserve.models.shipping import PackedFiles, install_packed
from elserve.models.sources import ModelDownloadError
from elserve.runtime.encoder import Encoder

# How long a replica waits for shipped model files to reach its node (a large model over a slow
# link); past it the replica fails to start with the reason, rather than wait forever.
FETCH_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ShippedFiles:
    """A model's files in Ray's object store, for a source no other node can read
    (`models.sources.readable_elsewhere`): `ref` is the ObjectRef of `models.shipping.pack`'s
    `{name: uint8 array}`, `sha256` the directory digest the replica checks them against."""

    ref: Any  # ray.ObjectRef (this module imports no Ray)
    sha256: str
    size: int


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica needs to build itself on any node: plain, picklable data, no head-node path
    but the cache root, which each node resolves on its own disk."""

    model_id: str
    source: str
    sha256: str | None
    cache_root: str
    num_threads: int
    precision: str
    max_batch_tokens: int
    max_batch_size: int
    # The test hook's file (deployments/batch_hold.py): while it exists, batches wait.
    hold: str | None = None
    # The installed directory's name where it is not derived from the source (an uploaded model's).
    key: str | None = None
    # The model's files, when its source is on the server's disk only; None: the replica installs the source.
    files: ShippedFiles | None = None

    def model_spec(self) -> ModelSpec:
        return ModelSpec(self.model_id, self.source, self.sha256, key=self.key)


@dataclass(frozen=True)
class ReplicaAnswer:
    """One call's vectors (indices, weights per text), the seconds its batches took, and where it ran."""

    vectors: list[tuple[np.ndarray, np.ndarray]]
    seconds: float
    node_id: str
    pid: int


class SparseEncoderReplica:
    def __init__(self, spec: ReplicaSpec, node_id: str = "") -> None:
        model_dir = install_model(spec)
        self._encoder = Encoder.load(model_dir, num_threads=spec.num_threads, precision=spec.precision)
        self._spec = spec
        self._node_id = node_id or _ray_node_id()
        self._queue = RequestQueue()
        self._batcher: asyncio.Task | None = None

    async def encode(self, batch: list[np.ndarray]) -> ReplicaAnswer:
        """Encode one call's token id sequences; calls that arrive together share batches."""
        if self._batcher is None:
            self._batcher = asyncio.create_task(self._run_batches())
        loop = asyncio.get_running_loop()
        entries = [Entry(ids, loop.create_future()) for ids in batch]
        self._queue.push(entries)
        try:
            answers = await asyncio.gather(*(e.future for e in entries))
        finally:
            for entry in entries:
                if not entry.future.done():
                    entry.future.cancel()  # the caller went away: the batcher skips it
        vectors = [v for v, _ in answers]
        return ReplicaAnswer(vectors, sum(s for _, s in answers), self._node_id, os.getpid())

    async def _run_batches(self) -> None:
        """Forever: one batch at a time, cut by the token budget when the encoder is free (so it
        holds what arrived meanwhile), encoded off the event loop."""
        while True:
            await self._queue.wait()
            entries = self._queue.take(self._spec.max_batch_tokens, self._spec.max_batch_size)
            if not entries:
                continue
            await batch_hold.wait_async(self._spec.hold)
            started = time.perf_counter()
            try:
                vectors = await asyncio.to_thread(self._encoder.encode_ids, [e.ids for e in entries])
            except Exception as exc:  # every entry of a failed batch gets the error
                for entry in entries:
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                continue
            each = (time.perf_counter() - started) / len(entries)
            for entry, vector in zip(entries, vectors, strict=True):
                if not entry.future.done():
                    entry.future.set_result(((vector.indices, vector.weights), each))

    def where(self) -> tuple[str, int]:
        """(Ray node id, process id) of this replica."""
        return self._node_id, os.getpid()


def install_model(spec: ReplicaSpec) -> Path:
    """The spec's model in this node's cache: as installed there already, else from its verified source,
    else (a source only the server can read) from the files the server shipped through the object store."""
    cache = ModelCache(Path(spec.cache_root))
    model = spec.model_spec()
    if spec.files is None:
        return cache.install(model)
    installed = cache.path_for(model)
    if installed is not None:
        return installed
    return install_packed(cache, model, _fetch(spec, spec.files), spec.files.sha256)


def _fetch(spec: ReplicaSpec, files: ShippedFiles) -> PackedFiles:
    import ray

    try:
        return ray.get(files.ref, timeout=FETCH_TIMEOUT_S)
    except (ray.exceptions.ObjectLostError, ray.exceptions.GetTimeoutError) as exc:
        raise ModelDownloadError(
            f"the files of model [{spec.model_id}] ({files.size} bytes, shipped by the server because only its "
            f"disk holds the source [{spec.source}]) could not be read from Ray's object store: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _ray_node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()
