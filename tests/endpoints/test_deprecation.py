"""The request's deprecation warnings (`endpoints/deprecation.py`): collected as they happen, once each,
and kept when a later rule refuses the request."""

from __future__ import annotations

import pytest

from elserve.endpoints import deprecation
from elserve.endpoints.put_request import parse_put_request
from elserve.errors import ElasticsearchError


def test_collected_once_each_and_only_inside() -> None:
    deprecation.warn("outside: only logged")
    with deprecation.collecting() as warnings:
        deprecation.warn("a")
        deprecation.warn("b")
        deprecation.warn("a")
    assert warnings == ["a", "b"]
    with deprecation.collecting() as again:
        pass
    assert again == []


def test_an_elser_put_refused_after_its_warning_keeps_it() -> None:
    body = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1, "bogus": 1}}
    with deprecation.collecting() as warnings, pytest.raises(ElasticsearchError, match="unknown to the"):
        parse_put_request("my-elser", "sparse_embedding", body, platform_default=".elser_model_2")
    assert [w.split(" ")[0] for w in warnings] == ["Putting", "The"]


def test_the_warnings_of_a_successful_put_are_the_ones_it_returns() -> None:
    body = {"service": "elser", "service_settings": {"num_allocations": 1, "num_threads": 1}}
    with deprecation.collecting() as warnings:
        request = parse_put_request("my-elser", "sparse_embedding", body, platform_default=".elser_model_2")
    assert warnings == list(request.warnings)
