from __future__ import annotations

import pytest

from tests.e2e.hub import ARTIFACTS, CHROMIUM, Hub, require_e2e_deps


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """One platform per module: hub, proxy, PAI service with 2 simulated GPUs; users alice and bob
    (bob in hub group ``research``); the culler at its default (it never fires during a test)."""
    require_e2e_deps()
    h = Hub(tmp_path_factory.mktemp("hub"), args=("--group", "research:bob"))
    try:
        h.start()
        yield h
    finally:
        h.stop()
        h.kill_tasks()


@pytest.fixture(scope="module")
def browser():
    require_e2e_deps()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shot():
    """``shot(page, name)`` saves a full-page screenshot under test-artifacts/e2e/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    return take


def login(browser, hub: Hub, username: str, password: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(90_000)  # generous: CI has 2 cores, shared with other suites
    page.set_default_navigation_timeout(90_000)
    page.goto(hub.url + "/hub/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login_submit")
    page.wait_for_load_state()
    return context, page
