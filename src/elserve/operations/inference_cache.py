"""A deployment's inference cache: `_infer` results by their input, bounded by `cache_size`.

Elasticsearch's native process keeps one per deployment (`cache_size` of
`StartTrainedModelDeploymentAction`, the model's size by default, `0` for none): a request whose
input was answered before is answered from it, counted in `inference_count` and in
`inference_cache_hit_count`. `POST .../deployment/cache/_clear` empties it (the counts stay).

Here the cache holds a result as the JSON it renders to, by the exact document text and the
settings it was inferred with, so a hit answers exactly what inference answered. Each entry costs
its key's and its result's bytes; the least recently used entries go to stay within `cache_size`,
and a result bigger than the whole cache is not kept.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import orjson

from elserve.bytesize import parse_byte_size
from elserve.deployments.config import DeploymentConfig

_ENTRY_OVERHEAD = 64  # bytes for an entry's bookkeeping


def cache_bytes(config: DeploymentConfig, model_bytes: int) -> int:
    """`TaskParams.getCacheSizeBytes()`: the size given at start, else the model's size."""
    if config.cache_size is None:
        return model_bytes
    return parse_byte_size(config.cache_size, "cache_size")


class InferenceCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[bytes, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: tuple[str, Hashable]) -> Any | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
        return orjson.loads(found[0])

    def put(self, key: tuple[str, Hashable], result: Any) -> None:
        if self.max_bytes <= 0:
            return
        value = orjson.dumps(result)
        cost = len(key[0].encode()) + len(value) + _ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            while self._entries and self._bytes + cost > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
            self._entries[key] = (value, cost)
            self._bytes += cost

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


class InferenceCaches:
    """Each running deployment's cache (a deployment started again starts with an empty one)."""

    def __init__(self) -> None:
        self._caches: weakref.WeakKeyDictionary[Any, InferenceCache] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def of(self, deployment: Any, max_bytes: int) -> InferenceCache:
        with self._lock:
            cache = self._caches.get(deployment)
            if cache is None:
                cache = self._caches[deployment] = InferenceCache(max_bytes)
            return cache

    def clear(self, deployment: Any) -> None:
        with self._lock:
            cache = self._caches.get(deployment)
        if cache is not None:
            cache.clear()
