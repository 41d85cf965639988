"""`adaptive_allocations` of an endpoint (table T4).

Sources: `CORE/ml/inference/assignment/AdaptiveAllocationsSettings.java`
(`validate`, `toXContent`: `enabled` prints `false` when unset, min/max only when
set) and `ServiceUtils.removeAsAdaptiveAllocationsSettings` (how a request's
object is read).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from elserve.errors import ValidationErrors
from elserve.java_text import parsed_map_order
from elserve.settings_map import cast_map, invalid_setting_message, remove_as_type

KEY = "adaptive_allocations"


@dataclass(frozen=True)
class AdaptiveAllocations:
    enabled: bool | None = None
    min_number_of_allocations: int | None = None
    max_number_of_allocations: int | None = None

    @property
    def is_enabled(self) -> bool:
        return self.enabled is True

    def validation_errors(self) -> list[str]:
        """`AdaptiveAllocationsSettings.validate()` (-1 is the "reset" placeholder, not checked)."""
        errors = []
        # None (absent) and -1 (reset) are not checked.
        low = None if self.min_number_of_allocations == -1 else self.min_number_of_allocations
        high = None if self.max_number_of_allocations == -1 else self.max_number_of_allocations
        if low is not None and low < 0:
            errors.append("[min_number_of_allocations] must be a non-negative integer or null")
        if high is not None and high < 1:
            errors.append("[max_number_of_allocations] must be a positive integer or null")
        if low is not None and high is not None and low > high:
            errors.append("[min_number_of_allocations] must not be larger than [max_number_of_allocations]")
        return errors

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"enabled": self.enabled is True}
        if self.min_number_of_allocations is not None:
            body["min_number_of_allocations"] = self.min_number_of_allocations
        if self.max_number_of_allocations is not None:
            body["max_number_of_allocations"] = self.max_number_of_allocations
        return body

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> AdaptiveAllocations:
        """Stored settings, trusted."""
        return cls(value.get("enabled"), value.get("min_number_of_allocations"), value.get("max_number_of_allocations"))


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
