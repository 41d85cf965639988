"""Reading a settings map from a request body the way Elasticsearch's helpers do.

Mirrors `INF/services/ServiceUtils.java` and `CORE/inference/InferenceUtils.java`:
each `extract_*` pops its key from a (copied) map, adds any message to one
`ValidationErrors` and returns None on error, so a caller raises every problem of
a settings object at once. JSON `null` counts as absent. Types follow Jackson:
a JSON integer beyond 32 bits is a `Long`, not an `Integer`; `true` is not a number.

Where Elasticsearch casts blindly (`(String) map.get(..)`, `(Map) map.remove(..)`)
a wrong type is a Java `ClassCastException` (a 500 in Elasticsearch, a 400 here: the request is at fault); `class_cast`
reproduces that answer.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from elserve.errors import ClassCastException, StatusException, ValidationErrors
from elserve.java_text import (
    is_java_int,
    java_class_name,
    java_double,
    java_map_text,
    java_text,
    parsed_capacity,
)

_JAVA_CLASSES = {
    "String": "java.lang.String",
    "Integer": "java.lang.Integer",
    "Long": "java.lang.Long",
    "BigInteger": "java.math.BigInteger",
    "Double": "java.lang.Double",
    "Boolean": "java.lang.Boolean",
    "HashMap": "java.util.HashMap",
    "ArrayList": "java.util.ArrayList",
    "Map": "java.util.Map",
}


def class_cast(value: Any, target: str) -> ClassCastException:
    """The JDK 11+ text of a failed cast of `value` to `target` (`String` or `Map`)."""
    source = _JAVA_CLASSES[java_class_name(value)]
    wanted = _JAVA_CLASSES[target]
    return ClassCastException(
        f"class {source} cannot be cast to class {wanted} "
        f"({source} and {wanted} are in module java.base of loader 'bootstrap')"
    )


def cast_string(value: Any) -> str | None:
    """`(String) value`."""
    if value is None or isinstance(value, str):
        return value
    raise class_cast(value, "String")


def cast_map(value: Any) -> dict[str, Any] | None:
    """`(Map<String, Object>) value`, as a copy the caller may pop from."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    raise class_cast(value, "Map")


def remove_map_or_throw_if_null(source: MutableMapping[str, Any], key: str) -> dict[str, Any]:
    """`ServiceUtils.removeFromMapOrThrowIfNull`."""
    value = cast_map(source.pop(key, None))
    if value is None:
        raise StatusException(f"Missing required field [{key}]", 400)
    return value


def remove_map_or_default_empty(source: MutableMapping[str, Any], key: str) -> dict[str, Any]:
    """`ServiceUtils.removeFromMapOrDefaultEmpty`."""
    value = cast_map(source.pop(key, None))
    return {} if value is None else value


def invalid_type_message(key: str, value: Any, expected: str) -> str:
    return (
        f"field [{key}] is not of the expected type. "
        f"The value [{java_text(value)}] cannot be converted to a [{expected}]"
    )


def missing_setting_message(key: str, scope: str) -> str:
    return f"[{scope}] does not contain the required setting [{key}]"


def missing_one_of_message(keys: list[str], scope: str) -> str:
    return f"[{scope}] does not contain one of the required settings [{', '.join(keys)}]"


def must_be_positive_message(key: str, scope: str, value: int) -> str:
    return f"[{scope}] Invalid value [{value}]. [{key}] must be a positive integer"


def must_be_non_empty_message(key: str, scope: str) -> str:
    return f"[{scope}] Invalid value empty string. [{key}] must be a non-empty string"


def at_least_message(key: str, scope: str, value: int, minimum: int) -> str:
    # The newest wording (InferenceUtils); 8.16-9.1 said "must be a greater than or equal to".
    return (
        f"[{scope}] Invalid value [{java_double(float(value))}]. "
        f"[{key}] must be greater than or equal to [{java_double(float(minimum))}]"
    )


def at_most_message(key: str, scope: str, value: int, maximum: int) -> str:
    return (
        f"[{scope}] Invalid value [{java_double(float(value))}]. "
        f"[{key}] must be less than or equal to [{java_double(float(maximum))}]"
    )


def invalid_setting_message(key: str, scope: str) -> str:
    return f"[{scope}] does not allow the setting [{key}]"


_CHECKS = {
    "Integer": is_java_int,
    "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "List": lambda v: isinstance(v, list),
}


def remove_as_type(source: MutableMapping[str, Any], key: str, expected: str, errors: ValidationErrors) -> Any:
    """`removeAsType(map, key, type, validationException)`: None when absent or mistyped (then
    with the error added)."""
    value = source.pop(key, None)
    if value is None:
        return None
    if _CHECKS[expected](value):
        return value
    errors.add(invalid_type_message(key, value, expected))
    return None


def extract_optional_string(
    source: MutableMapping[str, Any], key: str, scope: str, errors: ValidationErrors
) -> str | None:
    value = remove_as_type(source, key, "String", errors)
    if value == "":
        errors.add(must_be_non_empty_message(key, scope))
        return None
    return value


def extract_optional_positive_integer(
    source: MutableMapping[str, Any], key: str, scope: str, errors: ValidationErrors
) -> int | None:
    value = remove_as_type(source, key, "Integer", errors)
    if value is not None and value <= 0:
        errors.add(must_be_positive_message(key, scope, value))
        return None
    return value


def extract_required_positive_integer(
    source: MutableMapping[str, Any], key: str, scope: str, errors: ValidationErrors
) -> int | None:
    before = len(errors.messages)
    value = remove_as_type(source, key, "Integer", errors)
    if value is None:
        if len(errors.messages) == before:  # absent, not mistyped (that error is already there)
            errors.add(missing_setting_message(key, scope))
        return None
    if value <= 0:
        errors.add(must_be_positive_message(key, scope, value))
        return None
    return value


def extract_required_positive_integer_at_least(
    source: MutableMapping[str, Any], key: str, minimum: int, scope: str, errors: ValidationErrors
) -> int | None:
    value = extract_required_positive_integer(source, key, scope, errors)
    if value is None or value >= minimum:
        return value
    errors.add(at_least_message(key, scope, value, minimum))
    return None


def extract_required_positive_integer_at_most(
    source: MutableMapping[str, Any], key: str, maximum: int, scope: str, errors: ValidationErrors
) -> int | None:
    # Unlike the at-least variant, Elasticsearch keeps (returns) the value past the maximum.
    value = extract_required_positive_integer(source, key, scope, errors)
    if value is not None and value > maximum:
        errors.add(at_most_message(key, scope, value, maximum))
    return value


def unknown_settings_error(remaining: Mapping[str, Any], service: str, parsed_keys: int) -> StatusException:
    """`ServiceUtils.unknownSettingsError`: the leftover map printed as a Java `HashMap`.

    `parsed_keys` is how many keys the parser put in that map (its table size
    depends on it, and so does the printed order).
    """
    text = java_map_text(remaining, parsed_capacity(parsed_keys))
    return StatusException(f"Model configuration contains settings [{text}] unknown to the [{service}] service", 400)
