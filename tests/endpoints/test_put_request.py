"""PUT: one test per rule (T1-T6), Elasticsearch's order, model selection, warnings and the echo."""

from __future__ import annotations

from typing import Any

import pytest

from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.endpoints.put_request import parse_put_request
from elserve.models.catalogue import platform_default_elser_model
from tests.support.errors import expect_error, raising

LINUX = ".elser_model_2_linux-x86_64"
AGNOSTIC = ".elser_model_2"
STATUS = "status_exception"
VALIDATION = "validation_exception"
REQUEST_VALIDATION = "action_request_validation_exception"
ILLEGAL = "illegal_argument_exception"


def failed(*messages: str) -> str:
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, 1))


def put(body: dict[str, Any], task_type: str | None = "sparse_embedding", inference_id: str = "my-elser", **kw: Any):
    kw.setdefault("platform_default", LINUX)
    return parse_put_request(inference_id, task_type, body, **kw)


def elser(**service_settings: Any) -> dict[str, Any]:
    """An `elser` body (the model id is filled in, so settings rules are reached)."""
    return {"service": "elser", "service_settings": service_settings}


def es(**service_settings: Any) -> dict[str, Any]:
    return {"service": "elasticsearch", "service_settings": {"model_id": LINUX, **service_settings}}


# --- order and top level (T1, T2) ---------------------------------------------------------------


def test_path_task_type_is_checked_before_the_id() -> None:
    expect_error(lambda: put({}, "bad", "Not Valid"), STATUS, 400, "Unknown task_type [bad]")


def test_id_is_checked_before_the_body() -> None:
    expect_error(
        lambda: put({}, inference_id="Bad"),
        REQUEST_VALIDATION,
        400,
        "Validation Failed: 1: Invalid inference_id; 'Bad' can contain lowercase alphanumeric (a-z and 0-9), "
        "hyphens or underscores; must start and end with alphanumeric;",
    )


def test_reserved_ids_fail_the_id_rule_first() -> None:
    error = expect_error(
        lambda: put(elser(num_threads=1, num_allocations=1), inference_id=".elser-2-elasticsearch"),
        REQUEST_VALIDATION,
        400,
        "Validation Failed: 1: Invalid inference_id; '.elser-2-elasticsearch' can contain lowercase alphanumeric "
        "(a-z and 0-9), hyphens or underscores; must start and end with alphanumeric;",
    )
    assert error.status == 400


@pytest.mark.parametrize(
    ("path_task_type", "body", "reason"),
    [
        (None, {"service": "elser", "service_settings": {}}, "model is missing required setting [task_type]"),
        (None, {"task_type": "any", "service": "elser"}, "task_type [any] is not valid type for inference"),
        ("sparse_embedding", {"task_type": "bad"}, "Unknown task_type [bad]"),
        (
            "text_embedding",
            {"task_type": " Sparse_Embedding"},
            "Cannot resolve conflicting task_type parameter in the request URL [text_embedding] "
            "and the request body [ Sparse_Embedding]",
        ),
        (
            "sparse_embedding",
            {"service_settings": {}},
            "Inference endpoint configuration is missing the [service] setting",
        ),
        ("sparse_embedding", {"service": "openai", "service_settings": {}}, "Unknown service [openai]"),
        ("sparse_embedding", {"service": "elser"}, "Missing required field [service_settings]"),
        (
            "sparse_embedding",
            {"service": "elser", "service_settings": None},
            "Missing required field [service_settings]",
        ),
        (
            "text_embedding",
            {"service": "elser", "service_settings": {}},
            "The [elasticsearch] service does not support task type [text_embedding]",
        ),
        (
            None,
            {"task_type": "rerank", "service": "elasticsearch", "service_settings": {}},
            "The [elasticsearch] service does not support task type [rerank]",
        ),
    ],
)
def test_top_level_rules(path_task_type: str | None, body: dict[str, Any], reason: str) -> None:
    expect_error(lambda: put(body, path_task_type), STATUS, 400, reason)


def test_task_type_in_body_only() -> None:
    request = put({"task_type": "sparse_embedding", **elser(num_threads=1, num_allocations=1)}, None)
    assert request.task_type.value == "sparse_embedding"


