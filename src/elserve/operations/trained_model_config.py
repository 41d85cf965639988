"""The body of `PUT _ml/trained_models/{model_id}`, read and validated as Elasticsearch does.

Sources (elastic/elasticsearch): `CORE/ml/inference/TrainedModelConfig.java` (the strict parser and
`Builder.validate(forCreation=true)`: settings illegal at creation, id rules, tags),
`CORE/ml/inference/trainedmodel/NlpConfig.java` (`validateTrainedModelInput`),
`TextExpansionConfig.java` (`vocabulary` illegal on creation), `BertTokenization.java` and
`Tokenization.java` (the settings and their defaults), `CORE/ml/job/messages/Messages.java`.

Where Elasticsearch accepts a model elserve cannot serve (another `model_type`, another task, a
tokenizer other than BERT's WordPiece), the PUT is refused with the reason (400), before anything
is stored: a model that could never deploy is better refused than kept.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from elserve.endpoints.field_suggestions import did_you_mean
from elserve.endpoints.ids import ID_LENGTH_LIMIT, id_too_long_message, is_valid_id
from elserve.endpoints.json_location import top_level_fields
from elserve.errors import ActionRequestValidationException, StatusException, XContentParseException, field_parse_failed

PYTORCH = "pytorch"
PYTORCH_DEFAULT_INPUT = "input"
TEXT_EXPANSION = "text_expansion"
PASS_THROUGH = "pass_through"
# `TrainedModelConfig`'s fields (the strict parser's), and those the user may not set on creation.
_FIELDS = {
    "model_id", "created_by", "version", "description", "create_time", "tags", "metadata", "input",
    "model_size_bytes", "estimated_heap_memory_usage_bytes", "estimated_operations", "definition",
    "compressed_definition", "license_level", "default_field_map", "inference_config", "location",
    "model_type", "model_package", "platform_architecture", "prefix_strings",
}  # fmt: skip
_ILLEGAL_ON_CREATION = ("version", "created_by", "create_time", "license_level", "location", "model_package")
_MODEL_TYPES = ("tree_ensemble", "lang_ident", PYTORCH)
INFERENCE_CONFIG_NAMES = (
    "classification", "regression", "fill_mask", "ner", "pass_through", "question_answering",
    "text_classification", "text_embedding", "text_expansion", "text_similarity", "zero_shot_classification",
    "learning_to_rank",
)  # fmt: skip
# The tasks elserve serves, and their configurations' fields (`TextExpansionConfig`, `PassThroughConfig`).
SERVED_TASK_FIELDS = {
    TEXT_EXPANSION: ("vocabulary", "tokenization", "results_field", "expansion_type"),
    PASS_THROUGH: ("vocabulary", "tokenization", "results_field"),
}
TOKENIZATION_NAMES = ("bert", "bert_ja", "mpnet", "roberta", "xlm_roberta", "deberta_v2")
# `Tokenization.java` + `BertTokenization.java`: the fields and their defaults.
_BERT_DEFAULTS: dict[str, Any] = {
    "do_lower_case": False,
    "with_special_tokens": True,
    "max_sequence_length": 512,
    "truncate": "first",
    "span": -1,
}
TRUNCATE_VALUES = ("first", "second", "none", "balanced")
_NATIVE_INDEX = ".ml-inference-native-000002"


class UnservedModel(StatusException):
    """A model Elasticsearch would accept that elserve cannot serve (400, with the reason)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason, status)


def _unknown(parser: str, name: str, fields: Iterable[str], where: str = "") -> XContentParseException:
    return XContentParseException(f"{where}[{parser}] unknown field [{name}]{did_you_mean(name, fields)}")


