"""The built docs site, served by the service at /docs/site/, in headless Chromium: pages load, the
navigation and the search work, and no request leaves the service's origin (no CDN, no web fonts).

Needs Debian's ``chromium`` driven by Playwright, like ``tests/e2e/test_docs_offline.py``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lipspline_platform.settings import Settings
from service.app import create_app
from service.routers import docs_site
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def served_site(built_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The service (its HTTP routes; no worker, no reconciler) serving the freshly built site."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(docs_site, "SITE_DIR", built_site)
    app = create_app(Settings(data_dir=tmp_path / "data"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def test_site_renders_navigates_and_searches_offline(served_site: str) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is needed for the docs site browser test (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            outside: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("request", lambda request: None if request.url.startswith((served_site + "/", "data:"))
                    else outside.append(request.url))
            page.goto(served_site + "/docs/site", wait_until="networkidle")  # redirected to /docs/site/
            assert page.title().startswith("LipSpline")
            page.click("nav >> text=Quick start")
            page.wait_for_load_state("networkidle")
            assert page.url.endswith("/docs/site/quickstart.html")
            # typed as a user types it (click, then keys): a programmatic fill() sometimes left the search
            # without results; the index is built in a web worker, slow on a loaded machine, and a query typed
            # before it is ready may be dropped, so the query is typed again (twice at most) while waiting
            for attempt in range(3):
                page.click("input.md-search__input")
                page.keyboard.press("Control+A")
                page.keyboard.press("Backspace")
                page.keyboard.type("certified radius", delay=20)
                try:
                    page.wait_for_selector(".md-search-result__item", timeout=40_000)
                    break
                except playwright_api.TimeoutError:
                    if attempt == 2:
                        raise
            page.goto(served_site + "/docs/site/reference/http.html", wait_until="networkidle")
            assert "/v1/sweeps" in page.content()
        finally:
            browser.close()
    assert not errors, errors
    assert not outside, outside
