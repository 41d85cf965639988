"""Trained-model inference (`POST /_ml/trained_models/{id}/_infer`): documents in, `text_expansion`
(or `pass_through`: `PassThroughProcessor.java`) results out.

The steps are Elasticsearch's (`ML/action/TransportInternalInferModelAction.java`,
`TransportInferTrainedModelDeploymentAction.java`, `ML/inference/deployment/NlpInferenceInput.java`,
`ML/inference/nlp/TextExpansionProcessor.java`, `ML/inference/nlp/tokenizers/NlpTokenizer.java`):

- the id names a deployment, else a model whose deployments serve it (a started one first);
  with none, 409 for a model that exists (it must be deployed), 404 for one that does not;
- each document gives its text from the model's input field (`input.field_names[0]`, a dotted
  path); the update and the text are checked per document, and the first document that fails
  fails the request with its own error (`collectingListener`: "any failure fails all requests");
- no documents: the deployment action's validation (`at least one document is required `);
- a result is `{results_field: {token: weight}}`, weights heaviest first, with `is_truncated`
  only when true (`NlpInferenceResults.toXContent`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from elserve.deployments import messages
from elserve.deployments.backend import DeploymentBackend, ServedDeployment
from elserve.deployments.states import DeploymentState
from elserve.errors import (
    ActionRequestValidationException,
    ResourceNotFoundException,
    StatusException,
)
from elserve.java_text import java_text
from elserve.operations.infer_model_request import (
    UNSET_SPAN,
    InferModelRequest,
    TextExpansionSettings,
    settings_for,
)
from elserve.operations.inference_cache import (
    InferenceCache,
    InferenceCaches,
    cache_bytes,
)
from elserve.operations.trained_model_config import PASS_THROUGH
from elserve.runtime import to_token_weights
from elserve.runtime.sparse import unpack
from elserve.timevalue import TimeValue

DEFAULT_INPUT_FIELD = "text_field"
# Up to this many characters the token count of `truncate: none` is taken on the event loop.
_INLINE_COUNT_CHARS = 16_384  # TrainedModelConfig's default `input.field_names`

# `pickAssignment`: of several deployments of the model, the first state found in this order.
_PICK_ORDER = (DeploymentState.STARTED, DeploymentState.STARTING, DeploymentState.STOPPING, DeploymentState.FAILED)


def find_deployment(manager: DeploymentBackend, deployment_or_model_id: str) -> ServedDeployment | None:
    """The deployment with that id, else one of the model's deployments (a started one first)."""
    deployment = manager.get(deployment_or_model_id)
    if deployment is not None:
        return deployment
    of_model = manager.of_model(deployment_or_model_id)
    for state in _PICK_ORDER:
        for candidate in of_model:
            if candidate.state is state:
                return candidate
    return of_model[0] if of_model else None


def not_deployed(model_id: str, known_models: Callable[[], Sequence[str]]) -> Exception:
    """`getModelAndInfer`'s answer when nothing serves the id: a PyTorch model must be deployed first."""
    if model_id in known_models():
        return StatusException(
            f"Model [{model_id}] must be deployed to use. Please deploy with the start trained model deployment API.",
            409,
        )
    return ResourceNotFoundException(f"Could not find trained model [{model_id}]")


def input_field(model_config: Mapping[str, Any]) -> str:
    names = (model_config.get("input") or {}).get("field_names") or [DEFAULT_INPUT_FIELD]
    return str(names[0])


def extract_value(path: str, doc: Mapping[str, Any]) -> Any:
    """`XContentMapValues.extractValue(path, doc)`: a dotted path, whose parts may also be keys holding dots."""
    return _extract(path.split("."), 0, doc)


def _extract(parts: list[str], index: int, current: Any) -> Any:
    if isinstance(current, list):
        values = [_extract(parts, index, item) for item in current]
        return [v for v in values if v is not None]
    if index == len(parts):
        return current
    if not isinstance(current, Mapping):
        return None
    key = parts[index]
    next_index = index + 1
    found: list[Any] = []
    while True:
        if key in current:
            value = current[key]
            if value is not None:
                value = _extract(parts, next_index, value)
            if value is not None:
                found.append(value)
        if next_index == len(parts):
            if not found:
                return None
            return found[0] if len(found) == 1 else found
        key += "." + parts[next_index]
        next_index += 1


def document_text(doc: Mapping[str, Any], field: str) -> str:
    """`NlpInferenceInput.extractInput`: the field's value, which must be a string."""
    value = extract_value(field, doc)
    if value is None:
        raise StatusException(f"Input field [{field}] does not exist in the source document", 400)
    if not isinstance(value, str):
        # The docs were parsed with `mapOrdered` (`InferModelAction.Request.PARSER`): maps print in the order sent.
        raise StatusException(
            f"Input value [{java_text(value, ordered=True)}] for field [{field}] must be a string", 400
        )
    return value


