"""Hostile paths, queries, headers and cursors are refused before the database: 400/404/422, never a 500 (issue 26, 6).

The corpus is what answered 500 (and reset the kept-alive connection) before: cursors and time
filters whose UTC form leaves the years 1-9999 (``0001-01-01T00:00:00+14:00``), cursor ids of
10**30 or of the wrong kind (an integer where ids are text: PostgreSQL refuses the comparison),
NUL bytes in path ids, filters, model references, ``/v2`` names and headers, integers beyond 64
bits in paths. It is sent to **every** route the app has (found by walking its routes, so a new
route is covered without editing this file), each parameter in turn, the others valid.

``tests/integration/test_hostile_queries_postgres.py`` sends the same corpus to the app on
PostgreSQL (:func:`build_world`, :func:`check_every_path_route`, :func:`check_every_list_route`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from lipspline_platform.db.ids import new_id
from service.http.problems import PROBLEM_JSON
from service.http.query_parameters import declared_query_names
from tests.routes.helpers import TINY_CONFIG, Service, problem

#: times that Python cannot even convert to UTC (year 0 and year 10000 there)
UNREPRESENTABLE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
#: the edges of what both databases store: accepted
EDGE_TIMES = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59Z"]
A_TIME = "2020-01-01T00:00:00+00:00"


def cursor_of(created_at: Any, ident: Any) -> str:
    """A cursor as the service encodes one, of any content."""
    raw = json.dumps([created_at, ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: cursors that decode, but name nothing a database can compare: each is a 400 bad-cursor
HOSTILE_CURSORS = {
    "year 0 in UTC": cursor_of(UNREPRESENTABLE_TIMES[0], new_id()),
    "year 10000 in UTC": cursor_of(UNREPRESENTABLE_TIMES[1], new_id()),
    "id 10**30": cursor_of(A_TIME, 10**30),
    "id -10**30": cursor_of(A_TIME, -(10**30)),
    "integer id where ids are text": cursor_of(A_TIME, 5),
    "NUL in the id": cursor_of(A_TIME, "a\x00b"),
    "a lone surrogate id": cursor_of(A_TIME, "\ud800"),
    "a float id": cursor_of(A_TIME, 1.5),
    "a null id": cursor_of(A_TIME, None),
    "a long id": cursor_of(A_TIME, "a" * 65),
    "not a time": cursor_of("2020-13-01T00:00:00+00:00", new_id()),
    "a naive time": cursor_of("2020-01-01T00:00:00", new_id()),
}
#: what a path parameter may be sent as: none names anything (NUL: 404 before any route code)
HOSTILE_PATH_VALUES = ["a\x00b", "\x00", "1" + "0" * 30, "-1", "é", "a" * 300, "%", "0" * 32]
#: a model reference (``{model_id:path}``) may also be NAME@ALIAS or NAME/versions/N
HOSTILE_REFERENCES = [*HOSTILE_PATH_VALUES, "reg@pro\x00duction", "re\x00g@production", "reg@" + "x" * 100,
                      "reg/versions/99999999999999999999", "reg/versions/1\x00", "ré@production", "reg@"]
#: a ``/v2`` version
HOSTILE_VERSIONS = ["\x00", "1\x00", "1" + "0" * 30, "²", "-1", "0"]
#: path parameters whose values are model references
REFERENCE_PARAMETERS = {"model_id:path"}
#: a body each writing route accepts when its path is valid (so only the path decides the answer)
BODIES: dict[str, Any] = {
    "/v1/models/{model_id:path}/predict": {"inputs": [[0.1, 0.2]]},
    "/v1/models/{model_id:path}/certify": {"inputs": [[0.1, 0.2]], "epsilon": 0.1},
    "/v1/registered-models/{name}/versions": {"model_id": "<model>"},
    "/v1/registered-models/{name}/aliases/{alias}": {"version": 1},
    "/v1/admin/tenants/{tenant_id}": {"quota_max_models": 100},
    "/v2/models/{name}/infer": {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64",
                                            "data": [0.1, 0.2]}]},
    "/v2/models/{name}/versions/{model_version}/infer": {"inputs": [{"name": "input", "shape": [1, 2],
                                                                     "datatype": "FP64", "data": [0.1, 0.2]}]},
}
_PARAMETER = re.compile(r"\{([^}]+)\}")


@dataclass
class World:
    """One of each resource, so a route's other path parameters can be valid while one is hostile."""

    client: TestClient
    values: dict[str, str]


