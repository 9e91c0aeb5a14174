"""``/ui``: the dashboard's files, served by the app itself, outside the API document."""

from __future__ import annotations

from tests.routes.helpers import Service


def test_every_dashboard_path_gets_the_page_and_files_get_their_type(svc: Service) -> None:
    for path in ("/ui", "/ui/", "/ui/jobs", f"/ui/models/{'0' * 32}", "/ui/models/circle@production",
                 "/ui/models/circle%2Fversions%2F2", "/ui/registry", "/ui/registry/circle"):
        response = svc.anon.get(path)
        assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8", path
        assert '<script type="module" src="/ui/app.js">' in response.text
        assert '<a href="/ui/registry" data-link data-section="registry">Registry</a>' in response.text  # in the nav
    for path, media_type in (("/ui/app.js", "text/javascript"), ("/ui/pages/model.js", "text/javascript"),
                             ("/ui/pages/registry.js", "text/javascript"),
                             ("/ui/style.css", "text/css"), ("/ui/favicon.svg", "image/svg+xml")):
        response = svc.anon.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type), path


def test_the_page_may_talk_to_its_own_origin_only(svc: Service) -> None:
    policy = svc.anon.get("/ui/jobs").headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy


def test_files_are_revalidated_by_etag(svc: Service) -> None:
    first = svc.anon.get("/ui/app.js")
    assert first.headers["cache-control"] == "no-cache" and first.headers["etag"]
    again = svc.anon.get("/ui/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert svc.anon.get("/ui/app.js", headers={"If-None-Match": '"stale"'}).status_code == 200


def test_no_path_leaves_the_static_directory(svc: Service) -> None:
    # an encoded ../ reaches the route as a path segment: it gets the page, never the file behind it
    for path in ("/ui/%2e%2e/routers/ui.py", "/ui/..%2f..%2fapp.py", "/ui/%2e%2e/%2e%2e/pyproject.toml", "/ui/a%00b"):
        response = svc.anon.get(path)
        assert response.status_code == 200 and response.text.startswith("<!doctype html>"), path


def test_the_dashboard_is_not_part_of_the_api_document(svc: Service) -> None:
    paths = svc.anon.get("/openapi.json").json()["paths"]
    assert not any(path.startswith("/ui") for path in paths)
