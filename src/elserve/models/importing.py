"""`elserve models import`, `list` and `rm` over a data directory: the counterpart of eland's
`eland_import_hub_model`, registering what it installs in the model registry.

An import installs the source into the model cache (checked, atomic, resumable
as every install), then records a `RegisteredModel` with the source pinned
(`hf:` to the commit it resolved to), its checksum and its cache key, and the
trained model configuration Elasticsearch would show: from the package's
metadata for `elastic:`, from the installed files otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elserve.errors import ResourceAlreadyExistsException, ResourceNotFoundException, StatusException
from elserve.models.cache import ModelCache
from elserve.models.catalogue import UPLOAD_SCHEME, Catalogue, ModelSpec
from elserve.models.downloads import ModelDownloads
from elserve.models.registry import RegisteredModel
from elserve.models.sources import ELASTIC_CONFIG, ModelDownloadError
from elserve.models.sources.elastic import ElasticRepositorySource, elastic_source
from elserve.models.sources.file import FileSource, is_archive, source_sha256


def normalize_source(source: str, model_repository: str) -> str:
    """The source as recorded: `elastic:<id>` against the configured repository, `file:` absolute."""
    scheme, sep, rest = source.partition(":")
    if not sep or not rest:
        raise ModelDownloadError(
            f"model source [{source}] must be [hf:<repo>[@<revision>]], [file:<directory or archive>] "
            "or [elastic:<packaged model id>]",
            status=400,
        )
    if scheme == "elastic":
        parsed = ElasticRepositorySource.parse(rest if "#" in rest else f"{model_repository}#{rest}", None)
        return elastic_source(parsed.repository, parsed.packaged_model_id)
    if scheme == "file":
        return f"file:{FileSource.parse(rest, None).path.resolve()}"
    if scheme in ("hf", "pip"):
        return source
    raise ModelDownloadError(f"unsupported model source [{source}]; expected hf:, file: or elastic:", status=400)


def _tokenization(model_dir: Path) -> dict[str, Any]:
    """Elasticsearch's `tokenization` for a Hugging Face checkpoint (BERT-style WordPiece)."""
    settings: dict[str, Any] = {"do_lower_case": True, "with_special_tokens": True, "truncate": "first"}
    try:
        tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
        if isinstance(tokenizer_config.get("do_lower_case"), bool):
            settings["do_lower_case"] = tokenizer_config["do_lower_case"]
    except (OSError, ValueError):
        pass
    try:
        config = json.loads((model_dir / "config.json").read_text())
        if isinstance(config.get("max_position_embeddings"), int):
            settings["max_sequence_length"] = min(512, config["max_position_embeddings"])
    except (OSError, ValueError):
        pass
    return {"bert": settings}


def trained_model_config(model_dir: Path, source: str) -> dict[str, Any]:
    """The configuration `GET /_ml/trained_models` shows for an imported model."""
    config: dict[str, Any] = {
        "description": f"Imported by elserve from [{source}]",
        "model_type": "pytorch",
        "input": {"field_names": ["text_field"]},
        "tags": [],
    }
    package = model_dir / ELASTIC_CONFIG
    if package.is_file():
        metadata = json.loads(package.read_text())
        for key in ("description", "model_type", "inference_config", "input", "tags", "metadata", "prefix_strings"):
            if metadata.get(key) is not None:
                config[key] = metadata[key]
    config.setdefault("inference_config", {"text_expansion": {"tokenization": _tokenization(model_dir)}})
    return config


