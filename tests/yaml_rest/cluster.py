"""The server the YAML tests run against, set up and wiped as Elasticsearch's test clusters are.

Elasticsearch's x-pack YAML tests run as `x_pack_rest_user`, a superuser the test cluster is
created with (`x-pack/plugin/build.gradle`), and some steps name that user in an `Authorization`
header: the same user is created here. After each test the cluster is wiped of what tests create
(`ESRestTestCase.wipeCluster` and the ML state cleaner): the inference endpoints, the deployments
and the trained models, each but the built-in ones (ids starting with `.`).
"""

from __future__ import annotations

import contextlib
import warnings

from elasticsearch import Elasticsearch, NotFoundError

from tests.yaml_rest.prerequisites import Cluster, parse_version

TEST_USER = "x_pack_rest_user"
TEST_PASSWORD = "x-pack-test-password"


def create_test_user(admin: Elasticsearch) -> None:
    admin.security.put_user(username=TEST_USER, password=TEST_PASSWORD, roles=["superuser"])


def warm_up(client: Elasticsearch) -> None:
    """Download the model the `elser` service deploys (`.elser_model_2_linux-x86_64` on Linux) and start
    a worker once, before any test: a test's `PUT _inference` has the default 30 s timeout, which must
    not have to cover a first download on a loaded machine (Elasticsearch's test clusters do not
    download either). Bounded by minutes, against a hang only."""
    model_id = ".elser_model_2_linux-x86_64"
    client.options(request_timeout=600).ml.start_trained_model_deployment(
        model_id=model_id, deployment_id="yaml-rest-warm-up", wait_for="started", timeout="600s"
    )
    client.ml.stop_trained_model_deployment(model_id="yaml-rest-warm-up")


def describe(client: Elasticsearch) -> Cluster:
    info = client.info()
    return Cluster(parse_version(info["version"]["number"]))


def wipe(client: Elasticsearch) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for endpoint in client.inference.get(inference_id="_all")["endpoints"]:
            if not endpoint["inference_id"].startswith("."):
                client.inference.delete(inference_id=endpoint["inference_id"], force=True)
        with contextlib.suppress(NotFoundError):
            client.ml.stop_trained_model_deployment(model_id="_all", force=True, allow_no_match=True)
        for model in client.ml.get_trained_models(model_id="_all", size=10000)["trained_model_configs"]:
            if not model["model_id"].startswith("."):
                client.ml.delete_trained_model(model_id=model["model_id"], force=True)
