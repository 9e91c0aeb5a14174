"""``/docs`` and ``/redoc`` in headless Chromium: every operation renders, and no request leaves
the service's origin (the machine has no internet; a CDN asset would leave the page blank).

Needs Debian's ``chromium`` (``make test`` and ``make chromium`` install it) driven by Playwright for Python.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Deployment, embedded_env

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("docs")
    with Deployment(embedded_env(workdir), workdir, embedded=True).running() as dep:
        yield dep


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is needed for the /docs test (make chromium: apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def operations(url: str) -> list[tuple[str, str]]:
    schema = httpx.get(url + "/openapi.json").json()
    return [(m.upper(), p) for p, item in schema["paths"].items() for m in item if m in HTTP_METHODS]


def open_page(browser: object, url: str) -> tuple[object, list[str]]:
    """The page, and every URL it sent a request to: each request that reaches the network layer is
    routed through here (one the page's Content-Security-Policy blocks never does); any to another
    origin is recorded and aborted, as a machine without internet would fail it."""
    page = browser.new_page()  # type: ignore[attr-defined]
    origin = url.split("/", 3)[:3]
    requested: list[str] = []

    def route(request_route: object) -> None:
        target = request_route.request.url  # type: ignore[attr-defined]
        requested.append(target)
        if target.split("/", 3)[:3] == origin:
            request_route.continue_()  # type: ignore[attr-defined]
        else:
            request_route.abort()  # type: ignore[attr-defined]

    page.route("**/*", route)
    page.goto(url, wait_until="networkidle")
    return page, requested


def test_swagger_ui_renders_every_operation_from_the_service_alone(deployment: Deployment, browser: object) -> None:
    expected = operations(deployment.url)
    page, requested = open_page(browser, deployment.url + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    rendered = page.eval_on_selector_all(
        ".opblock .opblock-summary",
        "els => els.map(e => [e.querySelector('.opblock-summary-method').textContent.trim(),"
        " e.querySelector('.opblock-summary-path').getAttribute('data-path')])",
    )
    assert sorted(map(tuple, rendered)) == sorted(expected)
    assert requested and all(u.startswith(deployment.url + "/") for u in requested), requested


def test_redoc_renders_every_operation_from_the_service_alone(deployment: Deployment, browser: object) -> None:
    expected = operations(deployment.url)
    page, requested = open_page(browser, deployment.url + "/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    sections = page.eval_on_selector_all("[data-section-id^='operation/']", "els => els.length")
    assert sections == len(expected)
    assert requested and all(u.startswith(deployment.url + "/") for u in requested), requested