def import_model(
    source: str,
    model_id: str,
    *,
    catalogue: Catalogue,
    cache: ModelCache,
    sha256: str | None = None,
    description: str | None = None,
    progress_bar: bool | None = None,
) -> RegisteredModel:
    """Install `source` and register it as `model_id`; the registry must be the catalogue's.

    Raises `ResourceAlreadyExistsException` for an id that exists (built-in or registered),
    `ModelDownloadError` when the source fails (then nothing is registered).
    """
    registry = catalogue.registry
    if registry is None:
        raise ValueError("importing needs a catalogue with a registry")
    if catalogue.resolve(model_id) is not None or registry.get(model_id) is not None:
        raise ResourceAlreadyExistsException(f"Trained machine learning model [{model_id}] already exists")
    source = normalize_source(source, catalogue.model_repository)
    spec = ModelSpec(model_id, source, sha256)
    downloads = ModelDownloads(cache, Catalogue([spec]), progress_bar=progress_bar)
    path = asyncio.run(downloads.ensure(model_id))
    fetched = cache.record(path).get("fetched", {})
    pinned = source
    if source.startswith("hf:") and fetched.get("revision"):
        pinned = f"hf:{source[3:].partition('@')[0]}@{fetched['revision']}"
    if sha256 is None:
        if source.startswith("elastic:"):
            sha256 = fetched.get("sha256")
        elif source.startswith("file:"):
            local = FileSource.parse(source[5:], None).path
            sha256 = source_sha256(local) if is_archive(local) else None  # a directory: the copy is the record
    config = trained_model_config(path, pinned)
    if description is not None:
        config["description"] = description
    model = RegisteredModel(model_id, config, source=pinned, sha256=sha256, cache_key=path.name, fully_defined=True)
    if not registry.add(model):
        raise ResourceAlreadyExistsException(f"Trained machine learning model [{model_id}] already exists")
    return model


@dataclass(frozen=True)
class ModelListing:
    model_id: str
    source: str
    installed: Path | None
    description: str
    builtin: bool


def list_models(catalogue: Catalogue, cache: ModelCache) -> list[ModelListing]:
    """Every model of the catalogue, with the directory it is installed in (if it is)."""
    listing = []
    for model_id in catalogue.model_ids():
        spec = catalogue.get(model_id)
        served = cache.installed_spec(spec) or spec
        listing.append(
            ModelListing(
                model_id, served.source, cache.path_for(spec), served.description, catalogue.is_builtin(model_id)
            )
        )
    return listing


def remove_model(
    model_id: str, *, catalogue: Catalogue, cache: ModelCache, users: Callable[[str], Iterable[str]]
) -> list[Path]:
    """Forget an imported model and delete its files; for a built-in id, delete its installed files only
    (the next use installs again: the preferred source if it can be reached now). Refused (409) while an
    endpoint or deployment uses the model, or another model in use shares its files. Returns the
    directories deleted."""
    spec = catalogue.resolve(model_id)
    if spec is None:
        raise ResourceNotFoundException(f"Could not find trained model [{model_id}]")
    installed = cache.installed_spec(spec)
    keys = {installed.cache_key} if installed is not None else set()
    sharing = [m for m in catalogue.model_ids() if m != model_id and keys & _keys_of(catalogue.get(m), cache)]
    for candidate in [model_id, *sharing]:
        in_use = sorted(users(candidate))
        if in_use:
            raise StatusException(
                f"Cannot delete model [{model_id}] as it is currently used by {in_use}"
                + (f" (through [{candidate}], which shares its files)" if candidate != model_id else ""),
                409,
            )
    registry = catalogue.registry
    if registry is not None and not catalogue.is_builtin(model_id):
        registry.remove(model_id)
    if any(catalogue.get(m).source.startswith(UPLOAD_SCHEME) for m in sharing):
        return []  # an uploaded model's files cannot be fetched again: they stay
    removed = []
    for key in sorted(keys):
        if cache.remove(key):
            removed.append(cache.root / key)
    return removed


def _keys_of(spec: ModelSpec, cache: ModelCache) -> set[str]:
    installed = cache.installed_spec(spec)
    return {installed.cache_key} if installed is not None else set()


__all__ = ["ModelListing", "import_model", "list_models", "normalize_source", "remove_model", "trained_model_config"]
