"""The REST API names the vendored tests call, mapped by hand to HTTP methods and paths.

Elasticsearch's runner reads these from its REST API specification
(`rest-api-spec/src/main/resources/rest-api-spec/api/<name>.json`); the handful used here are copied
from it (and from the paths the official `elasticsearch` client builds for the same names) instead
of vendoring the JSON files. As in `ClientYamlTestClient`, the path chosen is the one with the most
parts, all of which the call gives; the parameters left over go to the query string.

The table holds the APIs elserve serves (and those it will serve, `scope.NOT_YET_SERVED`): a test
that calls an API missing from it is skipped (`scope.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_PART = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Api:
    method: str
    paths: tuple[str, ...]  # templates, `{part}` for each path part

    def parts(self, path: str) -> list[str]:
        return _PART.findall(path)


APIS: dict[str, Api] = {
    "inference.delete": Api("DELETE", ("/_inference/{inference_id}", "/_inference/{task_type}/{inference_id}")),
    "inference.get": Api(
        "GET", ("/_inference", "/_inference/{inference_id}", "/_inference/{task_type}/{inference_id}")
    ),
    "inference.inference": Api("POST", ("/_inference/{inference_id}", "/_inference/{task_type}/{inference_id}")),
    "inference.put": Api("PUT", ("/_inference/{inference_id}", "/_inference/{task_type}/{inference_id}")),
    "ml.clear_trained_model_deployment_cache": Api("POST", ("/_ml/trained_models/{model_id}/deployment/cache/_clear",)),
    "ml.delete_trained_model": Api("DELETE", ("/_ml/trained_models/{model_id}",)),
    "ml.delete_trained_model_alias": Api("DELETE", ("/_ml/trained_models/{model_id}/model_aliases/{model_alias}",)),
    "ml.get_memory_stats": Api("GET", ("/_ml/memory/_stats", "/_ml/memory/{node_id}/_stats")),
    "ml.get_trained_models": Api("GET", ("/_ml/trained_models", "/_ml/trained_models/{model_id}")),
    "ml.get_trained_models_stats": Api("GET", ("/_ml/trained_models/_stats", "/_ml/trained_models/{model_id}/_stats")),
    "ml.infer_trained_model": Api("POST", ("/_ml/trained_models/{model_id}/_infer",)),
    "ml.put_trained_model": Api("PUT", ("/_ml/trained_models/{model_id}",)),
    "ml.put_trained_model_alias": Api("PUT", ("/_ml/trained_models/{model_id}/model_aliases/{model_alias}",)),
    "ml.put_trained_model_definition_part": Api("PUT", ("/_ml/trained_models/{model_id}/definition/{part}",)),
    "ml.put_trained_model_vocabulary": Api("PUT", ("/_ml/trained_models/{model_id}/vocabulary",)),
    "ml.start_trained_model_deployment": Api("POST", ("/_ml/trained_models/{model_id}/deployment/_start",)),
    "ml.stop_trained_model_deployment": Api("POST", ("/_ml/trained_models/{model_id}/deployment/_stop",)),
    "ml.update_trained_model_deployment": Api("POST", ("/_ml/trained_models/{model_id}/deployment/_update",)),
}


class UnknownApiError(KeyError):
    pass


def build_request(name: str, params: dict[str, str]) -> tuple[str, str, dict[str, str]]:
    """(method, path, query) of a call: the best matching path, its parts quoted as the client
    quotes them, the other parameters in the query string."""
    api = APIS.get(name)
    if api is None:
        raise UnknownApiError(name)
    candidates = [p for p in api.paths if all(part in params for part in api.parts(p))]
    if not candidates:
        raise ValueError(f"[{name}] needs one of the paths {api.paths}; parameters given: {sorted(params)}")
    path = max(candidates, key=lambda p: len(api.parts(p)))
    used = api.parts(path)
    for part in used:
        path = path.replace("{" + part + "}", quote(params[part], safe=",*"))
    query = {k: v for k, v in params.items() if k not in used}
    return api.method, path, query
