"""Scopes on keys, expiry, and tenants and keys managed over ``/v1/admin`` with an ``admin`` key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api_schemas.timestamps import utcnow
from tests.routes.helpers import TINY_CONFIG, Service, problem

#: one request per route, with the scope it needs (the ids need not exist: scope is checked first)
SCOPED_REQUESTS = [
    ("read", "GET", "/v1/datasets", None),
    ("read", "GET", "/v1/jobs/nope", None),
    ("read", "GET", "/v1/models", None),
    ("read", "GET", "/v1/models/nope/download", None),
    ("train", "POST", "/v1/datasets", {"inputs": [[0.0]], "targets": [0]}),
    ("train", "DELETE", "/v1/datasets/nope", None),
    ("train", "POST", "/v1/jobs", {"dataset_id": "nope", "config": TINY_CONFIG}),
    ("train", "POST", "/v1/jobs/nope/cancel", None),
    ("predict", "POST", "/v1/models/nope/predict", {"inputs": [[0.0, 0.0]]}),
    ("predict", "POST", "/v1/models/nope/certify", {"epsilon": 0.1}),
    ("admin", "GET", "/v1/admin/keys", None),
    ("admin", "POST", "/v1/admin/tenants", {"name": "x"}),
]


@pytest.mark.parametrize(("scope", "method", "path", "body"), SCOPED_REQUESTS)
def test_each_route_refuses_a_key_without_its_scope(svc: Service, scope: str, method: str, path: str,
                                                     body: dict | None) -> None:
    others = [s for s in ("read", "predict", "train") if s != scope]
    lacking = svc.open_client(svc.scoped_key("default", *others))
    problem(lacking.request(method, path, json=body), 403, "insufficient-scope", required_scope=scope)
    having = svc.open_client(svc.scoped_key("default", scope))
    assert having.request(method, path, json=body).status_code != 403


def test_openapi_declares_each_routes_scope(svc: Service) -> None:
    spec = svc.anon.get("/openapi.json").json()
    for scope, method, path, _ in SCOPED_REQUESTS:
        template = path.replace("/nope", "/{model_id}" if "models" in path else
                                "/{job_id}" if "jobs" in path else "/{dataset_id}")
        operation = spec["paths"][template][method.lower()]
        assert operation["x-required-scope"] == scope, (method, template)
        assert operation["security"] == [{"BearerAuth": [scope]}]
        assert f"`{scope}`" in operation["description"]
        assert "403" in operation["responses"]


def test_a_predict_key_cannot_train_or_delete(svc: Service, seeded: dict[str, str]) -> None:
    predictor = svc.open_client(svc.scoped_key("default", "predict"))
    assert predictor.post(f"/v1/models/{seeded['model_id']}/predict", json={"inputs": [[0.1, 0.2]]}).status_code == 200
    problem(predictor.post("/v1/jobs", json={"dataset_id": seeded["dataset_id"], "config": TINY_CONFIG}), 403,
            "insufficient-scope", required_scope="train")
    problem(predictor.delete(f"/v1/datasets/{seeded['dataset_id']}"), 403, "insufficient-scope")
    assert svc.client.get(f"/v1/datasets/{seeded['dataset_id']}").status_code == 200  # still there


def test_an_expired_key_is_401(make_service) -> None:
    svc = make_service(auth_cache_ttl_s=0)
    expired = svc.open_client(svc.scoped_key("default", "read", expires_at=utcnow() - timedelta(seconds=1)))
    problem(expired.get("/v1/datasets"), 401, "unauthorized")
    valid = svc.open_client(svc.scoped_key("default", "read", expires_at=utcnow() + timedelta(hours=1)))
    assert valid.get("/v1/datasets").status_code == 200


def test_admin_creates_a_tenant_and_a_key_that_works_at_once_and_stops_when_revoked(svc: Service) -> None:
    admin = svc.open_client(svc.scoped_key("default", "admin"))
    created = admin.post("/v1/admin/tenants", json={"name": "team-a"})
    assert created.status_code == 201, created.text
    tenant = created.json()
    problem(admin.post("/v1/admin/tenants", json={"name": "team-a"}), 409, "tenant-exists")
    response = admin.post("/v1/admin/keys", json={"tenant": "team-a", "scopes": ["read", "train"], "name": "ci"})
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["key"].startswith(made["prefix"]) and made["scopes"] == ["read", "train"]
    assert made["tenant_id"] == tenant["id"]
    team = svc.open_client(made["key"])
    assert team.get("/v1/datasets").json() == {"items": [], "next_cursor": None}  # works at once, in its own tenant
    listed = admin.get("/v1/admin/keys", params={"tenant": "team-a"}).json()["items"]
    assert [k["prefix"] for k in listed] == [made["prefix"]]
    assert made["key"] not in admin.get("/v1/admin/keys").text  # prefixes only, never a secret
    assert admin.delete(f"/v1/admin/keys/{made['id']}").status_code == 204
    problem(team.get("/v1/datasets"), 401, "unauthorized")  # at once in this process
    assert admin.get("/v1/admin/keys", params={"tenant": "team-a"}).json()["items"][0]["revoked_at"]
    problem(admin.delete("/v1/admin/keys/nope"), 404, "not-found")


def test_revoking_a_tenant_stops_all_its_keys(svc: Service) -> None:
    admin = svc.open_client(svc.scoped_key("default", "admin"))
    tenant = admin.post("/v1/admin/tenants", json={"name": "gone"}).json()
    key = admin.post("/v1/admin/keys", json={"tenant": "gone"}).json()["key"]
    assert svc.open_client(key).get("/v1/models").status_code == 200
    revoked = admin.post(f"/v1/admin/tenants/{tenant['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    problem(svc.open_client(key).get("/v1/models"), 401, "unauthorized")
    problem(admin.post("/v1/admin/keys", json={"tenant": "gone"}), 422, field="tenant")


def test_admin_validates_keys_it_makes(svc: Service) -> None:
    admin = svc.open_client(svc.scoped_key("default", "admin"))
    problem(admin.post("/v1/admin/keys", json={"tenant": "default", "scopes": ["root"]}), 422, field="scopes.0")
    problem(admin.post("/v1/admin/keys", json={"tenant": "nobody"}), 422, field="tenant")
    past = (utcnow() - timedelta(days=1)).isoformat()
    problem(admin.post("/v1/admin/keys", json={"tenant": "default", "expires_at": past}), 422, field="expires_at")
    problem(admin.post("/v1/admin/tenants", json={"name": "bad name!"}), 422, field="name")


def test_keys_made_without_scopes_cannot_manage_keys(svc: Service) -> None:
    # svc.client's key is made as `lipspline keys create` makes one: read, predict, train
    problem(svc.client.get("/v1/admin/tenants"), 403, "insufficient-scope", required_scope="admin")
    assert svc.client.get("/v1/datasets").status_code == 200


@pytest.mark.parametrize("quota", ["quota_max_stored_bytes", "quota_max_models", "quota_max_active_jobs"])
def test_a_quota_beyond_a_64_bit_column_is_a_422_not_a_500(svc: Service, quota: str) -> None:
    """A quota the database cannot hold (schemathesis sent 3.4e21 bytes) is refused by name, and
    the largest one it can hold is accepted."""
    admin = svc.open_client(svc.scoped_key("default", "admin"))
    problem(admin.post("/v1/admin/tenants", json={"name": "huge", quota: 2**63}), 422, field=quota)
    created = admin.post("/v1/admin/tenants", json={"name": "largest", quota: 2**63 - 1})
    assert created.status_code == 201, created.text