def test_unknown_top_level_keys_in_java_map_order() -> None:
    body = {**es(num_threads=1, num_allocations=1), "foo": "bar", "zzz": [1, 2.0], "extra": {"a": None}}
    expect_error(
        lambda: put(body),
        STATUS,
        400,
        "Model configuration contains settings [{foo=bar, extra={a=null}, zzz=[1, 2.0]}] unknown to the "
        "[elasticsearch] service",
    )


def test_id_taken_by_a_trained_model_comes_after_the_service() -> None:
    expect_error(
        lambda: put({"service": "openai"}, trained_model_ids={"my-elser"}), STATUS, 400, "Unknown service [openai]"
    )
    expect_error(
        lambda: put(elser(num_threads=1, num_allocations=1), trained_model_ids={"my-elser"}),
        STATUS,
        400,
        "Inference endpoint IDs must be unique. "
        "Requested inference endpoint ID [my-elser] matches existing trained model ID(s) but must not.",
    )


@pytest.mark.parametrize(
    ("body", "java_class", "target"),
    [
        ({"service": 5}, "java.lang.Integer", "java.lang.String"),
        ({"task_type": ["sparse_embedding"], "service": "elser"}, "java.util.ArrayList", "java.lang.String"),
        ({"service": "elser", "service_settings": "x"}, "java.lang.String", "java.util.Map"),
        ({"service": "elser", "service_settings": {"model_id": 2}}, "java.lang.Integer", "java.lang.String"),
    ],
)
def test_blind_java_casts_answer_400(body: dict[str, Any], java_class: str, target: str) -> None:
    expect_error(
        lambda: put(body),
        "class_cast_exception",
        400,
        f"class {java_class} cannot be cast to class {target} "
        f"({java_class} and {target} are in module java.base of loader 'bootstrap')",
    )


# --- service_settings (T3) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "messages"),
    [
        ({"num_allocations": 1}, ["[service_settings] does not contain the required setting [num_threads]"]),
        (
            {"num_threads": 1, "num_allocations": 0},
            [
                "[service_settings] Invalid value [0]. [num_allocations] must be a positive integer",
                "[service_settings] does not contain one of the required settings [num_allocations, "
                "adaptive_allocations]",
            ],
        ),
        (
            {"num_threads": -2, "num_allocations": 1},
            ["[service_settings] Invalid value [-2]. [num_threads] must be a positive integer"],
        ),
        (
            {"num_threads": 1},
            [
                "[service_settings] does not contain one of the required settings [num_allocations, "
                "adaptive_allocations]"
            ],
        ),
        (
            {"num_threads": "abc", "num_allocations": 1},
            ["field [num_threads] is not of the expected type. The value [abc] cannot be converted to a [Integer]"],
        ),
        (
            {"num_threads": 1.0, "num_allocations": True},
            [
                "field [num_allocations] is not of the expected type. The value [true] cannot be converted to a "
                "[Integer]",
                "field [num_threads] is not of the expected type. The value [1.0] cannot be converted to a [Integer]",
                "[service_settings] does not contain one of the required settings [num_allocations, "
                "adaptive_allocations]",
            ],
        ),
        (
            # null is absent.
            {"num_threads": None, "num_allocations": 1},
            ["[service_settings] does not contain the required setting [num_threads]"],
        ),
    ],
)
def test_service_settings_rules(settings: dict[str, Any], messages: list[str]) -> None:
    error = expect_error(lambda: put(elser(**settings)), VALIDATION, 400, failed(*messages))
    assert error.errors == messages


def test_unknown_service_settings_come_after_validation() -> None:
    expect_error(
        lambda: put(elser(num_threads=1, num_allocations=1, foo="bar", bar=1)),
        STATUS,
        400,
        "Model configuration contains settings [{bar=1, foo=bar}] unknown to the [elasticsearch] service",
    )
    expect_error(
        lambda: put(elser(num_threads=1, foo="bar")),
        VALIDATION,
        400,
        failed(
            "[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]"
        ),
    )


