"""The console in a real headless Chromium (Debian's, driven by Playwright) against a real server:
the steps a user takes, a screenshot of each saved under `.test-artifacts/console/` (or
`$ELSERVE_TEST_ARTIFACTS/console/`), and what a user with only `monitor_inference` and a visitor
without credentials see. `make test-console` installs the browser and runs these."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import ApiError

from tests.support.clients import make_client
from tests.support.server import PASSWORD, Server

pytestmark = pytest.mark.console

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a machine with no network beyond loopback (each background service would fail to connect).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ELSERVE_TEST_ARTIFACTS", ROOT / ".test-artifacts")) / "console"
DOCUMENT = (
    "Sparse retrieval maps a text to weighted vocabulary terms. Each term's weight says how much it "
    "matters. Long documents are cut into chunks before they are embedded, because the model reads at "
    "most 512 word pieces. The chunker keeps sentences whole where it can. A preview shows where each "
    "chunk begins and ends, and which terms carry it."
)
# Bounds against a hang, not speed: a first deployment downloads and loads the model.
DEPLOY_MS = 300_000
STEP_MS = 60_000


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Room for two allocations of one thread whatever this machine has.
    with Server(tmp_path_factory.mktemp("console") / "data", args=["--processors", "4"]).start() as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test-console` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    page.set_default_timeout(STEP_MS)
    yield page
    context.close()
    assert not errors, errors  # no script error on any step


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page, server: Server, user: str, password: str) -> None:
    page.goto(server.url + "/_elserve/console")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.press("#login-password", "Enter")  # the keyboard, as a user without a mouse would
    page.wait_for_selector("#app:not([hidden])")


def test_a_visitor_without_credentials_sees_only_the_login_form(console_server: Server, page) -> None:
    loads: list[int] = []
    page.on("response", lambda response: loads.append(len(response.body())))
    page.goto(console_server.url + "/_elserve/console")
    assert page.is_visible("#login-form")
    assert page.is_hidden("#app")
    assert page.locator("#app table").count() == 0  # nothing was fetched to fill it
    first_paint = page.evaluate(
        "performance.getEntriesByType('paint')"
        ".filter(e => e.name === 'first-contentful-paint').map(e => e.startTime)[0]"
    )
    shot(page, "00-login-form")
    page.fill("#login-password", "wrong-password")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('Wrong user name')")
    assert page.is_hidden("#app")
    shot(page, "00-wrong-password")
    figures = {"first_load_bytes": sum(loads), "first_contentful_paint_ms": round(first_paint or 0, 1)}
    (ARTIFACTS / "first-load.json").write_text(json.dumps(figures))
    print(
        f"\nconsole first load: {figures['first_load_bytes'] / 1024:.1f} KB, "
        f"first paint {figures['first_contentful_paint_ms']} ms"
    )


def test_a_user_creates_watches_tries_previews_scales_and_deletes(console_server: Server, page) -> None:
    es = make_client(console_server)
    log_in(page, console_server, "elastic", PASSWORD)
    shot(page, "01-logged-in")

    # Create an endpoint through the form; a bad one first shows the API's own message.
    page.click("#create summary")
    page.fill("#c-id", "Bad Id")
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#create-result.error")
    with pytest.raises(ApiError) as refused:
        es.inference.put(
            task_type="sparse_embedding",
            inference_id="Bad Id",
            inference_config={
                "service": "elasticsearch",
                "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
            },
        )
    assert refused.value.body["error"]["reason"] in page.inner_text("#create-result")
    page.fill("#c-id", "console-elser")
    page.fill("#c-allocations", "1")
    page.click("#create-form button[type=submit]")
    page.wait_for_selector("#create-result:has-text('console-elser')", timeout=DEPLOY_MS)
    page.wait_for_selector("#endpoints-body th:has-text('console-elser')")
    shot(page, "02-endpoint-created")

    # Its deployment reaches fully_allocated, as `_stats` says.
    page.wait_for_selector("#deployments-body :text('started / fully_allocated')", timeout=DEPLOY_MS)
    stats = es.ml.get_trained_models_stats(model_id="console-elser")["trained_model_stats"][0]["deployment_stats"]
    assert stats["allocation_status"]["state"] == "fully_allocated"
    shot(page, "03-fully-allocated")

    # Try a text: the top token shown is the API's top token.
    page.select_option("#try-endpoint", "console-elser")
    page.fill("#try-text", "the quick brown fox jumps over the lazy dog")
    page.click("#try-form button[type=submit]")
    page.wait_for_selector("#try-chart .bars li")
    embedding = es.inference.sparse_embedding(
        inference_id="console-elser", input=["the quick brown fox jumps over the lazy dog"]
    )
    weights = embedding["sparse_embedding"][0]["embedding"]
    top = max(weights, key=lambda token: weights[token])
    assert page.inner_text("#try-chart .bars li .token >> nth=0") == top
    assert f"top: {top}" in page.inner_text("#try-result")
    assert page.locator("#try-chart .bars li").count() == min(20, len(weights))
    assert "curl" in page.inner_text("#try-curl") and "es.inference.sparse_embedding" in page.inner_text("#try-python")
    shot(page, "04-try-it")

    # Preview the chunks of a document: as many highlighted chunks as the API gives.
    page.select_option("#chunk-endpoint", "console-elser")
    page.select_option("#chunk-strategy", "sentence")
    page.fill("#chunk-size", "20")
    page.fill("#chunk-overlap", "0")
    page.fill("#chunk-text", DOCUMENT)
    page.click("#chunk-form button[type=submit]")
    page.wait_for_selector("#chunk-list li")
    chunked = es.perform_request(
        "POST",
        "/_inference/sparse_embedding/console-elser",
        headers={"content-type": "application/json", "accept": "application/json"},
        body={
            "input": [DOCUMENT],
            "chunk": True,
            "return_text": False,
            "chunking_settings": {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0},
        },
    )
    chunks = chunked.body["chunked_inference_service_result"][0]
    assert len(chunks) > 1
    assert page.locator("#chunk-list li").count() == len(chunks)
    assert page.locator("#chunk-doc .chunk-no").count() == len(chunks)
    assert page.inner_text("#chunk-doc").replace("\n", " ").count("[") == len(chunks)
    shot(page, "05-chunk-preview")

    # Change allocations: 2, and the page shows 2 / 2 once both are up.
    row = page.locator("#deployments-body tr", has_text="console-elser")
    row.locator("input[aria-label='Allocations of console-elser']").fill("2")
    row.get_by_role("button", name="Set allocations").click()
    page.wait_for_selector("#deployments-body td:has-text('2 / 2')", timeout=DEPLOY_MS)
    stats = es.ml.get_trained_models_stats(model_id="console-elser")["trained_model_stats"][0]["deployment_stats"]
    assert stats["allocation_status"]["allocation_count"] == 2
    shot(page, "06-two-allocations")

    # Delete the endpoint: gone from the page and from the API.
    page.get_by_role("button", name="Delete endpoint console-elser").click()
    page.wait_for_selector("#endpoints-body th:has-text('console-elser')", state="detached")
    assert all(e["inference_id"] != "console-elser" for e in es.inference.get()["endpoints"])
    shot(page, "07-deleted")


def test_a_monitor_inference_user_sees_state_and_no_button_that_would_fail(console_server: Server, page) -> None:
    es = make_client(console_server)
    es.security.put_user(username="watcher", password="watcher-pass", roles=["inference_user"])
    es.inference.put(
        task_type="sparse_embedding",
        inference_id="watched",
        inference_config={
            "service": "elasticsearch",
            "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
        },
        timeout="300s",
    )
    log_in(page, console_server, "watcher", "watcher-pass")
    page.wait_for_selector("#endpoints-body th:has-text('watched')")
    assert page.is_hidden("#create")  # no create form
    assert page.locator("#app button.danger").count() == 0  # no delete or stop
    assert page.get_by_role("button", name="Set allocations").count() == 0
    # What its roles cannot read says so, instead of failing.
    assert "lack monitor_ml" in page.inner_text("#deployments-body")
    # It may infer: Try it works.
    page.select_option("#try-endpoint", "watched")
    page.click("#try-form button[type=submit]")
    page.wait_for_selector("#try-chart .bars li")
    shot(page, "08-monitor-inference-user")
    es.inference.delete(inference_id="watched")


def test_narrow_screen_keeps_one_column(console_server: Server, browser) -> None:
    context = browser.new_context(viewport={"width": 380, "height": 800})
    page = context.new_page()
    log_in(page, console_server, "elastic", PASSWORD)
    width = page.evaluate("document.documentElement.scrollWidth")
    shot(page, "09-narrow-screen")
    context.close()
    assert width <= 380 + 1  # nothing wider than the screen: tables scroll inside their own box


def test_an_api_key_logs_in_too(console_server: Server, page) -> None:
    es = make_client(console_server)
    key = es.security.create_api_key(name="console-key")["encoded"]
    page.goto(console_server.url + "/_elserve/console")
    page.check("input[name=kind][value=apikey]")
    page.fill("#login-apikey", key)
    page.press("#login-apikey", "Enter")
    page.wait_for_selector("#app:not([hidden])")
    assert page.inner_text("#who-name").startswith("elastic")
    page.click("#logout")
    assert page.is_visible("#login-form") and page.is_hidden("#app")
