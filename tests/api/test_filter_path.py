import pytest

from elserve.api.filter_path import apply_filter_path

BODY = {
    "count": 2,
    "endpoints": [
        {"inference_id": "a", "service_settings": {"model_id": "m1", "num_threads": 1}},
        {"inference_id": "b", "service_settings": {"model_id": "m2", "num_threads": 2}},
    ],
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("count", {"count": 2}),
        ("endpoints.inference_id", {"endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]}),
        (
            "endpoints.*.model_id",
            {"endpoints": [{"service_settings": {"model_id": "m1"}}, {"service_settings": {"model_id": "m2"}}]},
        ),
        (
            "**.num_threads",
            {"endpoints": [{"service_settings": {"num_threads": 1}}, {"service_settings": {"num_threads": 2}}]},
        ),
        ("count,endpoints.inference_id", {"count": 2, "endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]}),
        ("nothing", {}),
        ("-endpoints", {"count": 2}),
        ("-endpoints.service_settings", {"count": 2, "endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]}),
        (
            "-**.model_id",
            {
                "count": 2,
                "endpoints": [
                    {"inference_id": "a", "service_settings": {"num_threads": 1}},
                    {"inference_id": "b", "service_settings": {"num_threads": 2}},
                ],
            },
        ),
        ("endpoints.inf*", {"endpoints": [{"inference_id": "a"}, {"inference_id": "b"}]}),
    ],
)
def test_filter_path(expression: str, expected: dict) -> None:
    assert apply_filter_path(BODY, expression) == expected
