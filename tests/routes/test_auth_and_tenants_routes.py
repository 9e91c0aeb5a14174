"""API keys on every ``/v1`` route (401 with ``WWW-Authenticate``), and tenant isolation: another
tenant's ids answer exactly like unknown ids (404), and lists never show another tenant's rows."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DatasetRow, JobRow, ModelRow
from service.security import auth
from tests.routes.helpers import TINY_CONFIG, Service, problem


def owned_routes(ids: dict[str, str]) -> list[tuple[str, str, dict | None]]:
    """Every route that names one of the tenant's resources (and the job submit that names its dataset)."""
    dataset_id, job_id, model_id = ids["dataset_id"], ids["job_id"], ids["model_id"]
    return [
        ("GET", f"/v1/datasets/{dataset_id}", None),
        ("DELETE", f"/v1/datasets/{dataset_id}", None),
        ("GET", f"/v1/jobs/{job_id}", None),
        ("GET", f"/v1/jobs/{job_id}/metrics", None),
        ("POST", f"/v1/jobs/{job_id}/cancel", None),
        ("GET", f"/v1/models/{model_id}", None),
        ("POST", f"/v1/models/{model_id}/predict", {"inputs": [[0.0, 0.0]]}),
        ("POST", f"/v1/models/{model_id}/certify", {"inputs": [[0.0, 0.0]]}),
        ("GET", f"/v1/models/{model_id}/activations", None),
        ("GET", f"/v1/models/{model_id}/download", None),
        ("POST", "/v1/jobs", {"dataset_id": dataset_id, "config": TINY_CONFIG}),
    ]


def every_v1_route(ids: dict[str, str]) -> list[tuple[str, str, dict | None]]:
    return [*owned_routes(ids), ("GET", "/v1/datasets", None), ("GET", "/v1/jobs", None), ("GET", "/v1/models", None),
            ("POST", "/v1/datasets", {"inputs": [[0], [1]], "targets": [0, 1]})]


def unauthorized(response, detail_start: str) -> None:
    body = problem(response, 401, "unauthorized")
    assert body["detail"].startswith(detail_start), body
    assert response.headers["www-authenticate"] == 'Bearer realm="lipspline"'


def counts(svc: Service) -> tuple[int, int, int]:
    with session_scope(svc.database_url) as session:
        return (session.query(DatasetRow).count(), session.query(JobRow).count(), session.query(ModelRow).count())


def test_no_key_is_401_on_every_v1_route(svc: Service, seeded: dict) -> None:
    before = counts(svc)
    for method, path, body in every_v1_route(seeded):
        unauthorized(svc.anon.request(method, path, json=body), "Authorization: Bearer")
    assert counts(svc) == before
    assert svc.anon.get("/healthz").status_code == 200 and svc.anon.get("/readyz").status_code == 200


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz",  # another scheme
    "Bearer",  # no key
    "Bearer    ",  # an empty key
    "lsk_abc",  # no scheme
])
def test_malformed_authorization_is_401(svc: Service, header: str) -> None:
    unauthorized(svc.anon.get("/v1/datasets", headers={"Authorization": header}), "Authorization: Bearer")


@pytest.mark.parametrize("key", [
    "lsk_not-a-real-key",  # the right shape, unknown
    "sk_live_123456789",  # not one of ours
    "lsk_" + "a" * 200,  # too long to be a key
])
def test_unknown_key_is_401(svc: Service, key: str) -> None:
    for method, path, body in every_v1_route({"dataset_id": "d", "job_id": "j", "model_id": "m"}):
        response = svc.anon.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
        unauthorized(response, "the API key is not valid")


def test_bearer_scheme_is_case_insensitive(svc: Service) -> None:
    response = svc.anon.get("/v1/datasets", headers={"Authorization": f"bearer {svc.keys['default']}"})
    assert response.status_code == 200, response.text


