"""Chunking settings: one test per rule (T6), the echo shapes and the stored form."""

from __future__ import annotations

from typing import Any

import pytest

from elserve.chunking.settings import (
    DEFAULT_CHUNKING_SETTINGS,
    OLD_DEFAULT_CHUNKING_SETTINGS,
    SEPARATOR_GROUPS,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
    chunking_settings_from_persisted,
    parse_chunking_settings,
)
from tests.support.errors import expect_error

VALIDATION = "validation_exception"


def failed(*messages: str) -> str:
    return "Validation Failed: " + "".join(f"{i}: {m};" for i, m in enumerate(messages, 1))


@pytest.mark.parametrize("value", [None, {}])
def test_absent_or_empty_is_sentence_250_1(value: Any) -> None:
    settings = parse_chunking_settings(value)
    assert settings == SentenceChunkingSettings(250, 1)
    assert settings.to_dict() == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
    assert list(settings.to_dict()) == ["strategy", "max_chunk_size", "sentence_overlap"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"strategy": "word", "max_chunk_size": 100, "overlap": 50}, WordChunkingSettings(100, 50)),
        ({"strategy": "word", "max_chunk_size": 10, "overlap": 1}, WordChunkingSettings(10, 1)),
        ({"strategy": "sentence", "max_chunk_size": 20}, SentenceChunkingSettings(20, 1)),
        ({"strategy": "sentence", "max_chunk_size": 300, "sentence_overlap": 0}, SentenceChunkingSettings(300, 0)),
        # No general cap any more: only ELSER endpoints refuse more than 300 (an endpoint rule).
        ({"strategy": "sentence", "max_chunk_size": 5000}, SentenceChunkingSettings(5000, 1)),
        ({"strategy": "recursive", "max_chunk_size": 10}, RecursiveChunkingSettings(10, SEPARATOR_GROUPS["plaintext"])),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separators": ["\n\n", "\n"]},
            RecursiveChunkingSettings(50, ("\n\n", "\n")),
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 50, "separator_group": " Markdown "},
            RecursiveChunkingSettings(50, SEPARATOR_GROUPS["markdown"]),
        ),
        ({"strategy": "none"}, NoneChunkingSettings()),
    ],
)
def test_valid_settings(value: dict[str, Any], expected: Any) -> None:
    assert parse_chunking_settings(value) == expected


def test_echo_shapes_and_key_order() -> None:
    word = parse_chunking_settings({"overlap": 20, "strategy": "word", "max_chunk_size": 40}).to_dict()
    assert list(word.items()) == [("strategy", "word"), ("max_chunk_size", 40), ("overlap", 20)]
    value = {"strategy": "recursive", "max_chunk_size": 200, "separator_group": "plaintext"}
    recursive = parse_chunking_settings(value)
    assert recursive.to_dict() == {
        "strategy": "recursive",
        "max_chunk_size": 200,
        "separators": ["(?<!\\n)\\n\\n(?!\\n)", "(?<!\\n)\\n(?!\\n)"],
    }
    assert list(recursive.to_dict()) == ["strategy", "max_chunk_size", "separators"]
    assert parse_chunking_settings({"strategy": "none"}).to_dict() == {"strategy": "none"}


def test_markdown_group_is_expanded_with_real_newlines() -> None:
    settings = parse_chunking_settings({"strategy": "recursive", "max_chunk_size": 200, "separator_group": "markdown"})
    assert settings.to_dict()["separators"] == [
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n^(?!\\s*$).*\\n-{1,}\\n",
        "\n^(?!\\s*$).*\\n={1,}\\n",
    ]


@pytest.mark.parametrize(
    ("value", "error_type", "reason"),
    [
        (
            {"max_chunk_size": 100},
            "illegal_argument_exception",
            "Can't generate Chunker without ChunkingStrategy provided",
        ),
        ({"strategy": "paragraph"}, "illegal_argument_exception", "Invalid chunkingStrategy paragraph"),
        # Strategies are case-sensitive.
        ({"strategy": "Word"}, "illegal_argument_exception", "Invalid chunkingStrategy Word"),
        ({"strategy": 5}, "illegal_argument_exception", "Invalid chunkingStrategy 5"),
    ],
)
def test_strategy_rules(value: dict[str, Any], error_type: str, reason: str) -> None:
    expect_error(lambda: parse_chunking_settings(value), error_type, 400, reason)


