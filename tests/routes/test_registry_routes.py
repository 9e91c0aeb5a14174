"""The model registry over HTTP (in-process): names, versions, aliases, references, register_as.

Every refused request is checked twice: its problem+json names the field, and the registry
reads back exactly as before it (nothing was written).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DatasetRow
from tests.routes.helpers import TINY_CONFIG, Service, problem

NAME = "circle"


def create(client: TestClient, name: str = NAME, **body: object) -> dict:
    response = client.post("/v1/registered-models", json={"name": name, **body})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/registered-models/{name}"
    return response.json()


def add_version(client: TestClient, model_id: str, name: str = NAME) -> dict:
    response = client.post(f"/v1/registered-models/{name}/versions", json={"model_id": model_id})
    assert response.status_code == 201, response.text
    return response.json()


def snapshot(client: TestClient, name: str = NAME) -> dict:
    """Everything the registry says about a name: refused requests must leave it unchanged."""
    return {part: client.get(f"/v1/registered-models/{name}{part}").json()
            for part in ("", "/versions", "/aliases", "/alias-events")}


def served_model_id(client: TestClient, reference: str) -> str:
    """Which model a reference reaches now (the activations route echoes the resolved id)."""
    response = client.get(f"/v1/models/{reference}/activations")
    assert response.status_code == 200, response.text
    return response.json()["model_id"]


def test_names_are_unique_per_tenant_and_validated(svc: Service) -> None:
    body = create(svc.client, description="inside the disc")
    assert body["name"] == NAME and body["description"] == "inside the disc"
    assert body["latest_version"] is None and body["aliases"] == {}
    problem(svc.client.post("/v1/registered-models", json={"name": NAME}), 409, "name-taken", field="name")
    for bad in ("a@b", "a/b", "", "-lead", "0123456789abcdef0123456789abcdef"):
        response = svc.client.post("/v1/registered-models", json={"name": bad})
        problem(response, 422, "validation-error", field="name")
    create(svc.other)  # the same name in another tenant is another registered model
    assert [m["name"] for m in svc.client.get("/v1/registered-models").json()["items"]] == [NAME]
    problem(svc.anon.get("/v1/registered-models"), 401)


def test_versions_number_one_two_three_with_lineage(svc: Service) -> None:
    create(svc.client)
    first, second = svc.trained_model(), svc.trained_model()
    v1, v2 = add_version(svc.client, first["model_id"]), add_version(svc.client, second["model_id"])
    assert (v1["version"], v2["version"]) == (1, 2)
    with session_scope(svc.database_url) as session:
        sha256 = session.get(DatasetRow, second["dataset_id"]).sha256
    assert v2["lineage"] == {"model_id": second["model_id"], "job_id": second["job_id"],
                             "dataset_id": second["dataset_id"], "dataset_sha256": sha256,
                             "config": svc.client.get(f"/v1/models/{second['model_id']}").json()["config"]}
    assert v2["created_by"] == "key:" + svc.keys["default"][:12] and v2["lipschitz_bound"] > 0
    assert svc.client.get(f"/v1/registered-models/{NAME}/versions/2").json() == v2
    assert svc.client.get(f"/v1/registered-models/{NAME}").json()["latest_version"] == 2

    before = snapshot(svc.client)
    response = svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": first["model_id"]})
    problem(response, 409, "already-registered", field="model_id")
    foreign = svc.trained_model(client=svc.other)
    response = svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": foreign["model_id"]})
    problem(response, 404, "not-found", field="model_id")
    problem(svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": "nope"}), 404,
            field="model_id")
    assert snapshot(svc.client) == before
    # the counter was not consumed by the refused requests
    assert add_version(svc.client, svc.trained_model()["model_id"])["version"] == 3


def test_another_tenant_cannot_see_or_version_a_name(svc: Service) -> None:
    create(svc.client)
    own = svc.trained_model(client=svc.other)
    problem(svc.other.get(f"/v1/registered-models/{NAME}"), 404, field="name")
    response = svc.other.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": own["model_id"]})
    problem(response, 404, field="name")
    problem(svc.other.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 1}), 404)
    problem(svc.other.delete(f"/v1/registered-models/{NAME}"), 404)
    assert svc.client.get(f"/v1/registered-models/{NAME}/versions").json()["items"] == []


def test_alias_moves_are_atomic_recorded_and_resolved_per_request(svc: Service) -> None:
    create(svc.client)
    first, second = svc.trained_model(), svc.trained_model()
    add_version(svc.client, first["model_id"])
    add_version(svc.client, second["model_id"])
    moved = svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 1})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"name": NAME, "alias": "production", "version": 1, "model_id": first["model_id"],
                            "reference": f"{NAME}@production"}
    assert served_model_id(svc.client, f"{NAME}@production") == first["model_id"]
    rows = [[0.1, -0.2], [0.3, 0.05]]
    by_alias = svc.client.post(f"/v1/models/{NAME}@production/predict", json={"inputs": rows})
    by_id = svc.client.post(f"/v1/models/{first['model_id']}/predict", json={"inputs": rows})
    assert by_alias.status_code == 200
    # the same answer, except that the alias' one says which registry version gave it
    assert by_alias.json() == {**by_id.json(), "registered_name": NAME, "version": 1}

    svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 2})  # no restart, no reload
    assert served_model_id(svc.client, f"{NAME}@production") == second["model_id"]
    assert served_model_id(svc.client, f"{NAME}/versions/1") == first["model_id"]
    assert served_model_id(svc.client, f"{NAME}%2Fversions%2F1") == first["model_id"]
    assert svc.client.get(f"/v1/models/{NAME}@production/download").headers["content-disposition"].endswith(
        f'lipspline-model-{second["model_id"]}.zip"'
    )

    before = snapshot(svc.client)
    response = svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 7})
    problem(response, 404, "not-found", field="version")
    problem(svc.client.put(f"/v1/registered-models/{NAME}/aliases/9lives", json={"version": 1}), 422, field="alias")
    problem(svc.client.put(f"/v1/registered-models/{NAME}/aliases/x", json={"version": 0}), 422, field="version")
    assert snapshot(svc.client) == before
    # a move to the version it already names records nothing
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 2})
    assert snapshot(svc.client) == before

    assert svc.client.delete(f"/v1/registered-models/{NAME}/aliases/production").status_code == 204
    problem(svc.client.delete(f"/v1/registered-models/{NAME}/aliases/production"), 404, field="alias")
    events = svc.client.get(f"/v1/registered-models/{NAME}/alias-events").json()["items"]
    actor = "key:" + svc.keys["default"][:12]
    assert [(e["alias"], e["from_version"], e["to_version"], e["actor"]) for e in events] == [
        ("production", None, 1, actor), ("production", 1, 2, actor), ("production", 2, None, actor)]
    body = problem(svc.client.post(f"/v1/models/{NAME}@production/predict", json={"inputs": rows}), 404)
    assert f"{NAME}@production" in body["detail"]


def test_unresolvable_references_are_404_naming_them(svc: Service) -> None:
    create(svc.client)
    add_version(svc.client, svc.trained_model()["model_id"])
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/staging", json={"version": 1})
    for reference in (f"{NAME}@production", "nope@staging", f"{NAME}/versions/2", "nope/versions/1", "a/b",
                      f"{NAME}@staging@x"):
        for method, path, body in (("POST", "predict", {"inputs": [[0.0, 0.0]]}), ("POST", "certify", {}),
                                   ("GET", "activations", None), ("GET", "download", None)):
            response = svc.client.request(method, f"/v1/models/{reference}/{path}", json=body)
            assert reference in problem(response, 404, "not-found")["detail"], (reference, path)
    # another tenant's alias is not found, even with the same name
    problem(svc.other.get(f"/v1/models/{NAME}@staging/activations"), 404)


def test_delete_is_refused_while_aliased_unless_forced(svc: Service) -> None:
    create(svc.client)
    model = svc.trained_model()["model_id"]
    add_version(svc.client, model)
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 1})
    before = snapshot(svc.client)
    problem(svc.client.delete(f"/v1/registered-models/{NAME}"), 409, "aliased", field="force")
    assert snapshot(svc.client) == before
    assert svc.client.delete(f"/v1/registered-models/{NAME}", params={"force": "true"}).status_code == 204
    problem(svc.client.get(f"/v1/registered-models/{NAME}"), 404)
    assert svc.client.get(f"/v1/models/{model}").status_code == 200  # the model itself stays
    create(svc.client)  # the name is free again, numbering restarts
    assert add_version(svc.client, model)["version"] == 1


def test_register_as_registers_the_model_when_the_job_succeeds(svc: Service) -> None:
    dataset_id = svc.upload()
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG,
                                                 "register_as": NAME})
    problem(response, 404, "not-found", field="register_as")
    assert svc.client.get("/v1/jobs").json()["items"] == []  # nothing was queued
    problem(svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "register_as": "a@b"}), 422,
            field="register_as")

    create(svc.client)
    submitted = [svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG,
                                                   "register_as": NAME}).json()["id"] for _ in range(2)]
    models = [svc.worker.run(job_id) for job_id in submitted]
    versions = svc.client.get(f"/v1/registered-models/{NAME}/versions").json()["items"]
    assert [(v["version"], v["model_id"], v["created_by"]) for v in versions] == [  # newest first
        (2, models[1], f"job:{submitted[1]}"), (1, models[0], f"job:{submitted[0]}")]
    job = svc.job(submitted[1])
    assert job["register_as"] == NAME and job["progress"]["registered_as"] == {"name": NAME, "version": 2}

    # the name deleted while a job runs: the job still succeeds and keeps its model, unregistered
    late = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG,
                                             "register_as": NAME}).json()["id"]
    assert svc.client.delete(f"/v1/registered-models/{NAME}").status_code == 204
    model_id = svc.worker.run(late)
    job = svc.job(late)
    assert job["status"] == "succeeded" and job["model_id"] == model_id
    assert job["progress"]["registered_as"] == {"name": NAME, "version": None}


def test_concurrent_versions_get_distinct_consecutive_numbers(svc: Service) -> None:
    create(svc.client)
    models = [svc.trained_model()["model_id"] for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda m: svc.client.post(f"/v1/registered-models/{NAME}/versions",
                                                            json={"model_id": m}), models))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == [1, 2, 3, 4, 5, 6]
    by_version = {r.json()["version"]: r.json()["model_id"] for r in responses}
    assert sorted(by_version.values()) == sorted(models)


def test_a_name_that_looks_like_a_model_id_in_any_case_is_refused(svc: Service) -> None:
    for name in ("0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789ABCDEF"):
        response = svc.client.post("/v1/registered-models", json={"name": name})
        assert response.status_code == 422 and "model id" in response.text, response.text
