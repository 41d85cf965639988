"""elserve's TOML config file (`--config`): what it may set, read as Elasticsearch's dotted setting names."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

# The config file's keys for the model repository: elserve's own and Elasticsearch's setting name.
MODEL_REPOSITORY_KEYS = ("model_repository", "xpack.ml.model_repository")


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML config file's settings, flattened to dotted keys (`[xpack.ml] model_repository = ...` is
    `xpack.ml.model_repository`). Raises ValueError naming the file when it cannot be read."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"the config file [{path}] cannot be read: {exc}") from exc
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", doc)
    return flat


def model_repository_from(config: dict[str, Any]) -> str | None:
    """The model repository a config file names, if it names one."""
    for key in MODEL_REPOSITORY_KEYS:
        value = config.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"[{key}] must be a string URL")
            return value
    return None
