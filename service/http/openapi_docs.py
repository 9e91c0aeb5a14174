"""How errors and auth appear in the OpenAPI document: declared here once, for every route.

The service answers every error as ``application/problem+json`` (``service/http/problems.py``).
Left alone, FastAPI documents none of that: it lists only the statuses a route declares,
and adds to every route with parameters a 422 whose body is its own ``HTTPValidationError``
JSON, which this service never sends. So a client generated from ``/openapi.json`` (or
schemathesis' ``status_code_conformance``) would meet statuses and bodies it was not told of.

Two sources of statuses, documented in two ways:

* statuses a *handler* raises (404 for an unknown id, 409 for a state conflict, 415, 503)
  are declared on the route with :func:`problems`, next to the code that raises them;
* statuses a *shared layer* answers are added by :func:`install_openapi` wherever that
  layer runs, so no route can forget them: 400 (an unknown query parameter), 401, 403 and 429
  on every operation that needs the API key (the ``*Tenant`` dependencies of ``service/security/deps.py``,
  visible as the operation's ``security``), 400 (an unparsable body), 413 (``BodySizeLimit``)
  and 422 (validation) on every operation with a request body, and 422 on every operation
  with query or header parameters (or constrained path parameters). FastAPI's own
  422 is replaced by the problem+json one, or removed where only plain string path
  parameters exist, which cannot fail validation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api_schemas.http import Problem
from service.http.problems import PROBLEM_JSON

REF_PREFIX = "#/components/schemas/"
PROBLEM_REF = REF_PREFIX + "Problem"
#: FastAPI's automatic 422 schemas, replaced by Problem
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

_DESCRIPTIONS = {
    400: "the request cannot be parsed: a body that is not JSON, not UTF-8 or broken multipart, an unknown "
    "query parameter (`unknown-query-parameter`), or a list cursor this service did not make",
    401: "no API key, or an unknown, revoked or expired one",
    403: "the API key lacks the scope this route needs (`insufficient-scope`, `required_scope` names it)",
    404: "unknown id, or an id of another tenant (answered alike)",
    409: "conflicts with the resource's current state",
    413: "the request body exceeds LIPSPLINE_MAX_UPLOAD_BYTES (counted as it streams in)",
    415: "unsupported Content-Type",
    422: "invalid request, or a configured limit exceeded: `errors` names each field at fault",
    429: "the API key's request rate is exceeded (per key; shared by all API processes with a Redis broker)",
    503: "a dependency (database or broker) is unreachable",
}


def _header(description: str, schema_type: str = "string", *, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": schema_type}}


_PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": _header('the scheme to use: `Bearer realm="lipspline"`')},
    429: {"Retry-After": _header("whole seconds to wait before retrying", "integer")},
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented error: a Problem body as ``application/problem+json``, with the status' headers."""
    response: dict[str, Any] = {
        "description": description or _DESCRIPTIONS.get(status, "error"),
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status in _PROBLEM_HEADERS:
        response["headers"] = dict(_PROBLEM_HEADERS[status])
    return response


def problems(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ``problems(404, (409, "the job has already finished"))``."""
    declared: dict[int | str, dict[str, Any]] = {}
    for item in statuses:
        status, description = item if isinstance(item, tuple) else (item, None)
        declared[status] = problem_response(status, description)
    return declared


def created_headers(what: str, *, accepted: bool = False) -> dict[str, Any]:
    """Headers of a 201/202 from a POST that takes an ``Idempotency-Key`` (merged into its success response).

    ``accepted``: a 202, whose work goes on after the answer; ``Retry-After`` says when to look at ``Location``.
    """
    headers = {
        "Location": _header(f"path of the new {what}"),
        "Idempotent-Replayed": _header(
            "`true` when this is the stored response of an earlier request with the same Idempotency-Key",
            required=False,
        ),
    }
    if accepted:
        headers["Retry-After"] = _header(f"whole seconds before it is worth asking `Location` how the {what} is doing",
                                         "integer")
    return {"headers": headers}


#: request bodies a route parses itself (declared with :func:`json_body`), added to the components
_BODY_MODELS: dict[str, type[BaseModel]] = {}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra=`` for a route that reads its JSON body itself: documents it as ``model``.

    ``predict`` parses its body without FastAPI (``service/http/predict_body.py``) but validates it
    against the same pydantic model, so the document states that model, by reference as FastAPI would.
    """
    _BODY_MODELS[model.__name__] = model
    schema = {"$ref": REF_PREFIX + model.__name__}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def component(model: type[BaseModel]) -> dict[str, str]:
    """A ``$ref`` to ``model``, added to the components: for a schema FastAPI does not see itself
    (the JSON of each event of a ``text/event-stream`` response)."""
    _BODY_MODELS[model.__name__] = model
    return {"$ref": REF_PREFIX + model.__name__}


def _component_schemas(model: type[BaseModel], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF_PREFIX + "{model}", mode=mode)
    nested = schema.pop("$defs", {})
    return {model.__name__: schema, **nested}


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template=REF_PREFIX + "{model}", mode="serialization")
    nested = schema.pop("$defs", {})
    return {"Problem": schema, **nested}


_STRING_CONSTRAINTS = ("maxLength", "minLength", "pattern", "enum", "format")


def _can_fail(parameter: dict[str, Any]) -> bool:
    # a plain string path parameter matches any segment; a typed or constrained one can be refused
    if parameter.get("in") != "path":
        return True
    schema = parameter.get("schema", {})
    return schema.get("type", "string") != "string" or any(key in schema for key in _STRING_CONSTRAINTS)


def _answers_422(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation or any(_can_fail(p) for p in operation.get("parameters", []))


def _is_fastapi_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == REF_PREFIX + "HTTPValidationError"


def _declare_scope(operation: dict[str, Any]) -> None:
    """The scope a route needs (from its ``security`` requirement) as ``x-required-scope`` and in words."""
    scopes = sorted({scope for requirement in operation["security"] for scopes in requirement.values()
                     for scope in scopes})
    if not scopes:
        return
    operation["x-required-scope"] = scopes[0] if len(scopes) == 1 else scopes
    needed = " and ".join(f"`{scope}`" for scope in scopes)
    note = f"Needs an API key with the {needed} scope (or `admin`)."
    if "admin" in scopes:
        note = "Needs an API key with the `admin` scope."
    description = operation.get("description", "")
    if note not in description:
        operation["description"] = f"{description}\n\n{note}".strip()


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared layers' error responses and the Problem schema to a generated document (in place)."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if _is_fastapi_422(responses.get("422", {})):
                del responses["422"]
            shared: list[int] = []
            if operation.get("security"):
                # every /v1 operation refuses query parameters it does not declare (service/http/query_parameters.py)
                shared += [400, 401, 403, 429]
                _declare_scope(operation)
            if "requestBody" in operation:
                shared += [400, 413]
            if _answers_422(operation):
                shared.append(422)
            for status in shared:
                # a route's own declaration (with its more precise description) wins
                responses.setdefault(str(status), problem_response(status))
            operation["responses"] = dict(sorted(responses.items()))
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(_problem_schemas())
    for model in _BODY_MODELS.values():
        schemas.update(_component_schemas(model, "validation"))
    return schema


def operation_id_of(route: APIRoute) -> str:
    """A route's operationId: its handler's name (``submit_job``), short and stable for generated clients.

    FastAPI's default appends the path and method (``submit_job_v1_jobs_post``). Names must then be
    unique across the app: :func:`install_openapi` refuses a document where two operations share one.
    """
    return route.name


def _unique_operation_ids(schema: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    for path, path_item in schema.get("paths", {}).items():
        for method, operation in path_item.items():
            where = f"{method.upper()} {path}"
            operation_id = operation["operationId"]
            if operation_id in seen:
                raise RuntimeError(f"operationId {operation_id!r} of {where} is also that of {seen[operation_id]}")
            seen[operation_id] = where


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json`` and ``/docs``) return the completed document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_problems(generate())
            _unique_operation_ids(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
