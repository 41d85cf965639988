"""The deployment inference cache: exact by input and settings, within its byte bound."""

from __future__ import annotations

from elserve.deployments.config import DeploymentConfig
from elserve.operations.inference_cache import (
    InferenceCache,
    InferenceCaches,
    cache_bytes,
)


def test_a_result_comes_back_as_it_went_in() -> None:
    cache = InferenceCache(10_000)
    result = {"predicted_value": [[1.0, 2.5]], "is_truncated": True}
    cache.put(("words", "settings"), result)
    assert cache.get(("words", "settings")) == result
    assert cache.get(("words", "other settings")) is None
    assert cache.get(("Words", "settings")) is None


def test_the_cache_stays_within_its_size_dropping_the_least_recently_used() -> None:
    cache = InferenceCache(1_000)
    for i in range(50):
        cache.put((f"text {i}", 0), {"predicted_value": [[float(i)] * 10]})
        assert cache.size_bytes <= 1_000
    assert cache.get(("text 49", 0)) is not None and cache.get(("text 0", 0)) is None
    cache.get(("text 45", 0))  # used: kept over older ones
    for i in range(50, 53):
        cache.put((f"text {i}", 0), {"predicted_value": [[float(i)] * 10]})
    assert cache.get(("text 45", 0)) is not None


def test_a_result_bigger_than_the_cache_and_a_zero_cache_keep_nothing() -> None:
    small = InferenceCache(100)
    small.put(("t", 0), {"predicted_value": [[1.0] * 100]})
    assert small.get(("t", 0)) is None and small.size_bytes == 0
    none = InferenceCache(0)
    none.put(("t", 0), {"x": 1})
    assert none.get(("t", 0)) is None


def test_clear_empties_one_deployment_cache() -> None:
    class Deployment:  # any object a deployment is: caches are kept by identity
        pass

    caches = InferenceCaches()
    a, b = Deployment(), Deployment()
    caches.of(a, 1000).put(("x", 0), {"v": 1})
    caches.of(b, 1000).put(("x", 0), {"v": 2})
    caches.clear(a)
    assert caches.of(a, 1000).get(("x", 0)) is None
    assert caches.of(b, 1000).get(("x", 0)) == {"v": 2}


def test_the_default_size_is_the_model_size() -> None:
    config = DeploymentConfig("d", "m", 1)
    assert cache_bytes(config, 12345) == 12345
    assert cache_bytes(DeploymentConfig("d", "m", 1, cache_size="10kb"), 12345) == 10240
    assert cache_bytes(DeploymentConfig("d", "m", 1, cache_size="0"), 12345) == 0
