"""The files of models that no other node can read (`models.sources.readable_elsewhere`: `file:`
imports, REST uploads), in Ray's object store: put once per cache key, held while a deployment of
that key lives, dropped with the last one. Replicas on any node read them (replica.install_model).

The object holds the model's bytes once, owned by this server's driver; a node pulls a copy while its
replica installs the files into the node's cache, and Ray may evict that copy afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import ray

from elserve.deployments.rayserve.replica import ShippedFiles
from elserve.models.cache import ModelCache
from elserve.models.catalogue import ModelSpec
from elserve.models.shipping import pack, packed_sha256
from elserve.models.sources import ModelDownloadError, readable_elsewhere

log = logging.getLogger("elserve.deployments")


class ShippedModels:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, ShippedFiles] = {}  # cache key -> its files in the object store
        self._keys: dict[str, str] = {}  # deployment id -> the cache key its replicas install

    def files_for(self, deployment_id: str, spec: ModelSpec, cache: ModelCache) -> ShippedFiles | None:
        """The object of `spec`'s files as installed in `cache` (put now if no deployment holds it yet), held
        for `deployment_id` until `release`; None when every node can install the source itself.
        Blocking: call in a thread."""
        if readable_elsewhere(spec.source):
            return None
        key = spec.cache_key
        with self._lock:
            files = self._files.get(key)
            if files is None:
                directory = cache.path_for(spec)
                if directory is None:  # removed since the deployment's start installed it
                    raise ModelDownloadError(f"the files of model [{spec.model_id}] are no longer in [{cache.root}]")
                files = self._files[key] = _put(spec, directory)
            self._keys[deployment_id] = key
            return files

    def release(self, deployment_id: str) -> None:
        """The deployment is gone: drop its model's object once no other deployment holds it."""
        with self._lock:
            key = self._keys.pop(deployment_id, None)
            if key is None or key in self._keys.values():
                return
            files = self._files.pop(key)
        _unpin(files)
        log.info("dropped the files of model key [%s] (%d bytes) from Ray's object store", key, files.size)

    def held(self) -> dict[str, int]:
        """Cache key -> bytes held in the object store."""
        with self._lock:
            return {key: files.size for key, files in self._files.items()}


def _put(spec: ModelSpec, directory: Path) -> ShippedFiles:
    started = time.perf_counter()
    packed = pack(directory)
    size = sum(a.nbytes for a in packed.values())
    files = ShippedFiles(ray.put(packed), packed_sha256(spec, directory), size)
    log.info(
        "[%s] its source [%s] is on this server's disk only: put its files (%d bytes) in Ray's object store "
        "for the replicas in %.3f s",
        spec.model_id,
        spec.source,
        size,
        time.perf_counter() - started,
    )
    return files


def _core_worker() -> Any:
    # Ray's internal reference table: untyped (its stubs declare no `core_worker`).
    worker: Any = ray._private.worker.global_worker
    return worker.core_worker


def _unpin(files: ShippedFiles) -> None:
    """Serve pickles a replica's arguments with cloudpickle, outside Ray's serialization of task arguments,
    and Ray then pins every ObjectRef inside for the life of this process (its out-of-band rule: one
    reference per pickling, never removed). Remove those: the object then goes when the last reference
    (ours, any replica's) does. Our `files.ref` is the one Python ObjectRef of it in this process."""
    core_worker = _core_worker()
    try:
        for _ in range(local_references(files.ref) - 1):
            core_worker.remove_object_ref_reference(files.ref)
    except Exception as exc:
        log.warning("could not release the model files' object %s: %s", files.ref.hex(), exc)


def local_references(ref: ray.ObjectRef) -> int:
    """This process's local references to `ref` as Ray counts them (0: none; the object is freed
    once no other process borrows it)."""
    counts = _core_worker().get_all_reference_counts()
    hex_id = ref.hex()
    found = counts.get(hex_id.encode(), counts.get(hex_id, {}))  # Ray keys the table by the hex id
    return int(found.get("local", 0))
