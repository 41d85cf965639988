"""Chunking settings: one frozen value per strategy, parsed and echoed as Elasticsearch does.

Sources (`CORE/` = `x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/`):
`CORE/inference/chunking/ChunkingSettingsBuilder.java` (defaults: absent and `{}`
differ), `WordBoundaryChunkingSettings.java`, `SentenceBoundaryChunkingSettings.java`,
`RecursiveChunkingSettings.java`, `NoneChunkingSettings.java`, `SeparatorGroup.java`,
`server/.../inference/ChunkingStrategy.java`, `CORE/inference/InferenceUtils.java`.

Each strategy gathers all its problems into one `validation_exception`.
The ELSER-specific cap (300) is an endpoint rule, in `endpoints/`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from elserve.chunking.java_regex import separator_error
from elserve.errors import IllegalArgumentException, NullPointerException, ValidationErrors
from elserve.java_text import (
    copy_capacity,
    hash_map_order,
    java_list_text,
    java_text,
    java_trim,
    parsed_capacity,
)
from elserve.settings_map import (
    extract_optional_string,
    extract_required_positive_integer_at_least,
    extract_required_positive_integer_at_most,
    invalid_type_message,
    remove_as_type,
)

SCOPE = "chunking_settings"
# RecursiveChunkingSettings.MAX_SEPARATOR_COUNT, enforced on user requests (PUT, _update).
MAX_SEPARATOR_COUNT = 50


class ChunkingStrategy(StrEnum):
    WORD = "word"
    SENTENCE = "sentence"
    RECURSIVE = "recursive"
    NONE = "none"


# SeparatorGroup.getSeparators(): Java regexes. The plaintext ones hold the two
# characters `\n` (a regex escape); the markdown headings hold real newlines.
SEPARATOR_GROUPS: dict[str, tuple[str, ...]] = {
    "plaintext": (r"(?<!\n)\n\n(?!\n)", r"(?<!\n)\n(?!\n)"),
    "markdown": (
        "\n# ",
        "\n## ",
        "\n### ",
        "\n#### ",
        "\n##### ",
        "\n###### ",
        "\n" + r"^(?!\s*$).*\n-{1,}\n",
        "\n" + r"^(?!\s*$).*\n={1,}\n",
    ),
}


@dataclass(frozen=True)
class WordChunkingSettings:
    max_chunk_size: int
    overlap: int

    strategy: ClassVar[ChunkingStrategy] = ChunkingStrategy.WORD
    MAX_CHUNK_SIZE_LOWER_LIMIT: ClassVar[int] = 10

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": "word", "max_chunk_size": self.max_chunk_size, "overlap": self.overlap}


@dataclass(frozen=True)
class SentenceChunkingSettings:
    max_chunk_size: int
    sentence_overlap: int = 1

    strategy: ClassVar[ChunkingStrategy] = ChunkingStrategy.SENTENCE
    MAX_CHUNK_SIZE_LOWER_LIMIT: ClassVar[int] = 20

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": "sentence",
            "max_chunk_size": self.max_chunk_size,
            "sentence_overlap": self.sentence_overlap,
        }


@dataclass(frozen=True)
class RecursiveChunkingSettings:
    max_chunk_size: int
    # A separator group is expanded here: the echo shows `separators`, never the group.
    separators: tuple[str, ...] = SEPARATOR_GROUPS["plaintext"]

    strategy: ClassVar[ChunkingStrategy] = ChunkingStrategy.RECURSIVE
    MAX_CHUNK_SIZE_LOWER_LIMIT: ClassVar[int] = 10

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": "recursive", "max_chunk_size": self.max_chunk_size, "separators": list(self.separators)}


@dataclass(frozen=True)
class NoneChunkingSettings:
    strategy: ClassVar[ChunkingStrategy] = ChunkingStrategy.NONE

    @property
    def max_chunk_size(self) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": "none"}


ChunkingSettings = WordChunkingSettings | SentenceChunkingSettings | RecursiveChunkingSettings | NoneChunkingSettings

# What `chunking_settings` absent or `{}` means on a request.
DEFAULT_CHUNKING_SETTINGS = SentenceChunkingSettings(max_chunk_size=250, sentence_overlap=1)
# What an endpoint stored without chunking settings (created before 8.16) uses and shows.
OLD_DEFAULT_CHUNKING_SETTINGS = WordChunkingSettings(max_chunk_size=250, overlap=100)


def parse_chunking_settings(
    value: Mapping[str, Any] | None, *, enforce_request_limits: bool = True
) -> ChunkingSettings:
    """A request's `chunking_settings` (absent or `{}`: sentence/250/1).

    Raises `illegal_argument_exception` for a missing or unknown strategy and one
    `validation_exception` with every problem of the strategy's fields.
    """
    if not value:
        return DEFAULT_CHUNKING_SETTINGS
    if "strategy" not in value:
        raise IllegalArgumentException("Can't generate Chunker without ChunkingStrategy provided")
    raw_strategy = value["strategy"]
    if raw_strategy is None:
        raise NullPointerException(
            'Cannot invoke "Object.toString()" because the return value of "java.util.Map.get(Object)" is null'
        )
    strategy_text = java_text(raw_strategy)
    try:
        strategy = ChunkingStrategy(strategy_text)
    except ValueError:
        raise IllegalArgumentException(f"Invalid chunkingStrategy {strategy_text}") from None
    if strategy is ChunkingStrategy.NONE:
        # ChunkingSettingsBuilder returns NoneChunkingSettings.INSTANCE without looking at other keys.
        return NoneChunkingSettings()
    # Each strategy reads a `new HashMap<>(settings)` copy; its key order shows in the invalid-keys message.
    keys = hash_map_order(hash_map_order(list(value), parsed_capacity(len(value))), copy_capacity(len(value)))
    settings = {key: value[key] for key in keys}
    if strategy is ChunkingStrategy.WORD:
        return _parse_word(settings)
    if strategy is ChunkingStrategy.SENTENCE:
        return _parse_sentence(settings)
    return _parse_recursive(settings, enforce_request_limits)


def _invalid_keys(settings: dict[str, Any], valid: frozenset[str], prefix: str, errors: ValidationErrors) -> None:
    invalid = [key for key in settings if key not in valid]
    if invalid:
        errors.add(f"{prefix} {java_list_text(invalid)}")


def _parse_word(settings: dict[str, Any]) -> WordChunkingSettings:
    errors = ValidationErrors()
    _invalid_keys(
        settings,
        frozenset({"strategy", "max_chunk_size", "overlap"}),
        "Word based chunking settings can not have the following settings:",
        errors,
    )
    max_size = extract_required_positive_integer_at_least(
        settings, "max_chunk_size", WordChunkingSettings.MAX_CHUNK_SIZE_LOWER_LIMIT, SCOPE, errors
    )
    overlap = None
    if max_size is not None:
        overlap = extract_required_positive_integer_at_most(settings, "overlap", max_size // 2, SCOPE, errors)
    errors.raise_if_any()
    assert max_size is not None and overlap is not None
    return WordChunkingSettings(max_chunk_size=max_size, overlap=overlap)


def _parse_sentence(settings: dict[str, Any]) -> SentenceChunkingSettings:
    errors = ValidationErrors()
    _invalid_keys(
        settings,
        frozenset({"strategy", "max_chunk_size", "sentence_overlap"}),
        "Sentence based chunking settings can not have the following settings:",
        errors,
    )
    max_size = extract_required_positive_integer_at_least(
        settings, "max_chunk_size", SentenceChunkingSettings.MAX_CHUNK_SIZE_LOWER_LIMIT, SCOPE, errors
    )
    overlap = remove_as_type(settings, "sentence_overlap", "Integer", errors)
    if overlap is None:
        overlap = 1
    elif overlap > 1 or overlap < 0:
        errors.add(f"sentence_overlap[{overlap}] must be either 0 or 1")
    errors.raise_if_any()
    assert max_size is not None
    return SentenceChunkingSettings(max_chunk_size=max_size, sentence_overlap=overlap)


def _parse_recursive(settings: dict[str, Any], enforce_request_limits: bool) -> RecursiveChunkingSettings:
    errors = ValidationErrors()
    _invalid_keys(
        settings,
        frozenset({"strategy", "max_chunk_size", "separator_group", "separators"}),
        "Recursive chunking settings can not have the following settings:",
        errors,
    )
    max_size = extract_required_positive_integer_at_least(
        settings, "max_chunk_size", RecursiveChunkingSettings.MAX_CHUNK_SIZE_LOWER_LIMIT, SCOPE, errors
    )
    group = _extract_separator_group(settings, errors)
    separators = _extract_separators(settings, errors)
    if separators is not None and group is not None:
        errors.add("Recursive chunking settings can not have both separators and separator_set")
    if group is not None:
        separators = list(SEPARATOR_GROUPS[group])
    elif separators is not None and not separators:
        errors.add("Recursive chunking settings can not have an empty list of separators")
    if enforce_request_limits and separators is not None and len(separators) > MAX_SEPARATOR_COUNT:
        errors.add(f"separators list size [{len(separators)}] must not exceed [{MAX_SEPARATOR_COUNT}]")
    if enforce_request_limits and separators is not None and group is None:
        _check_separator_regexes(separators, errors)
    errors.raise_if_any()
    assert max_size is not None
    if separators is None:
        return RecursiveChunkingSettings(max_chunk_size=max_size)
    return RecursiveChunkingSettings(max_chunk_size=max_size, separators=tuple(separators))


def _extract_separator_group(settings: dict[str, Any], errors: ValidationErrors) -> str | None:
    name = extract_optional_string(settings, "separator_group", SCOPE, errors)
    if name is None:
        return None
    # SeparatorGroup.fromString: valueOf(name.trim().toUpperCase(Locale.ROOT)).
    constant = java_trim(name).upper()
    if constant in ("PLAINTEXT", "MARKDOWN"):
        return constant.lower()
    errors.add(
        f"[{SCOPE}] Invalid value [{name}] received. [separator_group] must be one of "
        f"[{', '.join(sorted(SEPARATOR_GROUPS))}]"
    )
    return None


def _extract_separators(settings: dict[str, Any], errors: ValidationErrors) -> list[str] | None:
    before = len(errors.messages)
    separators = remove_as_type(settings, "separators", "List", errors)
    if separators is None or len(errors.messages) > before:
        return None
    for item in separators:
        if item is None:
            raise NullPointerException('Cannot invoke "Object.getClass()" because "o" is null')
        if not isinstance(item, str):
            errors.add(invalid_type_message("separators", item, "String"))
    if len(errors.messages) > before:
        return None
    return list(separators)


def _check_separator_regexes(separators: list[str], errors: ValidationErrors) -> None:
    """elserve's own rule: Elasticsearch stores any string and fails only when it chunks; here the PUT is refused."""
    for separator in separators:
        reason = separator_error(separator)
        if reason is not None:
            errors.add(
                f"[{SCOPE}] Invalid value [{separator}]. [separators] must be valid regular expressions: {reason}"
            )


def chunking_settings_from_persisted(value: Mapping[str, Any] | None) -> ChunkingSettings:
    """Stored chunking settings, trusted as written (absent: word/250/100, the pre-8.16 default)."""
    if value is None:
        return OLD_DEFAULT_CHUNKING_SETTINGS
    if not value:
        return DEFAULT_CHUNKING_SETTINGS
    strategy = ChunkingStrategy(value["strategy"])
    if strategy is ChunkingStrategy.NONE:
        return NoneChunkingSettings()
    if strategy is ChunkingStrategy.WORD:
        return WordChunkingSettings(int(value["max_chunk_size"]), int(value["overlap"]))
    if strategy is ChunkingStrategy.SENTENCE:
        return SentenceChunkingSettings(int(value["max_chunk_size"]), int(value.get("sentence_overlap", 1)))
    separators = value.get("separators")
    if separators is None and value.get("separator_group") is not None:
        separators = SEPARATOR_GROUPS[str(value["separator_group"]).strip().lower()]
    if separators is None:
        return RecursiveChunkingSettings(int(value["max_chunk_size"]))
    return RecursiveChunkingSettings(int(value["max_chunk_size"]), tuple(separators))
