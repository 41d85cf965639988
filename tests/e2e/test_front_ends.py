"""Several front ends, one shared store: two `elserve serve --store postgresql://...` processes on their
own ports (each its own data directory, local backend) against a real PostgreSQL
(tests/store/postgres_cluster.py). Whatever is made through one is seen through the other at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from elasticsearch import AuthenticationException, Elasticsearch, NotFoundError

from tests.e2e.conftest import SHARED_SERVER_ARGS
from tests.store.postgres_cluster import PASSWORD as STORE_PASSWORD
from tests.store.postgres_cluster import PostgresCluster, postgres_cluster, wait_for  # noqa: F401 - a fixture
from tests.support.clients import make_client, put_at_once
from tests.support.server import PASSWORD, Server, started_together

pytest.importorskip("psycopg", reason="the `postgres` extra (make test-postgres installs it)")
pytestmark = pytest.mark.postgres

ELSER = {
    "service": "elasticsearch",
    "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
}


@pytest.fixture(scope="module")
def fronts(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:  # noqa: F811
    """Front ends A and B, started at once (they migrate the new database together)."""
    url = postgres_cluster.new_database()
    servers = [
        Server(tmp_path_factory.mktemp(f"front-{name}") / "data", args=[*SHARED_SERVER_ARGS, "--store", url])
        for name in "ab"
    ]
    with started_together(servers):
        yield servers
    for server in servers:
        assert "store [" in server.log() and STORE_PASSWORD not in server.log()  # said, without its password


@pytest.fixture(scope="module")
def clients(fronts: list[Server]) -> list[Elasticsearch]:
    return [make_client(server) for server in fronts]


def _deployments(es: Elasticsearch) -> set[str]:
    stats = es.ml.get_trained_models_stats(model_id="_all")["trained_model_stats"]
    return {s["deployment_stats"]["deployment_id"] for s in stats if "deployment_stats" in s}


def test_created_on_a_infers_on_b(clients: list[Elasticsearch]) -> None:
    a, b = clients
    a.options(request_timeout=300).inference.put(
        task_type="sparse_embedding", inference_id="fe-create", inference_config=ELSER, timeout="300s"
    )
    seen = b.inference.get(inference_id="fe-create")["endpoints"]
    assert [e["inference_id"] for e in seen] == ["fe-create"]
    # B has not loaded the model yet: its first request starts its allocation and waits for it.
    on_b = b.options(request_timeout=300).inference.inference(
        inference_id="fe-create", input=["shared state"], timeout="300s"
    )
    on_a = a.inference.inference(inference_id="fe-create", input=["shared state"])
    weights_b = on_b["sparse_embedding"][0]["embedding"]
    weights_a = on_a["sparse_embedding"][0]["embedding"]
    assert weights_b.keys() == weights_a.keys() and weights_b
    for token, weight in weights_a.items():
        assert weights_b[token] == pytest.approx(weight, rel=1e-3, abs=1e-4)


def test_deleted_on_b_is_404_on_a_at_once(clients: list[Elasticsearch]) -> None:
    a, b = clients
    a.options(request_timeout=300).inference.put(
        task_type="sparse_embedding", inference_id="fe-delete", inference_config=ELSER, timeout="300s"
    )
    b.options(request_timeout=300).inference.inference(inference_id="fe-delete", input=["x"], timeout="300s")
    assert b.inference.delete(inference_id="fe-delete")["acknowledged"] is True
    for call in (
        lambda: a.inference.get(inference_id="fe-delete"),
        lambda: a.inference.inference(inference_id="fe-delete", input=["x"]),
    ):
        with pytest.raises(NotFoundError) as raised:
            call()
        assert raised.value.body["error"]["type"] == "resource_not_found_exception"
    # A's own allocation of it is stopped by its next pass over the store (RECONCILE_INTERVAL_S).
    wait_for(lambda: "fe-delete" not in _deployments(a), timeout=120)


def _allocations(es: Elasticsearch, deployment_id: str) -> int | None:
    stats = es.ml.get_trained_models_stats(model_id=deployment_id)["trained_model_stats"]
    deployment = stats[0].get("deployment_stats") if stats else None
    return None if deployment is None else deployment["number_of_allocations"]


def test_an_update_on_a_applies_on_b(clients: list[Elasticsearch]) -> None:
    a, b = clients
    a.options(request_timeout=300).inference.put(
        task_type="sparse_embedding", inference_id="fe-update", inference_config=ELSER, timeout="300s"
    )
    b.options(request_timeout=300).inference.inference(inference_id="fe-update", input=["x"], timeout="300s")
    assert _allocations(b, "fe-update") == 1
    a.options(request_timeout=300).inference.update(
        inference_id="fe-update",
        task_type="sparse_embedding",
        inference_config={"service_settings": {"num_allocations": 2}},
    )
    # B's own allocations follow at its next pass over the store; its GET shows them, as live counts are shown.
    wait_for(lambda: _allocations(b, "fe-update") == 2, timeout=120)
    assert b.inference.get(inference_id="fe-update")["endpoints"][0]["service_settings"]["num_allocations"] == 2
    assert b.inference.delete(inference_id="fe-update")["acknowledged"] is True


def test_the_same_put_on_a_and_b_at_once_one_wins(fronts: list[Server]) -> None:
    answers = put_at_once(fronts, "/_inference/sparse_embedding/fe-race?timeout=300s", ELSER)
    assert sorted(r.status_code for r in answers) == [200, 400], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 400).json()
    assert loser["error"]["type"] == "resource_already_exists_exception"
    assert loser["error"]["reason"] == "Inference endpoint [fe-race] already exists"
    winner = next(r for r in answers if r.status_code == 200).json()
    assert winner["inference_id"] == "fe-race"


def test_users_roles_and_keys_made_on_one_authenticate_on_the_other(
    fronts: list[Server], clients: list[Elasticsearch]
) -> None:
    a, b = clients
    server_a, server_b = fronts

    def as_user(server: Server, password: str) -> Elasticsearch:
        return Elasticsearch(server.url, basic_auth=("fe_bob", password), request_timeout=60)

    a.security.put_role(name="fe_reader", cluster=["monitor_inference"])
    a.security.put_user(username="fe_bob", password="bob-password", roles=["fe_reader"])
    assert as_user(server_b, "bob-password").security.authenticate()["roles"] == ["fe_reader"]
    assert as_user(server_a, "bob-password").security.authenticate()["username"] == "fe_bob"  # A remembers it now
    # A password changed on B: the old one fails on A at once, though A had verified it before.
    b.security.change_password(username="fe_bob", password="bob-password-2")
    with pytest.raises(AuthenticationException):
        as_user(server_a, "bob-password").security.authenticate()
    assert as_user(server_a, "bob-password-2").security.authenticate()["username"] == "fe_bob"
    # A role changed on A applies on B.
    a.security.put_role(name="fe_reader", cluster=["monitor_inference", "manage_inference"])
    assert b.security.get_role(name="fe_reader")["fe_reader"]["cluster"] == ["monitor_inference", "manage_inference"]
    # Disabled on A: refused on B.
    a.security.disable_user(username="fe_bob")
    with pytest.raises(AuthenticationException):
        as_user(server_b, "bob-password-2").security.authenticate()
    # An API key made on A authenticates on B; invalidated on B, refused on A.
    key = a.security.create_api_key(name="fe-key")
    on_b = Elasticsearch(server_b.url, api_key=key["encoded"], request_timeout=60)
    assert on_b.security.authenticate()["api_key"]["id"] == key["id"]
    b.security.invalidate_api_key(ids=[key["id"]])
    with pytest.raises(AuthenticationException):
        Elasticsearch(server_a.url, api_key=key["encoded"], request_timeout=60).security.authenticate()
    # Deleted on B: gone on A.
    assert b.security.delete_user(username="fe_bob")["found"] is True
    with pytest.raises(NotFoundError):
        a.security.get_user(username="fe_bob")


def test_a_front_end_started_later_restores_every_recorded_deployment(
    postgres_cluster: PostgresCluster,  # noqa: F811
    fronts: list[Server],
    clients: list[Elasticsearch],
    tmp_path: Path,
) -> None:
    """A third front end joining the store serves the endpoints made before it, with no request first."""
    a, _ = clients
    a.options(request_timeout=300).inference.put(
        task_type="sparse_embedding", inference_id="fe-before-c", inference_config=ELSER, timeout="300s"
    )
    store = fronts[0].extra_args[fronts[0].extra_args.index("--store") + 1]
    c = Server(tmp_path / "data", args=[*SHARED_SERVER_ARGS, "--store", store]).start()
    try:
        es = make_client(c)
        wait_for(lambda: "fe-before-c" in _deployments(es), timeout=120)
        assert es.inference.inference(inference_id="fe-before-c", input=["third"])["sparse_embedding"][0]["embedding"]
    finally:
        c.stop()


def test_reset_password_with_the_store_applies_to_every_front_end(fronts: list[Server], tmp_path: Path) -> None:
    import subprocess
    import sys

    a, _ = clients_of(fronts)
    a.security.put_user(username="fe_carol", password="carol-password", roles=[])
    store = fronts[0].extra_args[fronts[0].extra_args.index("--store") + 1]
    elserve = Path(sys.executable).with_name("elserve")
    run = subprocess.run(
        [str(elserve), "users", "reset-password", "-u", "fe_carol", "--data-dir", str(tmp_path), "--store", store],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    password = run.stdout.split("New value: ")[1].strip()
    for server in fronts:
        with pytest.raises(AuthenticationException):
            Elasticsearch(
                server.url, basic_auth=("fe_carol", "carol-password"), request_timeout=60
            ).security.authenticate()
        me = Elasticsearch(server.url, basic_auth=("fe_carol", password), request_timeout=60).security.authenticate()
        assert me["username"] == "fe_carol"


def clients_of(fronts: list[Server]) -> list[Elasticsearch]:
    return [make_client(server) for server in fronts]


def test_models_imported_with_the_store_are_seen_by_every_front_end(
    fronts: list[Server], splade_model_dir: Path, tmp_path: Path
) -> None:
    """`elserve models import --store`: the registry the front ends share (the files stay in that data
    directory's cache; each front end installs the model from its recorded source when it deploys it)."""
    import subprocess
    import sys

    store = fronts[0].extra_args[fronts[0].extra_args.index("--store") + 1]
    elserve = str(Path(sys.executable).with_name("elserve"))
    common = ["--data-dir", str(tmp_path / "data"), "--store", store]
    source = f"file:{splade_model_dir}"
    run = subprocess.run(
        [elserve, "models", "import", source, "--model-id", "fe-imported", *common],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for es in clients_of(fronts):
        assert es.ml.get_trained_models(model_id="fe-imported")["trained_model_configs"][0]["model_id"] == "fe-imported"
    listed = subprocess.run([elserve, "models", "list", *common], capture_output=True, text=True, timeout=300)
    assert any(line.startswith("fe-imported\timported") for line in listed.stdout.splitlines()), listed.stdout


def test_kill_9_of_a_under_load_b_serves_everything_and_a_rejoins(fronts: list[Server]) -> None:
    """Last in this file: it replaces front end A by a restarted one."""
    a, b = clients_of(fronts)
    a.options(request_timeout=300).inference.put(
        task_type="sparse_embedding", inference_id="fe-kill", inference_config=ELSER, timeout="300s"
    )
    b.options(request_timeout=300).inference.inference(inference_id="fe-kill", input=["warm"], timeout="300s")
    stop = threading.Event()
    on_b: list[str] = []
    on_a: list[str] = []

    def load(server: Server, into: list[str]) -> None:
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http:
            while not stop.is_set():
                try:
                    r = http.post("/_inference/sparse_embedding/fe-kill", json={"input": "a short text"})
                    into.append(str(r.status_code))
                except httpx.TransportError:
                    into.append("connection error")

    threads = [
        threading.Thread(target=load, args=(fronts[0], on_a)),
        threading.Thread(target=load, args=(fronts[1], on_b)),
    ]
    for t in threads:
        t.start()
    wait_for(lambda: len(on_b) >= 5 and len(on_a) >= 5, timeout=120)
    fronts[0].kill9()
    served_before = len(on_b)
    wait_for(lambda: len(on_b) >= served_before + 20, timeout=120)  # B goes on serving
    stop.set()
    for t in threads:
        t.join(timeout=300)
    assert set(on_b) == {"200"}, [s for s in on_b if s != "200"][:5]
    assert "connection error" in on_a  # A's in-flight and later requests fail as a dead server's do
    assert set(on_a) <= {"200", "connection error"}
    # A restarted on its port rejoins: the store's endpoints, users and deployments are all there.
    restarted = Server(fronts[0].data_dir, port=fronts[0].port, args=fronts[0].extra_args).start()
    fronts[0] = restarted  # the module fixture stops it
    es = make_client(restarted)
    wait_for(lambda: "fe-kill" in _deployments(es), timeout=120)
    answer = es.options(request_timeout=300).inference.inference(inference_id="fe-kill", input=["back"], timeout="300s")
    assert answer["sparse_embedding"][0]["embedding"]
    assert b.inference.delete(inference_id="fe-kill")["acknowledged"] is True
    with pytest.raises(NotFoundError):
        es.inference.get(inference_id="fe-kill")