def build_world(svc: Service) -> World:
    """A dataset, a job and its model, a registered model ``reg`` (version 1, alias ``production``), a running
    sweep, a webhook endpoint; and a client whose key has every scope (admin routes included)."""
    client = svc.open_client(svc.scoped_key("default", "read", "predict", "train", "admin"))
    ids = svc.trained_model()
    assert client.post("/v1/registered-models", json={"name": "reg"}).status_code == 201
    assert client.post("/v1/registered-models/reg/versions", json={"model_id": ids["model_id"]}).status_code == 201
    assert client.put("/v1/registered-models/reg/aliases/production", json={"version": 1}).status_code == 200
    sweep = client.post("/v1/sweeps", json={"dataset_id": ids["dataset_id"], "base_config": TINY_CONFIG,
                                            "space": {"objective.lambda": [1e-6, 1e-3]},
                                            "budget": {"max_trials": 2, "max_concurrent": 1}})
    assert sweep.status_code == 202, sweep.text
    hook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert hook.status_code == 201, hook.text
    tenant = next(t["id"] for t in client.get("/v1/admin/tenants").json()["items"] if t["name"] == "default")
    key = client.get("/v1/admin/keys").json()["items"][0]["id"]
    values = {"dataset_id": ids["dataset_id"], "job_id": ids["job_id"], "model_id:path": ids["model_id"],
              "model_id": ids["model_id"], "sweep_id": sweep.json()["id"], "endpoint_id": hook.json()["id"],
              "name": "reg", "alias": "production", "version": "1", "model_version": "1", "tenant_id": tenant,
              "key_id": key, "path:path": "index.html", "relative:path": "index.html"}
    return World(client, values)


