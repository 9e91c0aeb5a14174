"""``/docs/site/``: the user guide (the MkDocs site ``make docs`` builds into ``site/``), when it is built.

The site is static files, built with ``use_directory_urls: false`` so every page is a file and
links between pages are relative; it loads nothing from another origin (the Material theme's
assets are bundled, its fonts off), and every answer carries a Content-Security-Policy that keeps
it so. Before ``make docs`` has run, ``/docs/site/`` answers 404 saying how to build it.

Left out of the OpenAPI document: these are pages, not API (``/docs`` and ``/redoc`` say where they are).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from service.http.problems import ProblemError

router = APIRouter(include_in_schema=False)
#: where `make docs` (`mkdocs build`, site_dir in mkdocs.yml) writes the site: the clone's root
SITE_DIR = Path(__file__).resolve().parents[2] / "site"
INDEX = "index.html"
#: Material inlines a few scripts and styles; everything else comes from the site's own files
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'self'"
)


def site_file(site_dir: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``site_dir`` (a folder: its index.html), or None; no ``../`` escapes."""
    try:
        root = site_dir.resolve()
        path = (root / relative).resolve()
        if path.is_dir():
            path = path / INDEX
        if not path.is_relative_to(root) or not path.is_file():
            return None
    except (OSError, ValueError):  # a NUL byte or a name the file system refuses
        return None
    return path


@router.get("/docs/site")
async def docs_site_root() -> RedirectResponse:
    # the pages link to each other relatively: they must be read from under /docs/site/
    return RedirectResponse("site/", status_code=308)


@router.get("/docs/site/{relative:path}")
async def docs_site(relative: str) -> FileResponse:
    if not (SITE_DIR / INDEX).is_file():
        detail = ("the docs site is not built: run `make docs` in the clone (it writes site/), then reload; "
                  "the API docs are at /docs and /redoc")
        raise ProblemError(404, "Not Found", detail, kind="docs-not-built")
    path = site_file(SITE_DIR, relative or INDEX)
    if path is None:
        raise ProblemError(404, "Not Found", f"no page {relative!r} in the docs site", kind="not-found")
    return FileResponse(path, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                       "Cache-Control": "no-cache"})