# --- adaptive_allocations (T4) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adaptive", "messages"),
    [
        (
            {"enabled": True, "foo": 1, "bar": 2},
            [
                "[adaptive_allocations] does not allow the setting [bar]",
                "[adaptive_allocations] does not allow the setting [foo]",
            ],
        ),
        ({"enabled": True, "min_number_of_allocations": -1}, []),  # -1 is Elasticsearch's "reset" placeholder
        (
            {"enabled": True, "min_number_of_allocations": -2},
            ["[min_number_of_allocations] must be a non-negative integer or null"],
        ),
        (
            {"enabled": True, "max_number_of_allocations": 0},
            ["[max_number_of_allocations] must be a positive integer or null"],
        ),
        (
            {"enabled": True, "min_number_of_allocations": 4, "max_number_of_allocations": 2},
            ["[min_number_of_allocations] must not be larger than [max_number_of_allocations]"],
        ),
        (
            {"enabled": "yes", "min_number_of_allocations": 1.5},
            [
                "field [enabled] is not of the expected type. The value [yes] cannot be converted to a [Boolean]",
                "field [min_number_of_allocations] is not of the expected type. The value [1.5] cannot be "
                "converted to a [Integer]",
            ],
        ),
    ],
)
def test_adaptive_allocations_rules(adaptive: dict[str, Any], messages: list[str]) -> None:
    body = elser(num_threads=1, adaptive_allocations=adaptive)
    if not messages:
        assert put(body).endpoint is not None
        return
    error = expect_error(lambda: put(body), VALIDATION, 400, failed(*messages))
    assert error.errors == messages


def test_adaptive_and_settings_errors_are_collected_in_order() -> None:
    settings = {"num_allocations": 0, "num_threads": "x", "adaptive_allocations": {"max_number_of_allocations": 0}}
    messages = [
        "[service_settings] Invalid value [0]. [num_allocations] must be a positive integer",
        "field [num_threads] is not of the expected type. The value [x] cannot be converted to a [Integer]",
        "[max_number_of_allocations] must be a positive integer or null",
    ]
    expect_error(lambda: put(elser(**settings)), VALIDATION, 400, failed(*messages))


def test_adaptive_echo_prints_enabled_false_when_unset() -> None:
    request = put(elser(num_threads=1, adaptive_allocations={"max_number_of_allocations": 4}))
    assert request.endpoint is not None
    assert request.endpoint.to_dict()["service_settings"]["adaptive_allocations"] == {
        "enabled": False,
        "max_number_of_allocations": 4,
    }


# --- deployment checks before storing (T5) --------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "messages"),
    [
        (
            {"num_threads": 3, "num_allocations": 1},
            ["[threads_per_allocation] must be a power of 2 less than or equal to 32"],
        ),
        (
            {"num_threads": 64, "num_allocations": 1},
            ["[threads_per_allocation] must be a power of 2 less than or equal to 32"],
        ),
        (
            {"num_threads": 1, "num_allocations": 2, "adaptive_allocations": {"enabled": True}},
            ["[number_of_allocations] cannot be set if adaptive allocations is enabled"],
        ),
        (
            {"num_threads": 6, "num_allocations": 2, "adaptive_allocations": {"enabled": True}},
            [
                "[number_of_allocations] cannot be set if adaptive allocations is enabled",
                "[threads_per_allocation] must be a power of 2 less than or equal to 32",
            ],
        ),
    ],
)
def test_deployment_rules_before_storing(settings: dict[str, Any], messages: list[str]) -> None:
    expect_error(lambda: put(elser(**settings)), REQUEST_VALIDATION, 400, failed(*messages))


@pytest.mark.parametrize("threads", [1, 2, 4, 8, 16, 32])
def test_power_of_two_threads_pass(threads: int) -> None:
    put(elser(num_threads=threads, num_allocations=1))


def test_allocations_with_adaptive_disabled_pass() -> None:
    put(elser(num_threads=1, num_allocations=2, adaptive_allocations={"enabled": False}))


# --- chunking (T6) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunking",
    [
        {"strategy": "sentence", "max_chunk_size": 301},
        {"strategy": "word", "max_chunk_size": 400, "overlap": 10},
        {"strategy": "recursive", "max_chunk_size": 1000},
    ],
)
def test_elser_refuses_chunks_above_300(chunking: dict[str, Any]) -> None:
    body = {**elser(num_threads=1, num_allocations=1), "chunking_settings": chunking}
    expect_error(
        lambda: put(body),
        ILLEGAL,
        400,
        "ELSER based models do not support chunk sizes larger than 300. Requested chunk size: "
        f"{chunking['max_chunk_size']}",
    )


def test_chunk_size_300_and_none_pass() -> None:
    sentence = {"strategy": "sentence", "max_chunk_size": 300}
    put({**elser(num_threads=1, num_allocations=1), "chunking_settings": sentence})
    put({**elser(num_threads=1, num_allocations=1), "chunking_settings": {"strategy": "none"}})


def test_chunking_errors_come_before_unknown_keys_and_settings() -> None:
    body = {"service": "elser", "service_settings": {}, "foo": 1, "chunking_settings": {"strategy": "x"}}
    expect_error(lambda: put(body), ILLEGAL, 400, "Invalid chunkingStrategy x")


def test_chunking_defaults() -> None:
    request = put({**elser(num_threads=1, num_allocations=1), "chunking_settings": {}})
    assert request.endpoint is not None
    assert request.endpoint.to_dict()["chunking_settings"] == {
        "strategy": "sentence",
        "max_chunk_size": 250,
        "sentence_overlap": 1,
    }


# --- model selection and warnings -----------------------------------------------------------------

NULL_MODEL_WARNING = (
    "Putting elasticsearch service inference endpoints (including elser service) without a model_id field is"
    " deprecated and will be removed in a future release. Please specify a model_id field."
)


def elser_warning(default: str) -> str:
    return (
        "The [elser] service is deprecated and will be removed in a future release. Use the [elasticsearch] service "
        f"instead, with [model_id] set to [{default}] in the [service_settings]"
    )


@pytest.mark.parametrize(
    ("body", "platform", "model_id", "warnings"),
    [
        (elser(num_threads=1, num_allocations=1), LINUX, LINUX, [NULL_MODEL_WARNING, elser_warning(LINUX)]),
        (elser(num_threads=1, num_allocations=1), AGNOSTIC, AGNOSTIC, [NULL_MODEL_WARNING, elser_warning(AGNOSTIC)]),
        # The warning names the platform default even when the user sent the agnostic id.
        (elser(num_threads=1, num_allocations=1, model_id=AGNOSTIC), LINUX, AGNOSTIC, [elser_warning(LINUX)]),
        (es(num_threads=1, num_allocations=1), LINUX, LINUX, []),
        (es(num_threads=1, num_allocations=1, model_id=AGNOSTIC), LINUX, AGNOSTIC, []),
        (es(num_threads=1, num_allocations=1, model_id=AGNOSTIC), AGNOSTIC, AGNOSTIC, []),
    ],
)
def test_model_selection_and_warnings(body: dict[str, Any], platform: str, model_id: str, warnings: list[str]) -> None:
    request = put(body, platform_default=platform)
    assert request.endpoint is not None
    assert request.endpoint.model_id == model_id
    assert request.endpoint.service == "elasticsearch"
    assert list(request.warnings) == warnings


@pytest.mark.parametrize(
    ("model_id", "platform"),
    [(".elser_model_1", LINUX), (LINUX, AGNOSTIC), (".elser_model_1", AGNOSTIC)],
)
def test_other_elser_ids_are_refused(model_id: str, platform: str) -> None:
    expect_error(
        lambda: put(es(num_threads=1, num_allocations=1, model_id=model_id), platform_default=platform),
        ILLEGAL,
        400,
        "Error parsing request config, model id does not match any models available on this platform. "
        f"Was [{model_id}]. You may need to use a platform agnostic model.",
    )


def test_elasticsearch_service_needs_a_model_id() -> None:
    body = {"service": "elasticsearch", "service_settings": {"num_threads": 1, "num_allocations": 1}}
    expect_error(lambda: put(body), ILLEGAL, 400, "Error parsing service settings, model_id must be provided")


def test_model_id_is_checked_before_the_settings() -> None:
    body = {"service": "elasticsearch", "service_settings": {"num_threads": "x", "model_id": ".elser_model_1"}}
    expect_error(
        lambda: put(body),
        VALIDATION,
        400,
        failed(
            "field [num_threads] is not of the expected type. The value [x] cannot be converted to a [Integer]",
            "[service_settings] does not contain one of the required settings [num_allocations, adaptive_allocations]",
        ),
    )


def test_unknown_model_is_refused_as_eland() -> None:
    expect_error(
        lambda: put(es(num_threads=1, num_allocations=1, model_id="my-model")),
        ILLEGAL,
        400,
        "Error parsing request config, model id does not match any models available on this platform. "
        "Was [my-model]. You may need to load it into the cluster using eland.",
    )


