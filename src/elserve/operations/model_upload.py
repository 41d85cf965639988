"""Models uploaded as eland uploads them: configuration, definition parts, vocabulary.

`PUT _ml/trained_models/{id}` registers the configuration (`fully_defined: false`);
`PUT .../definition/{part}` stores each base64-decoded part of the TorchScript file;
`PUT .../vocabulary` stores the vocabulary. Until all are there they wait in
`<staging>/<model_id>/` (each file written whole, then renamed: a crash leaves whole parts
or none). Once the configuration, every part and the vocabulary are present, the model is
assembled in the Elastic layout (`runtime/layout.py`) and committed into the model cache by one
rename, under the sha256 of its files (content-addressed: the same model uploaded twice is one
copy); the registry entry then names it and becomes `fully_defined: true`.

Sources: `PutTrainedModelDefinitionPartAction.java` (the part's validation),
`TransportPutTrainedModelDefinitionPartAction.java`, `PutTrainedModelVocabularyAction.java`,
`TrainedModelProvider.java` (a stored part or vocabulary is not overwritten: 400
`resource_already_exists_exception`), `TransportDeleteTrainedModelAction.java`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from elserve.errors import (
    ActionRequestValidationException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    StatusException,
)
from elserve.models.cache import MARKER, ModelCache
from elserve.models.registry import ModelRegistry, RegisteredModel
from elserve.runtime.config import ModelFormatError
from elserve.runtime.layout import ELASTIC_CONFIG, ELASTIC_MODEL, ELASTIC_VOCAB
from elserve.runtime.memory import read_shapes
from elserve.runtime.torchscript import check_elastic_model

log = logging.getLogger("elserve.models")

# `PutTrainedModelDefinitionPartAction.MAX_NUM_NATIVE_DEFINITION_PARTS`.
MAX_PARTS = 10_000
_META = "parts.json"
_PART = "part-{:05d}"


def not_found(model_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Could not find trained model [{model_id}]")


def part_errors(part: int, total_definition_length: int, total_parts: int) -> list[str]:
    """`PutTrainedModelDefinitionPartAction.Request.validate`, in its order."""
    errors = []
    if part < 0:
        errors.append("[part] must be greater or equal to 0")
    if total_parts <= 0:
        errors.append("[total_parts] must be greater than 0")
    if total_parts > MAX_PARTS:
        errors.append(f"[total_parts] must be less than or equal to {MAX_PARTS}")
    if total_definition_length <= 0:
        errors.append("[total_definition_length] must be greater than 0")
    if part >= total_parts:
        errors.append("[part] must be less than total_parts")
    return errors


def vocabulary_errors(vocabulary: list[str], scores: list[float] | None) -> list[str]:
    """`PutTrainedModelVocabularyAction.Request.validate`."""
    if not vocabulary:
        return ["[vocabulary] must not be empty"]
    if scores and len(scores) != len(vocabulary):
        return ["[scores] must have same length as [vocabulary]"]
    return []


def _write_whole(path: Path, data: bytes) -> None:
    """Write `path` so that it is either absent or complete, even after a crash."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ModelUploads:
    def __init__(self, registry: ModelRegistry, cache: ModelCache, staging: Path) -> None:
        self.registry = registry
        self._cache = cache
        self._staging = staging
        self._lock = threading.Lock()  # one change at a time: parts of one model may come concurrently

    def _dir(self, model_id: str) -> Path:
        return self._staging / model_id

    def create(self, config: dict[str, Any]) -> RegisteredModel:
        """Register a validated configuration (`trained_model_config.parse_put_config`)."""
        model_id = config["model_id"]
        model = RegisteredModel(model_id=model_id, config=config)
        with self._lock:
            if not self.registry.add(model):
                raise ResourceAlreadyExistsException(f"Trained machine learning model [{model_id}] already exists")
            shutil.rmtree(self._dir(model_id), ignore_errors=True)  # left by a deleted model of this id
        return model

    def _registered(self, model_id: str) -> RegisteredModel:
        model = self.registry.get(model_id)
        if model is None:
            raise not_found(model_id)
        return model

    def announced_length(self, model_id: str) -> int:
        """`total_definition_length` as the parts announce it (Elasticsearch's model size for an
        upload under way), 0 before the first part."""
        meta = self._dir(model_id) / _META
        return int(json.loads(meta.read_text())["total_definition_length"]) if meta.exists() else 0

    def put_part(self, model_id: str, part: int, data: bytes, total_definition_length: int, total_parts: int) -> None:
        errors = part_errors(part, total_definition_length, total_parts)
        if errors:
            raise ActionRequestValidationException(errors)
        with self._lock:
            model = self._registered(model_id)
            directory = self._dir(model_id)
            path = directory / _PART.format(part)
            if model.fully_defined or path.exists():
                raise ResourceAlreadyExistsException(
                    f"Trained machine learning model chunked doc [{model_id}][{part}] already exists"
                )
            directory.mkdir(parents=True, exist_ok=True)
            meta_path = directory / _META
            expected = {"total_definition_length": total_definition_length, "total_parts": total_parts}
            if meta_path.exists():
                stored = json.loads(meta_path.read_text())
                if stored != expected:
                    # Elasticsearch stores each part's own totals and fails at load; elserve says so now.
                    raise StatusException(
                        f"part [{part}] of model [{model_id}] gives total_definition_length "
                        f"[{total_definition_length}] and total_parts [{total_parts}], but earlier parts gave "
                        f"[{stored['total_definition_length']}] and [{stored['total_parts']}]",
                        400,
                    )
            else:
                _write_whole(meta_path, json.dumps(expected).encode())
            _write_whole(path, data)
            self._complete_if_ready(model)

    def put_vocabulary(self, model_id: str, vocabulary: list[str], merges: list[str] | None, scores: list[float] | None) -> None:
        errors = vocabulary_errors(vocabulary, scores)
        if errors:
            raise ActionRequestValidationException(errors)
        with self._lock:
            model = self._registered(model_id)
            path = self._dir(model_id) / ELASTIC_VOCAB
            if model.fully_defined or path.exists():
                # Messages.INFERENCE_TRAINED_MODEL_VOCAB_EXISTS (text unconfirmed)
                raise ResourceAlreadyExistsException(
                    f"Trained machine learning model [{model_id}] vocabulary already exists"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            document: dict[str, Any] = {"vocabulary": vocabulary}
            if merges:
                document["merges"] = merges
            if scores:
                document["scores"] = scores
            _write_whole(path, json.dumps(document).encode())
            self._complete_if_ready(model)

    def _complete_if_ready(self, model: RegisteredModel) -> None:
        directory = self._dir(model.model_id)
        meta_path = directory / _META
        if not meta_path.exists() or not (directory / ELASTIC_VOCAB).exists():
            return
        meta = json.loads(meta_path.read_text())
        parts = [directory / _PART.format(i) for i in range(meta["total_parts"])]
        if not all(p.exists() for p in parts):
            return
        length = sum(p.stat().st_size for p in parts)
        if length != meta["total_definition_length"]:
            raise StatusException(
                f"the definition parts of model [{model.model_id}] hold [{length}] bytes, not the "
                f"total_definition_length [{meta['total_definition_length']}]; delete the model and upload it again",
                400,
            )
        key = self._install(model, parts, directory / ELASTIC_VOCAB)
        installed = replace(model, cache_key=key, sha256=key, fully_defined=True)
        self.registry.put(installed)
        shutil.rmtree(directory, ignore_errors=True)
        try:  # sized now, in this worker thread, for the stats to come
            read_shapes(self._cache.root / key)
        except (ModelFormatError, OSError, RuntimeError) as e:
            log.warning("[%s] cannot size the uploaded model from its files: %s", model.model_id, e)
        log.info("[%s] uploaded model fully defined: %s", model.model_id, self._cache.root / key)

    def _install(self, model: RegisteredModel, parts: list[Path], vocab: Path) -> str:
        """Assemble the Elastic layout beside the cache, then commit it under its sha256 by one rename."""
        scratch = self._cache.root / f".upload-{uuid.uuid4().hex}"
        scratch.mkdir(parents=True)
        try:
            digest = hashlib.sha256()
            with open(scratch / ELASTIC_MODEL, "wb") as out:
                for part in parts:
                    data = part.read_bytes()
                    out.write(data)
                    digest.update(data)
                out.flush()
                os.fsync(out.fileno())
            # The configuration without the id: the same model under two ids is one copy.
            runtime_config = {k: v for k, v in model.config.items() if k != "model_id"}
            files = {ELASTIC_VOCAB: vocab.read_bytes(), ELASTIC_CONFIG: json.dumps(runtime_config, indent=2, sort_keys=True).encode()}
            for name, data in files.items():
                _write_whole(scratch / name, data)
                digest.update(name.encode() + b"\0" + data)
            key = digest.hexdigest()
            try:
                check_elastic_model(scratch)
            except ModelFormatError as e:
                # Elasticsearch stores any bytes and fails at deployment; elserve says why now (400).
                raise StatusException(
                    f"model [{model.model_id}] cannot be served: {e}; delete the model and upload it again", 400
                ) from e
            final = self._cache.root / key
            if (final / MARKER).is_file():
                return key  # the same files are installed already
            record = {
                "installed_for": model.model_id,
                "source": "upload",
                "sha256": key,
                "installed_at": int(time.time() * 1000),
                "files": sorted([ELASTIC_MODEL, *files]),
            }
            _write_whole(scratch / MARKER, json.dumps(record, indent=2).encode())
            if final.exists():
                shutil.rmtree(final)  # without a marker: not an install of ours
            os.rename(scratch, final)
            return key
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def delete(self, model_id: str) -> None:
        """Forget an uploaded model, its waiting parts, and its installed files unless another model
        shares them (content-addressed). The caller has stopped its deployments."""
        with self._lock:
            model = self.registry.get(model_id)
            if model is None or not self.registry.remove(model_id):
                raise not_found(model_id)
            shutil.rmtree(self._dir(model_id), ignore_errors=True)
            key = model.cache_key
            if key is None or any(other.cache_key == key for other in self.registry.list()):
                return
            installed = self._cache.root / key
            if installed.is_dir():
                # Renamed away first: a directory half deleted is never taken for an install.
                trash = self._cache.root / f".deleted-{key}-{uuid.uuid4().hex}"
                os.rename(installed, trash)
                shutil.rmtree(trash, ignore_errors=True)
