"""Probes, the OpenAPI document, and the problem+json shape of the framework's own errors."""

from __future__ import annotations

import pytest

import lipspline_platform.db.engine as db_engine
import service.routers.health as health_router
from tests.routes.helpers import Service, problem

#: every route of the API (method, path template): the tests of this package cover each one
ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/datasets"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/{dataset_id}"),
    ("GET", "/v1/datasets/{dataset_id}/preview"),
    ("DELETE", "/v1/datasets/{dataset_id}"),
    ("PATCH", "/v1/datasets/{dataset_id}"),
    ("PUT", "/v1/storage/credentials"),
    ("GET", "/v1/storage/credentials"),
    ("DELETE", "/v1/storage/credentials"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("PATCH", "/v1/jobs/{job_id}"),
    ("GET", "/v1/jobs/{job_id}/metrics"),
    ("POST", "/v1/jobs/{job_id}/cancel"),
    ("GET", "/v1/jobs/{job_id}/events"),
    ("GET", "/v1/jobs/{job_id}/deliveries"),
    ("POST", "/v1/webhooks/secret"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/deliveries"),
    ("DELETE", "/v1/webhooks/{endpoint_id}"),
    ("POST", "/v1/sweeps"),
    ("GET", "/v1/sweeps"),
    ("GET", "/v1/sweeps/{sweep_id}"),
    ("PATCH", "/v1/sweeps/{sweep_id}"),
    ("POST", "/v1/sweeps/{sweep_id}/cancel"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model_id}"),
    ("PATCH", "/v1/models/{model_id}"),
    ("POST", "/v1/models/{model_id}/predict"),
    ("POST", "/v1/registered-models"),
    ("GET", "/v1/registered-models"),
    ("GET", "/v1/registered-models/{name}"),
    ("DELETE", "/v1/registered-models/{name}"),
    ("POST", "/v1/registered-models/{name}/versions"),
    ("GET", "/v1/registered-models/{name}/versions"),
    ("GET", "/v1/registered-models/{name}/versions/{version}"),
    ("GET", "/v1/registered-models/{name}/aliases"),
    ("PUT", "/v1/registered-models/{name}/aliases/{alias}"),
    ("DELETE", "/v1/registered-models/{name}/aliases/{alias}"),
    ("GET", "/v1/registered-models/{name}/alias-events"),
    ("POST", "/v1/models/{model_id}/predict/npy"),
    ("POST", "/v1/models/{model_id}/certify"),
    ("GET", "/v1/models/{model_id}/activations"),
    ("GET", "/v1/models/{model_id}/download"),
    ("GET", "/metrics"),
    ("POST", "/v1/admin/tenants"),
    ("GET", "/v1/admin/tenants"),
    ("PATCH", "/v1/admin/tenants/{tenant_id}"),
    ("POST", "/v1/admin/tenants/{tenant_id}/revoke"),
    ("POST", "/v1/admin/keys"),
    ("GET", "/v1/admin/keys"),
    ("DELETE", "/v1/admin/keys/{key_id}"),
}


def test_healthz_needs_no_key(svc: Service) -> None:
    response = svc.anon.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_database_and_broker(svc: Service) -> None:
    response = svc.anon.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": True, "broker": True}}


def test_readyz_says_which_dependency_is_down(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_router, "broker_reachable", lambda settings: False)
    body = problem(svc.anon.get("/readyz"), 503, "not-ready")
    assert body["checks"] == {"database": True, "broker": False}
    assert body["detail"] == "unreachable: broker"


def test_readyz_database_down(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_engine(url: str) -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(db_engine, "get_engine", broken_engine)  # what the platform's probe connects with
    body = problem(svc.anon.get("/readyz"), 503, "not-ready")
    assert body["checks"] == {"database": False, "broker": True} and "database" in body["detail"]


def test_openapi_lists_every_route_and_its_auth(svc: Service) -> None:
    response = svc.anon.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    listed = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    assert listed == ROUTES
    assert spec["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            secured = any("BearerAuth" in item for item in operation.get("security", []))
            assert secured == path.startswith("/v1/"), (method, path)
            if secured:  # every secured route names the one scope it needs
                assert operation["x-required-scope"] in {"read", "predict", "train", "admin"}, (method, path)


def test_openapi_has_an_example_for_every_json_body_and_problem_responses(svc: Service) -> None:
    spec = svc.anon.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                schema = content.get("schema", {})
                ref = schema.get("$ref", "")
                resolved = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema
                has_example = "example" in content or "examples" in content or "examples" in resolved
                binary = media == "multipart/form-data" or resolved.get("format") == "binary"  # no JSON example
                assert has_example or binary, (method, path, media)
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            for code, response in errors.items():
                assert "application/problem+json" in response.get("content", {}), (method, path, code)


def test_unknown_route_is_a_problem(svc: Service) -> None:
    problem(svc.client.get("/v1/nothing-here"), 404, "not-found")
    problem(svc.anon.get("/nope"), 404, "not-found")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/v1/jobs", "GET, POST"),
    ("DELETE", "/v1/models/abc", "GET, PATCH"),
    ("PUT", "/v1/datasets/abc", "GET, PATCH, DELETE"),
    ("POST", "/healthz", "GET"),
])
def test_wrong_method_is_a_problem_with_allow(svc: Service, method: str, path: str, allowed: str) -> None:
    response = svc.client.request(method, path)
    problem(response, 405, "method-not-allowed")
    # Starlette names only the methods of the first route matching the path (each route has its
    # own methods): a subset of what the resource supports, never a method it does not
    listed = {m.strip() for m in response.headers["allow"].split(",")}
    assert listed and listed <= {m.strip() for m in allowed.split(",")}, response.headers["allow"]
