"""``/ui``: the dashboard, static files shipped in the package (``service/ui/static``), no key needed to load.

The page itself holds no data: it asks for the API key, keeps it in the browser's session
storage, and calls the public ``/v1`` routes with it like any other client. So this router only
serves files:

* ``/ui`` and every ``/ui/...`` path that is not a file get ``index.html`` (the dashboard routes
  in the browser, so a reloaded ``/ui/models/<id>`` must load the same page);
* files get their content type, an ``ETag`` and ``Cache-Control: no-cache`` (the browser keeps
  them and revalidates: a 304 costs a few bytes, and a new release is picked up at once);
* every answer carries a Content-Security-Policy that lets the page talk to its own origin only,
  so nothing the dashboard does can leave the machine, and a stray external URL fails loudly.

The routes are left out of the OpenAPI document: they are not part of the API.
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parent.parent / "ui" / "static"
INDEX = "index.html"
#: own origin only; images may be data:/blob: URLs (downloads are blobs fetched with the key)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
#: types this module serves, fixed here rather than taken from the host's mime.types (which varies)
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


@lru_cache(maxsize=128)
def _asset(relative: str) -> tuple[bytes, str, str] | None:
    """The file's bytes, content type and ETag, or None if ``relative`` names no file under STATIC_DIR."""
    try:
        path = (STATIC_DIR / relative).resolve()
        if not path.is_relative_to(STATIC_DIR) or not path.is_file():  # no ../ escapes
            return None
    except (OSError, ValueError):  # a NUL byte or a name the file system refuses: not a file of ours
        return None
    content = path.read_bytes()
    content_type = CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return content, content_type, '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _serve(request: Request, relative: str) -> Response:
    asset = _asset(relative) or _asset(INDEX)
    assert asset is not None, f"{STATIC_DIR / INDEX} is missing from the package"
    content, content_type, etag = asset
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(content, media_type=content_type, headers=headers)


@router.get("/ui")
def dashboard(request: Request) -> Response:
    return _serve(request, INDEX)


@router.get("/ui/{path:path}")
def dashboard_file(path: str, request: Request) -> Response:
    return _serve(request, path)
