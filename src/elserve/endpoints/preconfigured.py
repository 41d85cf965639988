"""The preconfigured endpoint elserve serves: `.elser-2-elasticsearch`.

Elasticsearch lists its default endpoints from the start (virtual until first
use) and refuses to create, update or delete them. Sources:
`ESS/ElasticsearchInternalService.java` (`defaultConfigs`),
`ESS/ElserInternalServiceSettings.java` (`defaultEndpointSettings`: one thread,
adaptive allocations from the cluster settings `xpack.ml.models.default_allocations.min`
(0) and `.max` (32)), `INF/action/TransportDeleteInferenceEndpointAction.java`.
"""

from __future__ import annotations

from elserve.chunking.settings import DEFAULT_CHUNKING_SETTINGS
from elserve.deployments.adaptive import MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD
from elserve.endpoints.adaptive import AdaptiveAllocations
from elserve.endpoints.endpoint import Endpoint
from elserve.endpoints.ids import DEFAULT_ELSER_ID, RESERVED_INFERENCE_IDS
from elserve.endpoints.service_settings import ServiceSettings
from elserve.endpoints.task_types import TaskType
from elserve.errors import StatusException
from elserve.models.catalogue import platform_default_elser_model

DEFAULT_MIN_ALLOCATIONS = 0
# The default endpoint scales as far as adaptive allocations do without a maximum.
DEFAULT_MAX_ALLOCATIONS = MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD


def default_elser_endpoint(
    platform_default: str | None = None,
    min_allocations: int = DEFAULT_MIN_ALLOCATIONS,
    max_allocations: int = DEFAULT_MAX_ALLOCATIONS,
) -> Endpoint:
    """`.elser-2-elasticsearch`: adaptive 0..32, one thread, the platform's ELSER, sentence/250/1."""
    model_id = platform_default_elser_model() if platform_default is None else platform_default
    settings = ServiceSettings(
        num_threads=1,
        model_id=model_id,
        adaptive_allocations=AdaptiveAllocations(True, min_allocations, max_allocations),
    )
    return Endpoint(DEFAULT_ELSER_ID, TaskType.SPARSE_EMBEDDING, settings, DEFAULT_CHUNKING_SETTINGS)


def preconfigured_endpoints(platform_default: str | None = None) -> list[Endpoint]:
    """Every preconfigured endpoint elserve lists (the E5 and rerank ids stay reserved, unserved)."""
    return [default_elser_endpoint(platform_default)]


def is_preconfigured(inference_id: str) -> bool:
    return inference_id in RESERVED_INFERENCE_IDS


def check_deletable(inference_id: str) -> None:
    """DELETE of a preconfigured endpoint: refused even with `force` (the newest behaviour).

    Elasticsearch throws an `ElasticsearchStatusException`; the status is not in the
    sources available here and 400 (BAD_REQUEST, as for the sibling refusals) is assumed.
    """
    if is_preconfigured(inference_id):
        raise StatusException(
            f"[{inference_id}] is a reserved inference endpoint. Cannot delete a reserved inference endpoint.", 400
        )


def check_updatable(inference_id: str) -> None:
    """`_update` of a default endpoint (any id starting with `.`): 400."""
    if inference_id.startswith("."):
        raise StatusException(f"Default endpoint [{inference_id}] cannot be updated", 400)