def routes(svc: Service) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path template, route) of every API route of the app, ``/v2`` and the dashboard included."""
    for context in iter_route_contexts(svc.app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path:
            for method in sorted(context.methods or ()):
                yield method, context.path, route


def _path(template: str, values: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        return quote(values[name], safe="/@" if name in REFERENCE_PARAMETERS else "")

    return _PARAMETER.sub(value, template)


def _body(template: str, world: World) -> Any:
    body = BODIES.get(template)
    if body == {"model_id": "<model>"}:
        return {"model_id": world.values["model_id"]}
    return body


def answered_without_a_fault(response: httpx.Response, what: str) -> None:
    """Not a 5xx, and an error is shaped as its API says: problem+json on /v1, ``{"error"}`` on /v2."""
    assert response.status_code < 500, (what, response.status_code, response.text[:400])
    if response.status_code < 400:
        return
    if response.request.url.path.startswith("/v2"):
        assert "error" in response.json(), (what, response.text[:400])
    else:
        assert response.headers["content-type"].startswith(PROBLEM_JSON), (what, response.headers)
        assert response.json()["status"] == response.status_code, (what, response.text[:400])


def check_every_path_route(svc: Service, world: World) -> int:
    """Each path parameter of each route, in turn, hostile; returns how many requests were sent."""
    sent = 0
    for method, template, _ in routes(svc):
        for parameter in _PARAMETER.findall(template):
            if parameter in REFERENCE_PARAMETERS:
                hostile = HOSTILE_REFERENCES
            elif parameter == "model_version":
                hostile = HOSTILE_VERSIONS
            else:
                hostile = HOSTILE_PATH_VALUES
            for value in hostile:
                path = _path(template, {**world.values, parameter: value})
                response = world.client.request(method, path, json=_body(template, world))
                what = f"{method} {template} with {parameter}={value[:40]!r}"
                answered_without_a_fault(response, what)
                if "\x00" in value and not template.startswith("/ui"):  # the dashboard answers any path with its page
                    assert response.status_code == 404, (what, response.status_code, response.text[:300])
                sent += 1
    return sent


def list_routes(svc: Service) -> list[tuple[str, set[str]]]:
    """(path template, declared query names) of every paged list."""
    found = []
    for method, template, route in routes(svc):
        names = set(declared_query_names(route.dependant))
        if method == "GET" and "cursor" in names:
            found.append((template, names))
    return found


def check_every_list_route(svc: Service, world: World) -> int:
    """Every list: hostile cursors (400), unrepresentable times (422), the edge times (200), NUL in every
    query parameter (422 naming it); returns how many requests were sent."""
    sent = 0
    lists = list_routes(svc)
    assert len(lists) >= 7, lists  # datasets, jobs, webhooks, models, registered models, versions, sweeps
    for template, names in lists:
        path = _path(template, world.values)
        for why, cursor in HOSTILE_CURSORS.items():
            response = world.client.get(path, params={"cursor": cursor})
            assert response.status_code == 400, (path, why, response.text[:300])
            problem(response, 400, "bad-cursor", field="cursor")
        for parameter in ("created_after", "created_before"):
            for moment in UNREPRESENTABLE_TIMES:
                problem(world.client.get(path, params={parameter: moment}), 422, field=f"query.{parameter}")
            for moment in EDGE_TIMES:
                response = world.client.get(path, params={parameter: moment})
                assert response.status_code == 200, (path, parameter, moment, response.text[:300])
        for name in names:
            response = world.client.get(path, params={name: "a\x00b"})
            problem(response, 422, "validation-error", field=f"query.{name}")
        sent += len(HOSTILE_CURSORS) + 2 * (len(UNREPRESENTABLE_TIMES) + len(EDGE_TIMES)) + len(names)
    return sent


def check_nul_in_query_values_and_headers(svc: Service, world: World) -> None:
    """NUL in any query value (declared or not) or header: 422 naming it, on every route that takes one."""
    for method, template, route in routes(svc):
        path = _path(template, world.values)
        for name in declared_query_names(route.dependant):
            response = world.client.request(method, path, params={name: "\x00"}, json=_body(template, world))
            answered_without_a_fault(response, f"{method} {template}?{name}=NUL")
            assert response.status_code in (400, 422), (method, template, name, response.text[:300])
    problem(world.client.get("/v1/jobs", params={"a\x00": "1"}), 422, field="query.a\x00")
    dataset_id = world.values["dataset_id"]
    response = world.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG},
                                 headers={"Idempotency-Key": "a\x00b"})
    problem(response, 422, "validation-error", field="header.idempotency-key")


@pytest.fixture
def world(make_service: Callable[..., Service]) -> tuple[Service, World]:
    svc = make_service(webhook_allow_private=True)  # the endpoint of the world is a loopback URL
    return svc, build_world(svc)


def test_every_path_parameter_of_every_route_refuses_hostile_values(world: tuple[Service, World]) -> None:
    svc, built = world
    assert check_every_path_route(svc, built) > 300


def test_every_list_refuses_hostile_cursors_and_times_and_takes_the_edges(world: tuple[Service, World]) -> None:
    svc, built = world
    assert check_every_list_route(svc, built) > 100


def test_nul_in_any_query_value_or_header_is_a_422_naming_it(world: tuple[Service, World]) -> None:
    check_nul_in_query_values_and_headers(*world)


def test_the_answers_name_what_is_wrong(svc: Service) -> None:
    body = problem(svc.client.get("/v1/datasets/a%00b"), 404, "not-found")
    assert "dataset_id" in body["detail"]
    body = problem(svc.client.get("/v1/jobs", params={"created_after": UNREPRESENTABLE_TIMES[0]}), 422,
                   field="query.created_after")
    assert "1-9999" in body["detail"]
    assert "id" in problem(svc.client.get("/v1/jobs", params={"cursor": HOSTILE_CURSORS["id 10**30"]}), 400)["detail"]
    assert svc.client.post("/v1/registered-models", json={"name": "reg"}).status_code == 201
    huge = problem(svc.client.get("/v1/registered-models/reg/versions/" + "9" * 30), 422, field="path.version")
    assert str(2**63 - 1) in huge["detail"]
    # a cursor the service made is still taken: the edges of the representable range included
    for moment in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)):
        response = svc.client.get("/v1/jobs", params={"cursor": cursor_of(moment.isoformat(), new_id())})
        assert response.status_code == 200, response.text
    # an unknown model id of the wrong form is the same 404 as an unknown one of the right form
    for ident in ("nope", "0" * 32):
        answer = problem(svc.client.post(f"/v1/models/{ident}/predict", json={"inputs": [[0.0, 0.0]]}), 404)
        assert answer["detail"] == f"model {ident!r} does not exist"
