"""Unknown query parameters are errors: ``GET /v1/jobs?stauts=failed`` is a 400 that names ``stauts``.

Why: silently ignoring a misspelt filter returns *every* record, which looks like an
answer; so does ``?limit=`` on a service that does not paginate. Request bodies already
refuse unknown keys (``extra="forbid"``); this holds query strings to the same rule.

It runs as an app-wide dependency, after routing, so it compares the request's query keys
with the parameters the matched route declares (its own and those of its dependencies,
by their aliases, e.g. ``format``), on every ``/v1`` route. The declared names are computed
once per route.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.problems import ProblemError

#: the API whose routes are checked (``/v2`` is the Open Inference Protocol, specified elsewhere)
CHECKED_PREFIX = "/v1/"
_declared_by_route: dict[int, frozenset[str]] = {}


def declared_query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter name (alias) a route accepts, through all its dependencies."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query_names(sub)
    return frozenset(names)


async def reject_unknown_query_parameters(request: Request) -> None:
    """400 ``unknown-query-parameter`` naming each query key the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.path.startswith(CHECKED_PREFIX):
        return
    declared = _declared_by_route.get(id(route))
    if declared is None:
        declared = _declared_by_route[id(route)] = declared_query_names(route.dependant)
    unknown = sorted({key for key in request.query_params if key not in declared})
    if not unknown:
        return
    accepted = ", ".join(sorted(declared)) or "none"
    raise ProblemError(
        400,
        "Bad Request",
        f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (accepted: {accepted})",
        kind="unknown-query-parameter",
        errors=[{"field": name, "message": "unknown query parameter"} for name in unknown],
    )
