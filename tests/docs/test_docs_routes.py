"""``/docs/site/`` serves the built user guide (404 saying how to build it before ``make docs``), and
``/redoc`` loads a ReDoc bundle that names no other origin. In-process, no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lipspline_platform.settings import Settings
from service.app import create_app
from service.routers import docs_site


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "data", broker_url="embedded://", database_url=None))
    yield TestClient(app)  # no lifespan: no reconciler or dispatcher threads for page tests


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    (folder / "how-to").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>LipSpline</h1>")
    (folder / "how-to" / "train.html").write_text("<h1>Train</h1>")
    (tmp_path / "secret.txt").write_text("outside the site")
    monkeypatch.setattr(docs_site, "SITE_DIR", folder)
    return folder


def test_unbuilt_site_says_how_to_build_it(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setattr(docs_site, "SITE_DIR", tmp_path / "nothing-here")
    answer = client.get("/docs/site/")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "make docs" in answer.json()["detail"]


def test_built_site_is_served_with_a_self_only_policy(client: TestClient, site: Path) -> None:
    index = client.get("/docs/site/")
    assert index.status_code == 200 and "LipSpline" in index.text
    assert index.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert client.get("/docs/site/how-to/train.html").text == "<h1>Train</h1>"
    assert client.get("/docs/site/search.html?q=bound").status_code == 404  # a query string is no 400
    redirect = client.get("/docs/site", follow_redirects=False)
    assert redirect.status_code == 308 and redirect.headers["location"] == "site/"


def test_site_never_serves_a_file_outside_it(client: TestClient, site: Path) -> None:
    escapes = ("/docs/site/%2e%2e/secret.txt", "/docs/site/..%2fsecret.txt",
               "/docs/site/how-to/%2e%2e/%2e%2e/secret.txt")
    for path in escapes:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "outside the site" not in answer.text


def test_redoc_fetches_nothing_from_a_cdn(client: TestClient) -> None:
    page = client.get("/redoc").text
    assert "/docs-assets/redoc.offline.js" in page and "https://" not in page.split("<body>", 1)[-1]
    bundle = client.get("/docs-assets/redoc.offline.js")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert b"cdn.redoc.ly" not in bundle.content and len(bundle.content) > 500_000
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200  # the mount still serves the rest
