"""The OpenAPI document generates good clients (issue 17, part 6): names, typed bodies, required bodies.

The generated-client flow itself (``openapi-python-client`` on the live schema) is
``tests/e2e/test_generated_client.py``; these are the document's properties, checked in-process.
"""

from __future__ import annotations

import re

from tests.routes.helpers import Service
from tests.support.openapi_walk import untyped_bags

#: a short verb phrase in snake_case: no path, no method appended (FastAPI's default makes `submit_job_v1_jobs_post`)
OPERATION_ID = re.compile(r"^[a-z]+(_[a-z0-9]+){0,3}$")


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_operation_ids_are_short_unique_verbs(svc: Service) -> None:
    document = svc.client.get("/openapi.json").json()
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert [i for i in ids if not OPERATION_ID.fullmatch(i) or "_v1_" in i] == []
    assert {"upload_dataset", "submit_job", "predict", "list_models", "download_model", "get_job"} <= set(ids)


def test_no_response_body_is_an_untyped_bag(svc: Service) -> None:
    document = svc.client.get("/openapi.json").json()
    assert list(untyped_bags(document)) == []
    schemas = document["components"]["schemas"]
    # the config is echoed as the TrainingConfig it was submitted as
    for name in ("JobOut", "ModelOut", "Lineage"):
        assert schemas[name]["properties"]["config"] == {"$ref": "#/components/schemas/TrainingConfig"}, name


def test_the_walker_finds_bags(svc: Service) -> None:
    """The check above can fail: a document with an open object and an any-typed list is refused."""
    document = {"paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {
        "type": "object", "properties": {"bag": {"type": "object", "additionalProperties": True},
                                         "rows": {"type": "array", "items": {}}}}}}}}}}},
        "components": {"schemas": {}}}
    assert sorted(untyped_bags(document)) == ["GET /x 200.bag: additionalProperties is any JSON value",
                                              "GET /x 200.rows[]: any JSON value"]


def test_required_bodies_binary_downloads_and_retry_after(svc: Service) -> None:
    paths = svc.client.get("/openapi.json").json()["paths"]
    upload = paths["/v1/datasets"]["post"]["requestBody"]
    assert upload["required"] is True
    assert upload["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
    assert "application/json" in upload["content"]
    for _, _, operation in _operations({"paths": paths}):
        if "requestBody" in operation:
            assert operation["requestBody"].get("required") is True, operation["operationId"]
    download = paths["/v1/models/{model_id}/download"]["get"]["responses"]["200"]["content"]
    assert all(media["schema"] == {"type": "string", "format": "binary"} for media in download.values())
    accepted = paths["/v1/jobs"]["post"]["responses"]["202"]
    assert accepted["headers"]["Retry-After"]["schema"] == {"type": "integer"}


def test_the_202_carries_retry_after(svc: Service) -> None:
    dataset_id = svc.upload()
    response = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id})
    assert response.status_code == 202 and int(response.headers["retry-after"]) >= 1
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
