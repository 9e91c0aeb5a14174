"""The one check of every request's parameters before a route sees them: unknown names, NUL bytes, huge integers.

Unknown query parameters are errors: ``GET /v1/jobs?stauts=failed`` is a 400 that names
``stauts``. Why: silently ignoring a misspelt filter returns *every* record, which looks
like an answer; so does ``?limit=`` on a service that does not paginate. Request bodies
already refuse unknown keys (``extra="forbid"``); this holds query strings to the same rule.

Values the databases cannot take are refused here, for every route of the APIs (``/v1``
and ``/v2``; the dashboard's ``/ui/...`` reads no database and answers any path with its
page), so that no route has to remember them and none answers a 500 for them:

* a **NUL byte** in a path parameter is a 404 (nothing has such an id or name), in a query
  parameter or a header a 422 naming it. PostgreSQL text cannot hold NUL: comparing a
  column with such a value is an error, not an empty answer.
* an **integer parameter** (path, query or header) beyond 64 bits is a 422 naming it: SQLite
  cannot bind it, so ``/versions/1000000000000000000000`` would otherwise be a 500. (Most
  integer parameters have tighter bounds of their own; this covers those without.)

Ids of the wrong form, cursors and times out of range are refused where they are read
(``service/security/ownership.py``, ``service/inference/model_refs.py``, ``service/http/pagination.py``).

It runs as an app-wide dependency, after routing and before the route's own dependencies,
so it sees the matched route's declared parameters (its own and those of its dependencies,
by their aliases, e.g. ``format``); what it needs of a route is computed once per route.
The common case costs a membership test per path parameter and header and one substring
search of the raw query string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.http.problems import ProblemError, invalid_field, not_found

#: the API whose routes refuse unknown query parameters (``/v2`` is the Open Inference Protocol, specified elsewhere)
CHECKED_PREFIX = "/v1/"
#: the APIs whose parameters are held to what the databases can take
API_PREFIXES = ("/v1/", "/v2")
#: what a 64-bit integer column (and SQLite's binding) holds
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: an integer as pydantic reads one from text: sign, digits (underscores allowed), a zero fraction
_INTEGER_TEXT = re.compile(r"\s*([+-]?[0-9][0-9_]*)(?:\.0*)?\s*")


@dataclass(frozen=True)
class _RouteParameters:
    """What the checks need to know of a route's parameters."""

    #: every query parameter name (alias) the route accepts
    query_names: frozenset[str]
    #: (location, alias) of each integer parameter: location is "path", "query" or "header"
    integers: tuple[tuple[str, str], ...]


def declared_query_names(dependant: Dependant) -> frozenset[str]:
    """Every query parameter name (alias) a route accepts, through all its dependencies."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query_names(sub)
    return frozenset(names)


def _is_integer(annotation: Any) -> bool:
    if annotation is int:
        return True
    arguments = get_args(annotation)
    return (get_origin(annotation) in (Union, UnionType) and int in arguments
            and all(a in (int, NoneType) for a in arguments))


def _header_name(alias: str) -> str:
    return alias.replace("_", "-")  # how FastAPI reads a header parameter named in Python (last_event_id)


def _integer_parameters(dependant: Dependant) -> set[tuple[str, str]]:
    found = set()
    for location, fields in (("path", dependant.path_params), ("query", dependant.query_params),
                             ("header", dependant.header_params)):
        found |= {(location, _header_name(f.alias) if location == "header" else f.alias)
                  for f in fields if _is_integer(f.field_info.annotation)}
    for sub in dependant.dependencies:
        found |= _integer_parameters(sub)
    return found


def _parameters_of(route: APIRoute) -> _RouteParameters:
    # kept on the route object itself (an ``id()`` could be reused once a route is gone)
    known = getattr(route, "_lipspline_parameters", None)
    if known is None:
        integers = tuple(sorted(_integer_parameters(route.dependant)))
        known = _RouteParameters(declared_query_names(route.dependant), integers)
        route._lipspline_parameters = known  # type: ignore[attr-defined]
    return known


def beyond_int64(text: str) -> bool:
    """Whether ``text`` reads as an integer (as pydantic reads one) outside 64 bits; other text is left alone."""
    if len(text) <= 18:  # 18 characters cannot hold a number of 2**63 or more
        return False
    match = _INTEGER_TEXT.fullmatch(text)
    if match is None:
        return False
    digits = match.group(1).replace("_", "")
    if len(digits.lstrip("+-").lstrip("0")) > 19:  # longer than any 64-bit number: no need to convert it
        return True
    return not INT64_MIN <= int(digits) <= INT64_MAX


def _refuse_unsafe_values(request: Request, parameters: _RouteParameters) -> None:
    """404 for a NUL byte in the path; 422 naming the parameter for one in a query value or header,
    or for an integer parameter beyond 64 bits."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise not_found(name, value)
    raw_query = request.scope.get("query_string") or b""
    if b"%00" in raw_query or b"\x00" in raw_query:
        for name, value in request.query_params.multi_items():
            if "\x00" in name or "\x00" in value:
                raise invalid_field(f"query.{name}", "must not contain a NUL byte")
    for name, value in request.scope.get("headers") or ():
        if b"\x00" in value:
            raise invalid_field(f"header.{name.decode('latin-1')}", "must not contain a NUL byte")
    for location, alias in parameters.integers:
        if location == "path":
            value = request.path_params.get(alias)
        else:
            value = (request.query_params if location == "query" else request.headers).get(alias)
        if isinstance(value, str) and beyond_int64(value):
            raise invalid_field(f"{location}.{alias}", f"must be an integer from {INT64_MIN} to {INT64_MAX}")


async def reject_unknown_query_parameters(request: Request) -> None:
    """Refuse what no route can take (see the module's docstring); then, on ``/v1``, 400
    ``unknown-query-parameter`` naming each query key the route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    path = request.url.path
    if not path.startswith(API_PREFIXES):
        return
    parameters = _parameters_of(route)
    _refuse_unsafe_values(request, parameters)
    if not path.startswith(CHECKED_PREFIX):
        return
    unknown = sorted({key for key in request.query_params if key not in parameters.query_names})
    if not unknown:
        return
    accepted = ", ".join(sorted(parameters.query_names)) or "none"
    raise ProblemError(
        400,
        "Bad Request",
        f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (accepted: {accepted})",
        kind="unknown-query-parameter",
        errors=[{"field": name, "message": "unknown query parameter"} for name in unknown],
    )
