"""Rules on inference endpoint ids for PUT and `_update` (table T1).

Sources: `CORE/inference/action/PutInferenceModelAction.java` and
`UpdateInferenceModelAction.java` (`Request.validate`, the only id check: no
length limit), `CORE/ml/utils/MlStrings.java` (`isValidId`),
`CORE/ml/job/messages/Messages.java` (`INVALID_ID`),
`INF/action/TransportPutInferenceModelAction.java` (reserved ids, ids taken by
trained models).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from elserve.errors import ActionRequestValidationException, StatusException

# MlStrings.VALID_ID_CHAR_PATTERN; `_all` (Metadata.ALL) is refused besides.
_VALID_ID = re.compile(r"[a-z0-9](?:[a-z0-9_\-.]*[a-z0-9])?")

# The preconfigured endpoints of the `elasticsearch` service (ElasticsearchInternalService
# DEFAULT_ELSER_ID, DEFAULT_E5_ID, DEFAULT_RERANK_ID). elserve serves only the first,
# but all three ids stay reserved as in Elasticsearch.
DEFAULT_ELSER_ID = ".elser-2-elasticsearch"
DEFAULT_E5_ID = ".multilingual-e5-small-elasticsearch"
DEFAULT_RERANK_ID = ".rerank-v1-elasticsearch"
RESERVED_INFERENCE_IDS = frozenset({DEFAULT_ELSER_ID, DEFAULT_E5_ID, DEFAULT_RERANK_ID})


def is_valid_id(inference_id: str) -> bool:
    """`MlStrings.isValidId`."""
    return inference_id != "_all" and _VALID_ID.fullmatch(inference_id) is not None


def invalid_id_message(inference_id: str) -> str:
    # Messages.INVALID_ID through MessageFormat: '' renders one quote.
    return (
        f"Invalid inference_id; '{inference_id}' can contain lowercase alphanumeric (a-z and 0-9), "
        "hyphens or underscores; must start and end with alphanumeric"
    )


# MlStrings.ID_LENGTH_LIMIT: ML ids (models, deployments) are at most 64 characters.
ID_LENGTH_LIMIT = 64


def id_too_long_message(kind: str, value: str) -> str:
    """Messages.ID_TOO_LONG."""
    return f"Invalid {kind}; '{value}' cannot contain more than {ID_LENGTH_LIMIT} characters."


def validate_inference_id(inference_id: str) -> None:
    """PUT and `_update`: 400 `action_request_validation_exception` for an invalid id.

    Elasticsearch puts no length limit on inference ids, but an endpoint's deployment takes
    its id, and deployment ids are ML ids (at most 64 characters). Elasticsearch finds out
    after storing the endpoint; elserve refuses it before (spec decision 2).
    """
    if not is_valid_id(inference_id):
        raise ActionRequestValidationException([invalid_id_message(inference_id)])
    if len(inference_id) > ID_LENGTH_LIMIT:
        raise ActionRequestValidationException([id_too_long_message("inference_id", inference_id)])


def validate_deployment_id_length(deployment_id: str) -> None:
    """`_start?deployment_id=`: `MlStrings.hasValidLengthForId`."""
    if len(deployment_id) > ID_LENGTH_LIMIT:
        raise ActionRequestValidationException([id_too_long_message("deployment_id", deployment_id)])


def check_not_reserved(inference_id: str) -> None:
    """PUT: a preconfigured id cannot be created (T1 rejects them first: they start with `.`)."""
    if inference_id in RESERVED_INFERENCE_IDS:
        raise StatusException(
            f"[{inference_id}] is a reserved inference ID. Cannot create a new inference endpoint with a reserved ID.",
            400,
        )


def check_not_taken_by_model(inference_id: str, trained_model_ids: Collection[str]) -> None:
    """PUT: the id must not equal an existing trained model or deployment id (9.x text).

    Elasticsearch checks the cluster's model assignments, so an endpoint whose
    deployment (named after the endpoint) is running gives this, not "already exists".
    """
    if inference_id in trained_model_ids:
        raise StatusException(
            "Inference endpoint IDs must be unique. "
            f"Requested inference endpoint ID [{inference_id}] matches existing trained model ID(s) but must not.",
            400,
        )
