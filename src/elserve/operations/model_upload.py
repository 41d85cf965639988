"""Models uploaded as eland uploads them: configuration, definition parts, vocabulary.

`PUT _ml/trained_models/{id}` registers the configuration (`fully_defined: false`);
`PUT .../definition/{part}` stores each base64-decoded part of the TorchScript file;
`PUT .../vocabulary` stores the vocabulary. Until all are there they wait in
`<staging>/<model_id>/` (`upload_staging.py`: each file written whole, then renamed: a crash leaves whole parts
or none). Once the configuration, every part and the vocabulary are present, the model is
assembled in the Elastic layout (`runtime/layout.py`) beside them, checked in a child process under
a time and a memory limit (`upload_check.py`: uploaded code never runs in the server), and committed
into the model cache by one rename, under the sha256 of its files (content-addressed: the same model
uploaded twice is one copy); the registry entry then names it and becomes `fully_defined: true`.

Bounds (`upload_room.py`): the parts may not add up to more than the declared
`total_definition_length`, the declared length must fit the uploads' store cap, and nothing is
written once the disk would pass its flood-stage watermark.

A crash at any point is repaired at the next start (`recover`): staging left by a deleted or
completed model and assemblies cut short are removed, and a completion cut short is run again.

Sources: `PutTrainedModelDefinitionPartAction.java` (the part's validation),
`TransportPutTrainedModelDefinitionPartAction.java`, `PutTrainedModelVocabularyAction.java`,
`TrainedModelProvider.java` (a stored part or vocabulary is not overwritten: 400
`resource_already_exists_exception`), `TransportDeleteTrainedModelAction.java`.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from elserve.errors import (
    ActionRequestValidationException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    StatusException,
)
from elserve.models.cache import ModelCache, model_size_bytes
from elserve.models.registry import ModelRegistry, RegisteredModel
from elserve.operations.upload_check import CheckFailed, CheckInterrupted, CheckLimits, RunningChecks, run_check
from elserve.operations.upload_install import ASSEMBLY_PREFIX, LEGACY_PREFIXES, install
from elserve.operations.upload_requests import part_errors, vocabulary_errors
from elserve.operations.upload_room import check_disk, check_store, write_error
from elserve.operations.upload_staging import (
    META,
    PART,
    TRASH_PREFIX,
    Staged,
    move_to_trash,
    read_meta,
    remove,
    write_whole,
)
from elserve.runtime.layout import ELASTIC_VOCAB
from elserve.runtime.memory import SHAPES_FILE
from elserve.settings import UploadLimits
from elserve.store.disk_space import parse_flood_stage

log = logging.getLogger("elserve.models")


def not_found(model_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Could not find trained model [{model_id}]")


class ModelUploads:
    def __init__(
        self, registry: ModelRegistry, cache: ModelCache, staging: Path, limits: UploadLimits | None = None
    ) -> None:
        self.registry = registry
        self._cache = cache
        self._staging = staging
        self._limits = limits or UploadLimits()
        self._flood_stage = parse_flood_stage(self._limits.flood_stage)
        self._check = CheckLimits(self._limits.check_timeout_s, self._limits.check_memory_bytes)
        self._running = RunningChecks()
        # Short changes only (files and registry entries): never held while a model is assembled or checked.
        self._lock = threading.Lock()
        self._staged: dict[str, Staged] = {}
        self._completing: set[tuple[str, int]] = set()  # (model id, create time) being assembled and checked

    def _dir(self, model_id: str) -> Path:
        return self._staging / model_id

    def create(self, config: dict[str, Any]) -> RegisteredModel:
        """Register a validated configuration (`trained_model_config.parse_put_config`)."""
        model_id = config["model_id"]
        model = RegisteredModel(model_id=model_id, config=config)
        with self._lock:
            check_store(self.store_bytes(), 0, self._limits.store_limit_bytes, model_id)
            check_disk(self._staging.parent, self._flood_stage, 0, 0, model_id)  # a full disk blocks the index
            if not self.registry.add(model):
                raise ResourceAlreadyExistsException(f"Trained machine learning model [{model_id}] already exists")
            self._staged.pop(model_id, None)
            trash = move_to_trash(self._dir(model_id))  # left by a deleted model of this id
        remove(trash)
        return model

    def _registered(self, model_id: str) -> RegisteredModel:
        model = self.registry.get(model_id)
        if model is None:
            raise not_found(model_id)
        return model

    def announced_length(self, model_id: str) -> int:
        """`total_definition_length` as the parts announce it (Elasticsearch's model size for an
        upload under way), 0 before the first part."""
        meta = self._read_meta(model_id)
        return 0 if meta is None else int(meta["total_definition_length"])

    def _read_meta(self, model_id: str) -> dict[str, int] | None:
        return read_meta(self._dir(model_id))

    def _staged_of(self, model_id: str) -> Staged:
        staged = self._staged.get(model_id)
        if staged is None:
            staged = self._staged[model_id] = Staged.read(self._dir(model_id))
        return staged

    def store_bytes(self, exclude: str | None = None) -> int:
        """What uploaded models take in the store: installed copies (each once) and staged parts."""
        total, keys = 0, set()
        for model in self.registry.list():
            if model.source is not None or model.model_id == exclude:
                continue
            if model.cache_key is not None:
                if model.cache_key not in keys and (self._cache.root / model.cache_key).is_dir():
                    keys.add(model.cache_key)
                    total += model_size_bytes(self._cache.root / model.cache_key)
            else:
                total += self._staged_of(model.model_id).bytes
        return total

    def _refuse_if_complete(self, model: RegisteredModel, what: str, path: Path) -> None:
        if model.fully_defined or path.exists() or (model.model_id, model.create_time) in self._completing:
            raise ResourceAlreadyExistsException(what)

    def put_part(self, model_id: str, part: int, data: bytes, total_definition_length: int, total_parts: int) -> None:
        errors = part_errors(part, total_definition_length, total_parts)
        if errors:
            raise ActionRequestValidationException(errors)
        with self._lock:
            model = self._registered(model_id)
            directory = self._dir(model_id)
            path = directory / PART.format(part)
            self._refuse_if_complete(
                model, f"Trained machine learning model chunked doc [{model_id}][{part}] already exists", path
            )
            expected = {"total_definition_length": total_definition_length, "total_parts": total_parts}
            stored = self._read_meta(model_id)
            if stored is not None and stored != expected:
                # Elasticsearch stores each part's own totals and fails at load; elserve says so now.
                raise StatusException(
                    f"part [{part}] of model [{model_id}] gives total_definition_length "
                    f"[{total_definition_length}] and total_parts [{total_parts}], but earlier parts gave "
                    f"[{stored['total_definition_length']}] and [{stored['total_parts']}]",
                    400,
                )
            staged = self._staged_of(model_id)
            if staged.bytes + len(data) > total_definition_length:
                raise StatusException(
                    f"part [{part}] of model [{model_id}] brings its definition to [{staged.bytes + len(data)}] "
                    f"bytes, more than its total_definition_length [{total_definition_length}]",
                    400,
                )
            check_store(
                self.store_bytes(exclude=model_id), total_definition_length, self._limits.store_limit_bytes, model_id
            )
            # What follows this part: the rest of the definition, then its installed copy.
            ahead = total_definition_length - staged.bytes - len(data) + total_definition_length
            try:
                directory.mkdir(parents=True, exist_ok=True)
                check_disk(directory, self._flood_stage, len(data), ahead, model_id)
                if stored is None:
                    write_whole(directory / META, json.dumps(expected).encode())
                write_whole(path, data)
            except OSError as e:
                raise write_error(e) from None
            staged.parts += 1
            staged.bytes += len(data)
            ready = self._start_completion(model)
        if ready:
            self._complete(model)

    def put_vocabulary(
        self, model_id: str, vocabulary: list[str], merges: list[str] | None, scores: list[float] | None
    ) -> None:
        errors = vocabulary_errors(vocabulary, scores)
        if errors:
            raise ActionRequestValidationException(errors)
        document: dict[str, Any] = {"vocabulary": vocabulary}
        if merges:
            document["merges"] = merges
        if scores:
            document["scores"] = scores
        data = orjson.dumps(document)  # orjson: the stdlib encoder holds the GIL far longer
        with self._lock:
            model = self._registered(model_id)
            path = self._dir(model_id) / ELASTIC_VOCAB
            # Messages.INFERENCE_TRAINED_MODEL_VOCAB_EXISTS (text unconfirmed)
            self._refuse_if_complete(
                model, f"Trained machine learning model [{model_id}] vocabulary already exists", path
            )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                check_disk(path.parent, self._flood_stage, len(data), 0, model_id)
                write_whole(path, data)
            except OSError as e:
                raise write_error(e) from None
            ready = self._start_completion(model)
        if ready:
            self._complete(model)

    def _start_completion(self, model: RegisteredModel) -> bool:
        """Under the lock: True (and the model marked as completing) when everything is here."""
        directory = self._dir(model.model_id)
        meta = self._read_meta(model.model_id)
        if meta is None or not (directory / ELASTIC_VOCAB).exists():
            return False
        if self._staged_of(model.model_id).parts < meta["total_parts"]:
            return False
        self._completing.add((model.model_id, model.create_time))
        return True

    def _complete(self, model: RegisteredModel) -> None:
        """Assemble, check (a child process) and install a model whose parts are all here. Runs without
        the lock: other requests go on meanwhile, and a DELETE meanwhile wins."""
        token = (model.model_id, model.create_time)
        directory = self._dir(model.model_id)
        try:
            meta = self._read_meta(model.model_id) or {}
            parts = [directory / PART.format(i) for i in range(int(meta.get("total_parts", 0)))]
            try:
                length = sum(p.stat().st_size for p in parts)
                if length != meta.get("total_definition_length"):
                    raise CheckFailed(
                        f"its definition parts hold [{length}] bytes, not the total_definition_length "
                        f"[{meta.get('total_definition_length')}]"
                    )
                key = install(model, directory, parts, self._cache.root, self._check, self._running, length)
            except CheckFailed as e:
                reason = f"model [{model.model_id}] cannot be served: {e}; delete the model and upload it again"
                log.warning("[%s] uploaded model refused by its check: %s", model.model_id, e)
                with self._lock:
                    if self._is_current(model):
                        self.registry.put(replace(model, definition_error=reason))
                raise StatusException(reason, 400) from None
            except CheckInterrupted:
                if not self._is_current(model):
                    raise not_found(model.model_id) from None
                raise StatusException(
                    f"the server is stopping: the upload of model [{model.model_id}] is complete and is checked "
                    "when the server starts again",
                    503,
                ) from None
            except OSError as e:
                if not self._is_current(model):
                    raise not_found(model.model_id) from None
                raise write_error(e) from None
            with self._lock:
                current = self._is_current(model)
                if not current:  # deleted (and maybe created again) meanwhile
                    trash = self._unused_install(key)
                else:
                    self.registry.put(
                        replace(model, cache_key=key, sha256=key, fully_defined=True, definition_error=None)
                    )
                    self._staged.pop(model.model_id, None)
                    trash = move_to_trash(directory)
            remove(trash)
            if not current:
                raise not_found(model.model_id)
            log.info("[%s] uploaded model fully defined: %s", model.model_id, key)
        finally:
            with self._lock:
                self._completing.discard(token)

    def _is_current(self, model: RegisteredModel) -> bool:
        now = self.registry.get(model.model_id)
        return now is not None and now.create_time == model.create_time and not now.fully_defined

    def report(self, model_id: str) -> dict[str, Any] | None:
        """The upload as `_stats` shows it (elserve's `upload` object) while it is checked or after its
        check refused it; None otherwise."""
        model = self.registry.get(model_id)
        if model is None or model.source is not None or model.fully_defined:
            return None
        if (model_id, model.create_time) in self._completing:
            return {"state": "checking"}
        if model.definition_error is not None:
            return {"state": "failed", "reason": model.definition_error}
        return None

    def delete(self, model_id: str) -> None:
        """Forget an uploaded model, its waiting parts, and its installed files unless another model
        shares them (content-addressed). The caller has stopped its deployments. A completion under way
        finds the model gone and discards its work."""
        with self._lock:
            model = self.registry.get(model_id)
            if model is None or not self.registry.remove(model_id):
                raise not_found(model_id)
            self._staged.pop(model_id, None)
            self._running.end(model_id)  # its check, if one runs: the answer is no longer wanted
            trash = [move_to_trash(self._dir(model_id))]
            if model.cache_key is not None:
                trash.append(self._unused_install(model.cache_key))
        for path in trash:
            remove(path)

    def _unused_install(self, key: str) -> Path | None:
        """Under the lock: the installed directory `key` renamed away when no registered model uses it
        (a directory half deleted is never taken for an install); its new path, to remove."""
        if any(other.cache_key == key for other in self.registry.list()):
            return None
        return move_to_trash(self._cache.root / key)

    def close(self) -> None:
        """The server stops: checks running now are ended (their models stay as they are, and their
        completion runs again at the next start)."""
        self._running.kill_all()

    def recover(self) -> list[str]:
        """At start: remove what a crash left (assemblies cut short, trash, staging of models deleted or
        complete) and return the ids of models whose completion was cut short, for `resume`."""
        for root, prefixes in ((self._cache.root, (*LEGACY_PREFIXES, TRASH_PREFIX)), (self._staging, (TRASH_PREFIX,))):
            for path in sorted(root.iterdir()) if root.is_dir() else []:
                if path.name.startswith(prefixes):
                    remove(path)
        waiting = [
            model.model_id
            for model in self.registry.list()
            if model.source is None
            and model.cache_key is not None
            and (self._cache.root / model.cache_key).is_dir()
            and not (self._cache.root / model.cache_key / SHAPES_FILE).exists()
        ]  # installed before their check recorded their shapes: sized by `resume`, in a child too
        for directory in sorted(self._staging.iterdir()) if self._staging.is_dir() else []:
            if directory.name.startswith("."):
                continue
            model = self.registry.get(directory.name)
            if model is None or model.fully_defined:
                remove(directory)
                continue
            for leftover in directory.iterdir():
                if leftover.name.startswith((ASSEMBLY_PREFIX, ".")):
                    remove(leftover)
            with self._lock:
                if model.definition_error is None and self._start_completion(model):
                    waiting.append(model.model_id)
        return waiting

    def resume(self, model_id: str) -> None:
        """Run again a completion that a crash cut short, or size a model installed without its shapes
        (both found by `recover`)."""
        model = self.registry.get(model_id)
        if model is None:
            return
        try:
            if model.fully_defined and model.cache_key is not None:
                self._size(model.model_id, self._cache.root / model.cache_key)
            else:
                self._complete(model)
        except Exception as e:  # the reason is kept on the model (a failed check) or logged here
            log.warning("[%s] the interrupted upload could not be completed: %s", model_id, e)

    def _size(self, model_id: str, installed: Path) -> None:
        """Record the shapes of an installed upload, read by the check in its child process; a model the
        check cannot read gets the reason instead, so that it is never loaded here to be sized."""
        try:
            record = run_check(installed, self._check, model_size_bytes(installed), self._running, model_id)
        except CheckFailed as e:
            record = {"error": f"the upload check cannot read the model: {e}"}
        except CheckInterrupted:
            return
        write_whole(installed / SHAPES_FILE, json.dumps(record).encode())