class TrainedModelInference:
    """Runs `_infer` on a deployment: the model's configuration comes from the caller (as GET shows it)."""

    def __init__(
        self,
        manager: DeploymentBackend,
        known_models: Callable[[], Sequence[str]],
        caches: InferenceCaches | None = None,
        model_bytes: Callable[[str], int] | None = None,
        resolve_alias: Callable[[str], str | None] | None = None,
    ) -> None:
        self._manager = manager
        self._known_models = known_models
        self._caches = caches
        self._model_bytes = model_bytes
        self._resolve_alias = resolve_alias

    def deployment(self, deployment_or_model_id: str) -> ServedDeployment:
        """The deployment to infer with; its state is checked before the request's own rules, as
        `inferAgainstAllocatedModel` does before it sends the request on."""
        deployment = find_deployment(self._manager, deployment_or_model_id)
        if deployment is None and self._resolve_alias is not None:
            # A model alias names its model (`TransportInternalInferModelAction`).
            model_id = self._resolve_alias(deployment_or_model_id)
            if model_id is not None:
                deployment = find_deployment(self._manager, model_id)
        if deployment is None:
            raise not_deployed(deployment_or_model_id, self._known_models)
        if deployment.state in (DeploymentState.STOPPING, DeploymentState.FAILED):
            raise messages.not_serving(deployment.deployment_id, deployment.state)
        if deployment.state is DeploymentState.STARTING:
            # Named by the id asked for. (A started deployment scaled to zero is woken and waited
            # for, as elserve's inference does, instead of this 409.)
            raise messages.not_allocated(deployment_or_model_id)
        return deployment

    async def infer(
        self,
        deployment: ServedDeployment,
        model_config: Mapping[str, Any],
        request: InferModelRequest,
        timeout: TimeValue,
    ) -> list[dict[str, Any]]:
        """One result per document, in order; the first document's failure fails them all."""
        if not request.docs:
            # InferTrainedModelDeploymentAction.Request.validate (the trailing space is Elasticsearch's).
            raise ActionRequestValidationException(["at least one document is required "])
        settings = settings_for(deployment.model_id, model_config, request.update)
        field = input_field(model_config)
        texts = [document_text(doc, field) for doc in request.docs]
        if settings.truncate == "none" and settings.span == UNSET_SPAN and deployment.tokenizer is not None:
            # Counting needs the whole text tokenized: off the event loop when that is long.
            if sum(map(len, texts)) <= _INLINE_COUNT_CHARS:
                _check_lengths(deployment, texts)
            else:
                await asyncio.to_thread(_check_lengths, deployment, texts)
        cache = self._cache(deployment)
        answers: list[dict[str, Any] | None] = [None] * len(texts)
        if cache is not None:
            answers = [cache.get((text, settings)) for text in texts]
        missing = [i for i, answer in enumerate(answers) if answer is None]
        if missing:
            try:
                results = await deployment.infer([texts[i] for i in missing], timeout.seconds)
            except TimeoutError:
                raise StatusException(f"timeout [{timeout.text}] waiting for inference result", 408) from None
            for i, result in zip(missing, self._render(deployment, model_config, settings, results), strict=True):
                answers[i] = result
                if cache is not None:
                    cache.put((texts[i], settings), result)
        for _ in range(len(texts) - len(missing)):
            deployment.counters.record_cache_hit()
        return [answer for answer in answers if answer is not None]

    def _cache(self, deployment: ServedDeployment) -> InferenceCache | None:
        if self._caches is None or self._model_bytes is None:
            return None
        size = cache_bytes(deployment.config, self._model_bytes(deployment.model_id))
        return self._caches.of(deployment, size) if size > 0 else None

    @staticmethod
    def _render(
        deployment: ServedDeployment, model_config: Mapping[str, Any], settings: TextExpansionSettings, results: list
    ) -> list[dict[str, Any]]:
        if PASS_THROUGH in (model_config.get("inference_config") or {}):
            # PyTorchPassThroughResults: the model's output for the document, rows of doubles.
            return [_result(settings, unpack(r.vector), r.is_truncated) for r in results]
        assert deployment.tokenizer is not None
        names = deployment.tokenizer.names
        return [_result(settings, to_token_weights(r.vector, names), r.is_truncated) for r in results]


def _check_lengths(deployment: ServedDeployment, texts: list[str]) -> None:
    """`truncate: none` without a span: a text longer than the window is refused, not cut."""
    tokenizer = deployment.tokenizer
    assert tokenizer is not None
    for text in texts:
        length = tokenizer.length(text)
        if length > tokenizer.max_length:
            raise StatusException(
                f"Input too large. The tokenized input length [{length}] exceeds the maximum sequence length "
                f"[{tokenizer.max_length}]",
                400,
            )


def _result(settings: TextExpansionSettings, weights: Any, truncated: bool) -> dict[str, Any]:
    # With a span the text is windowed, not truncated: the result is the first window's, unflagged
    # (TextExpansionProcessor reads window 0 of a non-chunked request).
    result: dict[str, Any] = {settings.results_field: weights}
    if truncated and settings.span == UNSET_SPAN:
        result["is_truncated"] = True
    return result