def test_revoked_key_stops_within_the_key_cache_ttl(make_service: Callable[..., Service]) -> None:
    """Verified keys are cached ``auth_cache_ttl_s`` per process: a revocation takes effect within it."""
    ttl = 0.3
    svc = make_service(auth_cache_ttl_s=ttl)
    spare = svc.create_key("default")
    revoked = svc.open_client(spare)
    assert revoked.get("/v1/datasets").status_code == 200
    with session_scope(svc.database_url) as session:
        assert auth.revoke_key(session, spare[: auth.PREFIX_CHARS]) == 1  # what `lipspline keys revoke` does
    began = time.monotonic()
    while (response := revoked.get("/v1/datasets")).status_code == 200:
        assert time.monotonic() - began < ttl + 1.0, "the revoked key still works after the cache TTL"
        time.sleep(0.02)
    assert "revoked" in problem(response, 401, "unauthorized")["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert svc.client.get("/v1/datasets").status_code == 200  # the tenant's first key is untouched


def test_with_no_key_cache_a_revocation_is_immediate(make_service: Callable[..., Service]) -> None:
    svc = make_service(auth_cache_ttl_s=0)
    spare = svc.create_key("default")
    revoked = svc.open_client(spare)
    assert revoked.get("/v1/datasets").status_code == 200
    with session_scope(svc.database_url) as session:
        assert auth.revoke_key(session, spare) == 1
    problem(revoked.get("/v1/datasets"), 401, "unauthorized")


def test_another_tenants_ids_are_404_on_every_route(svc: Service, seeded: dict) -> None:
    before = counts(svc)
    for method, path, body in owned_routes(seeded):
        response = svc.other.request(method, path, json=body)
        detail = problem(response, 404, "not-found")["detail"]
        assert "does not exist" in detail, (method, path, detail)
    assert counts(svc) == before  # nothing deleted, cancelled into being, or submitted
    job = svc.job(seeded["job_id"])
    assert job["status"] == "succeeded" and job["cancel_requested"] is False
    for kind in ("datasets", "jobs", "models"):
        assert svc.other.get(f"/v1/{kind}").json()["items"] == []


def test_the_answer_for_another_tenants_id_equals_the_answer_for_an_unknown_id(svc: Service, seeded: dict) -> None:
    for kind, ident in [("datasets", seeded["dataset_id"]), ("jobs", seeded["job_id"]), ("models", seeded["model_id"])]:
        theirs = svc.other.get(f"/v1/{kind}/{ident}").json()
        unknown = svc.other.get(f"/v1/{kind}/{ident[::-1]}").json()
        assert theirs["detail"].replace(ident, "ID") == unknown["detail"].replace(ident[::-1], "ID")
        assert {k: v for k, v in theirs.items() if k not in ("detail", "instance")} == {
            k: v for k, v in unknown.items() if k not in ("detail", "instance")
        }


def test_each_tenant_sees_only_its_own_rows(svc: Service, seeded: dict) -> None:
    theirs = svc.trained_model(client=svc.other)
    for kind, mine, other in [("datasets", seeded["dataset_id"], theirs["dataset_id"]),
                              ("jobs", seeded["job_id"], theirs["job_id"]),
                              ("models", seeded["model_id"], theirs["model_id"])]:
        assert [item["id"] for item in svc.client.get(f"/v1/{kind}").json()["items"]] == [mine]
        assert [item["id"] for item in svc.other.get(f"/v1/{kind}").json()["items"]] == [other]
    # the models router caches loaded models: a model loaded by its owner is still 404 for the other tenant
    assert svc.other.post(f"/v1/models/{theirs['model_id']}/predict", json={"inputs": [[0.0, 0.0]]}).status_code == 200
    problem(svc.client.post(f"/v1/models/{theirs['model_id']}/predict", json={"inputs": [[0.0, 0.0]]}), 404)
    assert svc.client.post(f"/v1/models/{seeded['model_id']}/predict", json={"inputs": [[0.0, 0.0]]}).status_code == 200
    problem(svc.other.post(f"/v1/models/{seeded['model_id']}/certify", json={}), 404)


def test_queued_job_of_another_tenant_cannot_be_cancelled_nor_its_dataset_deleted(svc: Service) -> None:
    dataset_id = svc.upload()
    job_id = svc.submit(dataset_id)
    problem(svc.other.post(f"/v1/jobs/{job_id}/cancel"), 404, "not-found")
    problem(svc.other.delete(f"/v1/datasets/{dataset_id}"), 404, "not-found")  # 404, not the owner's 409
    assert svc.job(job_id)["status"] == "queued"
