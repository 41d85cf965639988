"""Stashed values and object paths, as Elasticsearch's runner has them (`Stash.java`,
`ObjectPath.java`, `SetSection.java` in elastic/elasticsearch `test/yaml-rest-runner` and
`test/framework`).

- `set: {path: name}` stashes a value of the last response; `$name` (or `${name}`) used as a
  whole value is that value, `${name}` inside a string is replaced by its text, and a `$name`
  segment of a path or a map key is replaced too. `$body` is the last response's whole body.
- A path is dot-separated (`\\.` escapes a dot); a segment indexes a list when the value is one.
- `_arbitrary_key_` as the last segment of a `set` path takes any key of that object.
"""

from __future__ import annotations

import re
from typing import Any

ARBITRARY_KEY = "_arbitrary_key_"
_EMBEDDED = re.compile(r"\$\{([^}]+)\}")


class PathError(AssertionError):
    pass


def split_path(path: str) -> list[str]:
    parts = re.split(r"(?<!\\)\.", path)
    return [p.replace("\\.", ".") for p in parts if p != ""]


class Stash:
    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def clear(self) -> None:
        self._values.clear()

    def put(self, name: str, value: Any) -> None:
        self._values[name] = value

    @staticmethod
    def is_key(value: Any) -> bool:
        return isinstance(value, str) and value.startswith("$") and len(value) > 1

    def get(self, key: str) -> Any:
        """The value of `$name`, `${name}` or `$name.some.path`."""
        name = key[1:]
        if name.startswith("{") and name.endswith("}"):
            name = name[1:-1]
        head, *rest = split_path(name)
        if head not in self._values:
            raise PathError(f"nothing stashed as [{head}] (stashed: {sorted(self._values)})")
        value = self._values[head]
        return evaluate(value, ".".join(rest), self) if rest else value

    def replace(self, value: Any) -> Any:
        """`value` with every stashed reference in it (whole values, embedded `${name}`, map keys)
        replaced."""
        if isinstance(value, str):
            if self.is_key(value) and (_EMBEDDED.fullmatch(value) or not _EMBEDDED.search(value)):
                return self.get(value)
            return _EMBEDDED.sub(lambda m: to_text(self.get("$" + m.group(1))), value)
        if isinstance(value, dict):
            return {(self.replace(k) if self.is_key(k) else k): self.replace(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.replace(v) for v in value]
        return value


def to_text(value: Any) -> str:
    """A value as Java's `toString` prints it (what the runner compares and interpolates)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_text(k)}={to_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_text(v) for v in value) + "]"
    return str(value)


def evaluate(document: Any, path: str, stash: Stash) -> Any:
    """The value at `path` in `document`, or None where the path leads nowhere."""
    value = document
    for raw in split_path(path):
        part = to_text(stash.get(raw)) if stash.is_key(raw) else raw
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list):
            try:
                value = value[int(part)]
            except (ValueError, IndexError):
                return None
        else:
            return None
        if value is None:
            return None
    return value


def set_from(document: Any, path: str, name: str, stash: Stash) -> None:
    """`set: {path: name}`."""
    parts = split_path(path)
    if parts and parts[-1] == ARBITRARY_KEY:
        parent = evaluate(document, ".".join(parts[:-1]), stash)
        if not isinstance(parent, dict) or not parent:
            raise PathError(f"[{path}]: no object with a key to take")
        stash.put(name, next(iter(parent)))
        return
    value = evaluate(document, path, stash)
    if value is None:
        raise PathError(f"[{path}]: nothing to stash in the response")
    stash.put(name, value)