def parse_put_config(model_id: str, body: dict[str, Any], raw: bytes | None = None) -> dict[str, Any]:
    """The configuration to store: the body checked as Elasticsearch's strict parser and its
    creation rules check it, plus the defaults Elasticsearch fills (`input`, the tokenization's
    settings). Raises the error Elasticsearch would (400), or the reason elserve cannot serve it."""
    config = copy.deepcopy(body)
    locations = top_level_fields(raw) if raw is not None else {}
    for name in config:
        if name not in _FIELDS:
            where = locations.get(name)
            raise _unknown("trained_model_config", name, _FIELDS, f"[{where.name}] " if where else "")
    errors: list[str] = []
    body_id = config.get("model_id")
    if body_id is not None and body_id != model_id:
        raise ActionRequestValidationException(
            [
                f"Inconsistent model_id; '{body_id}' specified in the body "
                f"differs from '{model_id}' specified as a URL argument"
            ]
        )
    if not is_valid_id(model_id):
        errors.append(
            f"Invalid model_id; '{model_id}' can contain lowercase alphanumeric (a-z and 0-9), hyphens or "
            "underscores; must start and end with alphanumeric"
        )
    if len(model_id) > ID_LENGTH_LIMIT:
        errors.append(id_too_long_message("model_id", model_id))
    model_type = config.get("model_type")
    has_definition = "definition" in config or "compressed_definition" in config
    if not has_definition and model_type is None:
        errors.append("[model_type] must be set if [definition] is not defined.")
    inference = config.get("inference_config")
    if inference is None:
        errors.append("[inference_config] must not be null.")
    tags = config.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise field_parse_failed("trained_model_config", "tags")
    bad_tags = [t for t in tags if not is_valid_id(t) or len(t) > ID_LENGTH_LIMIT]
    if bad_tags:
        errors.append(
            f"Invalid tags [{', '.join(bad_tags)}]; must only can contain lowercase alphanumeric (a-z and 0-9), "
            f"hyphens or underscores, must start and end with alphanumeric, and must be less than {ID_LENGTH_LIMIT} "
            "characters."
        )
    if model_id in tags:
        errors.append("none of the tags must equal the model_id")
    errors.extend(_input_errors(config.get("input")))
    for name in _ILLEGAL_ON_CREATION:
        if config.get(name) is not None:
            errors.append(f"illegal to set [{name}] at inference model creation")
    metadata = config.get("metadata")
    if isinstance(metadata, dict):
        for name in ("total_feature_importance", "model_aliases"):
            if metadata.get(name) is not None:
                errors.append(f"illegal to set [metadata.{name}] at inference model creation")
    if errors:
        raise ActionRequestValidationException(errors)
    if model_type is not None and model_type not in _MODEL_TYPES:
        raise field_parse_failed("trained_model_config", "model_type")
    if model_type != PYTORCH or has_definition:
        # No `model_type` beside a definition: Elasticsearch takes it as a tree ensemble (the
        # model's default location in `TransportPutTrainedModelAction`).
        raise UnservedModel(
            f"elserve serves only [{PYTORCH}] models uploaded in definition parts; model [{model_id}] is "
            f"[{model_type or 'tree_ensemble'}]{' with an inline definition' if has_definition else ''}",
            400,
        )
    config["inference_config"] = _nlp_config(model_id, inference)
    # `TrainedModelType.PYTORCH`'s default input (`InferenceConfig.getDefaultInput`): the field `input`.
    config.setdefault("input", {"field_names": [PYTORCH_DEFAULT_INPUT]})
    config["model_id"] = model_id
    return config


def _input_errors(value: Any) -> list[str]:
    if value is None:
        return []
    names = value.get("field_names") if isinstance(value, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise field_parse_failed("trained_model_config", "input")
    errors = []
    if not names:
        errors.append("[input.field_names] must not be empty")
    if any(part == "" for name in names if "." in name for part in name.split(".")):
        errors.append("[input.field_names] must only contain valid dot delimited field names")
    return errors


def _nlp_config(model_id: str, inference: Any) -> dict[str, Any]:
    """`inference_config` of a served task (`text_expansion`, `pass_through`), with its
    tokenization's defaults filled in."""
    if not isinstance(inference, dict) or len(inference) != 1:
        raise field_parse_failed("trained_model_config", "inference_config")
    ((task, settings),) = inference.items()
    if task not in INFERENCE_CONFIG_NAMES:
        raise XContentParseException(
            f"[trained_model_config] failed to parse field [inference_config]: unknown [{task}]"
        )
    if task not in SERVED_TASK_FIELDS:
        raise UnservedModel(
            f"elserve serves only {list(SERVED_TASK_FIELDS)} models; model [{model_id}] is [{task}]", 400
        )
    fields = SERVED_TASK_FIELDS[task]
    settings = dict(settings or {})
    for name in settings:
        if name not in fields:
            raise _unknown(task, name, fields)
    if "vocabulary" in settings:
        raise StatusException("illegal setting [vocabulary] on inference model creation", 400)
    tokenization = settings.get("tokenization") or {"bert": {}}
    if not isinstance(tokenization, dict) or len(tokenization) != 1:
        raise field_parse_failed(task, "tokenization")
    ((name, values),) = tokenization.items()
    if name not in TOKENIZATION_NAMES:
        raise XContentParseException(f"[{task}] unable to parse Tokenization with name [{name}]: parser not found")
    if name != "bert":
        raise UnservedModel(
            f"elserve runs only [bert] (WordPiece) tokenization; model [{model_id}] asks for [{name}]", 400
        )
    settings["tokenization"] = {"bert": _bert(values)}
    settings["vocabulary"] = {"index": _NATIVE_INDEX}
    return {task: settings}


def _bert(values: Any) -> dict[str, Any]:
    values = dict(values or {})
    for name in values:
        if name not in _BERT_DEFAULTS:
            raise _unknown("bert", name, _BERT_DEFAULTS)
    out = {**_BERT_DEFAULTS, **values}
    for name in ("do_lower_case", "with_special_tokens"):
        if not isinstance(out[name], bool):
            raise field_parse_failed("bert", name)
    for name in ("max_sequence_length", "span"):
        if not isinstance(out[name], int) or isinstance(out[name], bool):
            raise field_parse_failed("bert", name)
    if out["truncate"] not in TRUNCATE_VALUES:
        raise field_parse_failed("bert", "truncate")
    errors = []
    if out["max_sequence_length"] <= 0:
        errors.append("[max_sequence_length] must be greater than 0")  # elserve: a window needs a token
    if out["span"] < -1:
        errors.append("[span] must be greater than or equal to -1")
    if errors:
        raise ActionRequestValidationException(errors)
    return out
