"""`adaptive_allocations` of an endpoint (table T4): how a request's object is read
(`ServiceUtils.removeAsAdaptiveAllocationsSettings`). The value and its rules are
`deployments.adaptive.AdaptiveAllocations`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from elserve.deployments.adaptive import AdaptiveAllocations
from elserve.errors import ValidationErrors
from elserve.java_text import parsed_map_order
from elserve.settings_map import cast_map, invalid_setting_message, remove_as_type

__all__ = ["KEY", "AdaptiveAllocations", "remove_adaptive_allocations"]

KEY = "adaptive_allocations"


def remove_adaptive_allocations(
    source: MutableMapping[str, Any], errors: ValidationErrors, key: str = KEY
) -> AdaptiveAllocations | None:
    """Pops and reads `adaptive_allocations`; every problem goes to `errors` (the object is still returned)."""
    raw = source.pop(key, None)
    settings_map = cast_map(raw)
    if settings_map is None:
        return None
    parsed_keys = len(settings_map)
    settings = AdaptiveAllocations(
        remove_as_type(settings_map, "enabled", "Boolean", errors),
        remove_as_type(settings_map, "min_number_of_allocations", "Integer", errors),
        remove_as_type(settings_map, "max_number_of_allocations", "Integer", errors),
    )
    # Leftover keys are reported one by one, in the parsed HashMap's order.
    for name in parsed_map_order(list(settings_map), parsed_keys):
        errors.add(invalid_setting_message(name, key))
    for message in settings.validation_errors():
        errors.add(message)
    return settings