def test_null_strategy_is_java_null_pointer() -> None:
    expect_error(
        lambda: parse_chunking_settings({"strategy": None}),
        "null_pointer_exception",
        400,
        'Cannot invoke "Object.toString()" because the return value of "java.util.Map.get(Object)" is null',
    )


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        (
            {"strategy": "word", "overlap": 1},
            ["[chunking_settings] does not contain the required setting [max_chunk_size]"],
        ),
        (
            {"strategy": "word", "max_chunk_size": 0, "overlap": 1},
            ["[chunking_settings] Invalid value [0]. [max_chunk_size] must be a positive integer"],
        ),
        (
            {"strategy": "word", "max_chunk_size": 5, "overlap": 1},
            ["[chunking_settings] Invalid value [5.0]. [max_chunk_size] must be greater than or equal to [10.0]"],
        ),
        (
            {"strategy": "word", "max_chunk_size": "abc", "overlap": 1},
            ["field [max_chunk_size] is not of the expected type. The value [abc] cannot be converted to a [Integer]"],
        ),
        (
            {"strategy": "word", "max_chunk_size": 100.0, "overlap": 1},
            [
                "field [max_chunk_size] is not of the expected type. The value [100.0] cannot be converted to a "
                "[Integer]"
            ],
        ),
        (
            {"strategy": "word", "max_chunk_size": 2**31, "overlap": 1},
            [
                "field [max_chunk_size] is not of the expected type. The value [2147483648] cannot be converted to a "
                "[Integer]"
            ],
        ),
        (
            {"strategy": "word", "max_chunk_size": 100},
            ["[chunking_settings] does not contain the required setting [overlap]"],
        ),
        (
            {"strategy": "word", "max_chunk_size": 100, "overlap": 0},
            ["[chunking_settings] Invalid value [0]. [overlap] must be a positive integer"],
        ),
        (
            {"strategy": "word", "max_chunk_size": 100, "overlap": 60},
            ["[chunking_settings] Invalid value [60.0]. [overlap] must be less than or equal to [50.0]"],
        ),
        # Every problem is collected: unknown keys (in Java HashMap order) come first.
        (
            {"strategy": "word", "max_chunk_size": 5, "overlap": 3, "foo": 1, "bar": 2},
            [
                "Word based chunking settings can not have the following settings: [bar, foo]",
                "[chunking_settings] Invalid value [5.0]. [max_chunk_size] must be greater than or equal to [10.0]",
            ],
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 19},
            ["[chunking_settings] Invalid value [19.0]. [max_chunk_size] must be greater than or equal to [20.0]"],
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 2},
            ["sentence_overlap[2] must be either 0 or 1"],
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": -1},
            ["sentence_overlap[-1] must be either 0 or 1"],
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": True},
            [
                "field [sentence_overlap] is not of the expected type. The value [true] cannot be converted to a "
                "[Integer]"
            ],
        ),
        (
            {"strategy": "sentence", "max_chunk_size": 100, "overlap": 1},
            ["Sentence based chunking settings can not have the following settings: [overlap]"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 9},
            ["[chunking_settings] Invalid value [9.0]. [max_chunk_size] must be greater than or equal to [10.0]"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "html"},
            [
                "[chunking_settings] Invalid value [html] received. [separator_group] must be one of [markdown, "
                "plaintext]"
            ],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separator_group": ""},
            ["[chunking_settings] Invalid value empty string. [separator_group] must be a non-empty string"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "markdown", "separators": ["a"]},
            ["Recursive chunking settings can not have both separators and separator_set"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separators": []},
            ["Recursive chunking settings can not have an empty list of separators"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separators": "\n"},
            ["field [separators] is not of the expected type. The value [\n] cannot be converted to a [List]"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separators": ["a", 1, 2.5]},
            [
                "field [separators] is not of the expected type. The value [1] cannot be converted to a [String]",
                "field [separators] is not of the expected type. The value [2.5] cannot be converted to a [String]",
            ],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "separators": ["x"] * 51},
            ["separators list size [51] must not exceed [50]"],
        ),
        (
            {"strategy": "recursive", "max_chunk_size": 100, "overlap": 1},
            ["Recursive chunking settings can not have the following settings: [overlap]"],
        ),
    ],
)
def test_field_rules(value: dict[str, Any], messages: list[str]) -> None:
    error = expect_error(lambda: parse_chunking_settings(value), VALIDATION, 400, failed(*messages))
    assert error.errors == messages


def test_invalid_keys_print_in_java_hash_map_order() -> None:
    # Checked against Java 17: new HashMap<>(parsed) iterates [bar, overlap, max_chunk_size, strategy, foo].
    value = {"strategy": "word", "max_chunk_size": 100, "overlap": 10, "foo": 1, "bar": 2}
    expect_error(
        lambda: parse_chunking_settings(value),
        VALIDATION,
        400,
        failed("Word based chunking settings can not have the following settings: [bar, foo]"),
    )


def test_none_strategy_ignores_other_keys() -> None:
    # ChunkingSettingsBuilder returns NoneChunkingSettings.INSTANCE without reading the rest.
    assert parse_chunking_settings({"strategy": "none", "max_chunk_size": 10}) == NoneChunkingSettings()


def test_separator_limit_is_only_for_requests() -> None:
    value = {"strategy": "recursive", "max_chunk_size": 100, "separators": ["x"] * 51}
    assert parse_chunking_settings(value, enforce_request_limits=False).separators == ("x",) * 51


@pytest.mark.parametrize(
    "settings",
    [
        WordChunkingSettings(100, 10),
        SentenceChunkingSettings(250, 0),
        RecursiveChunkingSettings(30, SEPARATOR_GROUPS["markdown"]),
        RecursiveChunkingSettings(30, ("a",)),
        NoneChunkingSettings(),
    ],
)
def test_persisted_round_trip(settings: Any) -> None:
    assert chunking_settings_from_persisted(settings.to_dict()) == settings


def test_persisted_without_settings_is_the_old_default() -> None:
    assert chunking_settings_from_persisted(None) == OLD_DEFAULT_CHUNKING_SETTINGS
    assert OLD_DEFAULT_CHUNKING_SETTINGS.to_dict() == {"strategy": "word", "max_chunk_size": 250, "overlap": 100}
    assert DEFAULT_CHUNKING_SETTINGS.to_dict() == {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}
