"""``Idempotency-Key`` on ``POST /v1/jobs`` and ``POST /v1/datasets``: replay, 422 on reuse with
another body, 409 while in flight, release on failure, and scope per tenant and route."""

from __future__ import annotations

import json
from datetime import timedelta

from api_schemas.http import JobCreate
from api_schemas.timestamps import utcnow
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DEFAULT_TENANT, DatasetRow, IdempotencyRow, JobRow
from service.http.idempotency import fingerprint
from tests.routes.helpers import TINY_CONFIG, Service, problem, seed_csv, seed_dataset_body


def count(svc: Service, table: type) -> int:
    with session_scope(svc.database_url) as session:
        return session.query(table).count()


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def test_job_submit_is_replayed(svc: Service) -> None:
    job = {"dataset_id": svc.upload(), "config": TINY_CONFIG}
    first = svc.client.post("/v1/jobs", json=job, headers=key("job-1"))
    again = svc.client.post("/v1/jobs", json=job, headers=key("job-1"))
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert count(svc, JobRow) == 1
    # the same body in another key order and spacing is the same request
    reordered = '{"config": ' + json.dumps(TINY_CONFIG, indent=1) + f', "dataset_id": "{job["dataset_id"]}"}}'
    headers = {**key("job-1"), "content-type": "application/json"}
    third = svc.client.post("/v1/jobs", content=reordered.encode(), headers=headers)
    assert third.status_code == 202 and third.json() == first.json() and count(svc, JobRow) == 1


def test_job_key_reused_with_another_body_is_422(svc: Service) -> None:
    dataset_id = svc.upload()
    svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG}, headers=key("job-1"))
    other = {"dataset_id": dataset_id, "config": {**TINY_CONFIG, "training": {**TINY_CONFIG["training"], "epochs": 4}}}
    body = problem(svc.client.post("/v1/jobs", json=other, headers=key("job-1")), 422, "idempotency-key-reused")
    assert "different request" in body["detail"] and body["detail"].startswith("Idempotency-Key")
    assert count(svc, JobRow) == 1


def test_a_failed_request_releases_its_key(svc: Service) -> None:
    dataset_id = svc.upload()
    too_wide = {"dataset_id": dataset_id, "config": {"architecture": {"hidden": [5000]}}}
    problem(svc.client.post("/v1/jobs", json=too_wide, headers=key("job-2")), 422, "limit-exceeded")
    problem(svc.client.post("/v1/jobs", json={"dataset_id": "nope", "config": {}}, headers=key("job-2")), 404)
    assert count(svc, IdempotencyRow) == 0
    fixed = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG}, headers=key("job-2"))
    assert fixed.status_code == 202 and "idempotent-replayed" not in fixed.headers


def test_in_flight_key_is_409_and_a_stale_one_is_taken_over(svc: Service) -> None:
    job = {"dataset_id": svc.upload(), "config": TINY_CONFIG}
    request_sha = fingerprint(JobCreate.model_validate(job).model_dump(mode="json", by_alias=True))
    with session_scope(svc.database_url) as session:
        session.add(IdempotencyRow(tenant_id=DEFAULT_TENANT, route="POST /v1/jobs", key="busy", state="in_flight",
                                   request_sha256=request_sha))
    body = problem(svc.client.post("/v1/jobs", json=job, headers=key("busy")), 409, "idempotency-in-flight")
    assert "still being processed" in body["detail"]
    assert count(svc, JobRow) == 0
    # its API process died long ago: the key is taken over and the request runs
    with session_scope(svc.database_url) as session:
        row = session.get(IdempotencyRow, (DEFAULT_TENANT, "POST /v1/jobs", "busy"))
        row.created_at = utcnow() - timedelta(minutes=6)
    taken = svc.client.post("/v1/jobs", json=job, headers=key("busy"))
    assert taken.status_code == 202 and "idempotent-replayed" not in taken.headers and count(svc, JobRow) == 1
    assert svc.client.post("/v1/jobs", json=job, headers=key("busy")).headers["idempotent-replayed"] == "true"


def test_key_length_is_checked(svc: Service) -> None:
    job = {"dataset_id": svc.upload(), "config": TINY_CONFIG}
    problem(svc.client.post("/v1/jobs", json=job, headers=key("k" * 256)), 422, "validation-error",
            field="header.Idempotency-Key")
    problem(svc.client.post("/v1/jobs", json=job, headers=key("")), 422, "validation-error",
            field="header.Idempotency-Key")
    assert svc.client.post("/v1/jobs", json=job, headers=key("k" * 255)).status_code == 202


def test_dataset_upload_is_replayed_across_new_multipart_boundaries(svc: Service) -> None:
    files = {"file": ("d.csv", seed_csv())}
    up1 = svc.client.post("/v1/datasets", files=files, data={"target": "y"}, headers=key("up-1"))
    up2 = svc.client.post("/v1/datasets", files=files, data={"target": "y"}, headers=key("up-1"))
    assert up1.status_code == up2.status_code == 201
    assert up1.json() == up2.json() and up2.headers["idempotent-replayed"] == "true"
    assert up2.headers["location"] == up1.headers["location"]
    assert count(svc, DatasetRow) == 1
    other_target = svc.client.post("/v1/datasets", files=files, data={"target": "x2"}, headers=key("up-1"))
    problem(other_target, 422, "idempotency-key-reused")
    other_file = svc.client.post("/v1/datasets", files={"file": ("d.csv", seed_csv() + b"0.0,0.0,1\n")},
                                 data={"target": "y"}, headers=key("up-1"))
    problem(other_file, 422, "idempotency-key-reused")
    assert count(svc, DatasetRow) == 1


def test_json_dataset_upload_is_replayed_and_a_bad_one_releases_its_key(svc: Service) -> None:
    bad = {"inputs": [[1, 2], [3]], "targets": [0, 1]}
    problem(svc.client.post("/v1/datasets", json=bad, headers=key("up-2")), 422, "invalid-dataset")
    first = svc.client.post("/v1/datasets", json=seed_dataset_body(), headers=key("up-2"))
    again = svc.client.post("/v1/datasets", json=seed_dataset_body(), headers=key("up-2"))
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert again.headers["idempotent-replayed"] == "true" and count(svc, DatasetRow) == 1


def test_keys_are_scoped_per_tenant_and_per_route(svc: Service) -> None:
    mine = svc.client.post("/v1/datasets", json=seed_dataset_body(), headers=key("shared"))
    theirs = svc.other.post("/v1/datasets", json=seed_dataset_body(), headers=key("shared"))
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"] and "idempotent-replayed" not in theirs.headers
    job = svc.client.post("/v1/jobs", json={"dataset_id": mine.json()["id"], "config": TINY_CONFIG},
                          headers=key("shared"))
    assert job.status_code == 202 and "idempotent-replayed" not in job.headers
    assert count(svc, DatasetRow) == 2 and count(svc, JobRow) == 1


def test_without_a_key_every_post_creates(svc: Service) -> None:
    first = svc.upload()
    second = svc.upload()
    assert first != second and count(svc, DatasetRow) == 2 and count(svc, IdempotencyRow) == 0
