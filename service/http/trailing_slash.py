"""``/v1/jobs/`` is ``/v1/jobs``: a trailing slash is dropped before routing.

Why: Starlette answers a path that matches only without its trailing slash with a 307 to
the other spelling and an empty body. Many clients do not follow a redirect for a POST, or
drop the ``Authorization`` header when they do, so ``POST /v1/datasets/`` failed with a bare
307. Rewriting the path in place serves the same route directly, whatever the method.
"""

from __future__ import annotations

from typing import Any

#: paths rewritten: the JSON API (``/ui/`` and the docs keep their own rules)
REWRITTEN_PREFIX = "/v1/"


class TrailingSlash:
    """ASGI middleware: ``/v1/x/`` -> ``/v1/x`` (``path`` and ``raw_path``) for HTTP requests."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(REWRITTEN_PREFIX) and path.endswith("/"):
                scope = dict(scope, path=path.rstrip("/"))
                raw_path = scope.get("raw_path")
                if raw_path:
                    scope["raw_path"] = raw_path.rstrip(b"/")
        await self.app(scope, receive, send)