def test_known_custom_model_keeps_its_task_settings_strict() -> None:
    body = es(num_threads=1, num_allocations=1, model_id="my-splade")
    request = put(body, known_models={"my-splade"})
    assert request.endpoint is not None and request.endpoint.model_id == "my-splade"
    expect_error(
        lambda: put({**body, "task_settings": {"k": 1}}, known_models={"my-splade"}),
        STATUS,
        400,
        "Model configuration contains settings [{k=1}] unknown to the [elasticsearch] service",
    )
    # Only ELSER refuses chunks above 300.
    put({**body, "chunking_settings": {"strategy": "sentence", "max_chunk_size": 500}}, known_models={"my-splade"})


def test_elser_task_settings_are_ignored() -> None:
    request = put({**elser(num_threads=1, num_allocations=1), "task_settings": {"anything": 1}})
    assert request.endpoint is not None
    assert "task_settings" not in request.endpoint.to_dict()


def test_platform_default_comes_from_the_catalogue() -> None:
    request = parse_put_request("my-elser", "sparse_embedding", elser(num_threads=1, num_allocations=1))
    assert request.endpoint is not None
    assert request.endpoint.model_id == platform_default_elser_model()


# --- existing deployments -----------------------------------------------------------------------


def test_deployment_id_defers_to_the_deployment() -> None:
    # Other service settings are not read at all when a deployment is named.
    body = {"service": "elasticsearch", "service_settings": {"deployment_id": "shared", "num_threads": "ignored"}}
    request = put(body)
    assert request.endpoint is None and request.deployment_id == "shared"
    assert request.warnings == ()
    endpoint = request.with_deployment(3, 2, None, ".elser_model_2")
    assert endpoint.to_dict() == {
        "inference_id": "my-elser",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {
            "num_allocations": 3,
            "num_threads": 2,
            "model_id": ".elser_model_2",
            "deployment_id": "shared",
        },
        "chunking_settings": {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1},
    }
    assert endpoint.deployment_id == "shared" and not endpoint.owns_deployment


def test_deployment_copies_adaptive_settings() -> None:
    request = put({"service": "elasticsearch", "service_settings": {"deployment_id": "d"}})
    endpoint = request.with_deployment(0, 1, AdaptiveAllocations(True, 0, 4), LINUX)
    assert list(endpoint.to_dict()["service_settings"]) == [
        "num_allocations",
        "num_threads",
        "model_id",
        "adaptive_allocations",
        "deployment_id",
    ]


def test_deployment_model_must_match_the_request() -> None:
    request = put({"service": "elasticsearch", "service_settings": {"deployment_id": "d", "model_id": "wanted"}})
    assert request.with_deployment(1, 1, None, "wanted").model_id == "wanted"
    expect_error(
        lambda: request.with_deployment(1, 1, None, "actual"),
        STATUS,
        400,
        "Deployment [d] uses model [actual] which does not match the model [wanted] in the request.",
    )


def test_missing_deployment() -> None:
    request = put({"service": "elasticsearch", "service_settings": {"deployment_id": "gone"}})
    expect_error(raising(request.deployment_not_found()), STATUS, 404, "Cannot find deployment [gone]")


# --- the echo -----------------------------------------------------------------------------------


def test_put_echo_is_elasticsearchs() -> None:
    request = put(
        {
            "service": "elser",
            "service_settings": {"num_threads": 2, "num_allocations": 1},
            "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 20},
        }
    )
    assert request.endpoint is not None
    body = request.endpoint.to_dict()
    assert body == {
        "inference_id": "my-elser",
        "task_type": "sparse_embedding",
        "service": "elasticsearch",
        "service_settings": {"num_allocations": 1, "num_threads": 2, "model_id": LINUX},
        "chunking_settings": {"strategy": "word", "max_chunk_size": 100, "overlap": 20},
    }
    assert list(body) == ["inference_id", "task_type", "service", "service_settings", "chunking_settings"]
    assert list(body["service_settings"]) == ["num_allocations", "num_threads", "model_id"]
    assert request.endpoint.deployment_id == "my-elser" and request.endpoint.owns_deployment


def test_a_body_that_is_not_an_object_is_empty() -> None:
    not_an_object: Any = ["x"]
    reason = "Inference endpoint configuration is missing the [service] setting"
    expect_error(lambda: put(not_an_object), STATUS, 400, reason)
