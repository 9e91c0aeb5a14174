"""``/docs`` (Swagger UI) and ``/redoc`` served entirely by the service: no CDN, works offline.

FastAPI's default pages load their scripts and stylesheets from a public CDN (and ReDoc its
fonts from Google), so on a network without internet access they are blank. The assets come
from the installed ``fastapi-offline`` package instead (Swagger UI and ReDoc bundles, pinned by
its version), served under ``/docs-assets``; ReDoc's bundle names one remote image (its logo), which
is replaced by an inline one as the bundle is served. ``tests/e2e/test_docs_offline.py`` opens both pages
in headless Chromium and checks every operation renders and no request leaves the origin.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
#: ReDoc's bundle, served with its one remote URL replaced (see :func:`redoc_bundle`)
REDOC_JS = f"{ASSETS}/redoc.offline.js"
#: the only URL in ReDoc's bundle that a page would fetch: the logo beside "API docs by Redocly"
REDOC_REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
#: an empty inline SVG in its place: nothing is fetched, and the link text still credits ReDoc
LOCAL_LOGO = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"
#: the pages may load only from the service itself (a second line of defence: nothing on them
#: names another origin any more)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; connect-src 'self'"
)


def _self_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


@lru_cache(maxsize=1)
def redoc_bundle() -> bytes:
    """ReDoc's standalone bundle with its remote logo replaced by an inline one (no CDN, even for an image)."""
    bundle = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_REMOTE_LOGO, LOCAL_LOGO)


def install_docs(app: FastAPI) -> None:
    """Mount the bundled assets and the two pages (create the app with docs_url=redoc_url=None)."""
    folder = files("fastapi_offline") / "static"

    # before the mount below, which would otherwise answer every path under ASSETS
    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(redoc_bundle(), media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=3600"})

    app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _self_only(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{title} - Swagger UI",
                oauth2_redirect_url="/docs/oauth2-redirect",
                swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS}/favicon.png",
            )
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _self_only(
            get_redoc_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{title} - ReDoc",
                redoc_js_url=REDOC_JS,
                redoc_favicon_url=f"{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )
