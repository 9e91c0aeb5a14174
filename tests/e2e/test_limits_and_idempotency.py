"""Issue 5 items 2 and 6 on a live server: every configurable limit with its own clear 4xx,
request bodies counted as they stream in, the per-key rate limit, and Idempotency-Key."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api_schemas.http import JobCreate
from tests.support.processes import Deployment, embedded_env, wait_for_job

pytestmark = pytest.mark.e2e

LIMITS = {
    "LIPSPLINE_MAX_UPLOAD_BYTES": "20000",
    "LIPSPLINE_MAX_ROWS": "300",
    "LIPSPLINE_MAX_FEATURES": "5",
    "LIPSPLINE_MAX_CLASSES": "3",
    "LIPSPLINE_MAX_WIDTH": "64",
    "LIPSPLINE_MAX_DEPTH": "3",
    "LIPSPLINE_MAX_KNOTS": "51",
    "LIPSPLINE_MAX_PARAMETERS": "5000",
    "LIPSPLINE_MAX_EPOCHS": "100",
    "LIPSPLINE_MAX_PREDICT_ROWS": "50",
    "LIPSPLINE_RATE_LIMIT_PER_S": "20",
    "LIPSPLINE_RATE_LIMIT_BURST": "60",
}
TINY = {"training": {"epochs": 2}, "architecture": {"hidden": [2]}, "device": "cpu"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("limits")
    with Deployment(embedded_env(workdir, **LIMITS), workdir, embedded=True).running() as deployment:
        yield deployment


@pytest.fixture(scope="module")
def dataset_id(server: Deployment) -> str:
    with server.client() as http:
        rows = [[i / 10, (i % 7) / 7] for i in range(40)]
        response = http.post(
            "/v1/datasets", json={"name": "small", "inputs": rows, "targets": [i % 2 for i in range(40)]}
        )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def limit_problem(response: httpx.Response, status: int, limit: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["limit"] == limit, body
    return body


def test_dataset_limits(server: Deployment) -> None:
    with server.client() as http:

        def upload(rows: list, targets: list) -> httpx.Response:
            return http.post("/v1/datasets", json={"inputs": rows, "targets": targets})

        limit_problem(upload([[0.0, 1.0]] * 301, [0, 1] * 150 + [0]), 422, "max_rows")
        limit_problem(upload([[0.0] * 6, [1.0] * 6], [0, 1]), 422, "max_features")
        body = limit_problem(upload([[float(i)] for i in range(8)], ["a", "b", "c", "d"] * 2), 422, "max_classes")
        assert "4 classes" in body["detail"]
        assert http.get("/v1/datasets").json()["items"] == []  # nothing stored


def test_body_size_is_counted_on_the_streamed_bytes(server: Deployment) -> None:
    big = b"x1,y\n" + b"0.5,1\n" * 20000  # 120 kB > 20 kB limit + 64 kB multipart allowance
    with server.client() as http:
        # declared: refused from the Content-Length header alone
        limit_problem(http.post("/v1/datasets", files={"file": ("big.csv", big)}, data={"target": "y"}), 413,
                      "max_upload_bytes")

        # undeclared (chunked, no Content-Length): refused while streaming
        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 4096):
                yield big[i : i + 4096]

        response = http.post("/v1/datasets", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in response.request.headers
        limit_problem(response, 413, "max_upload_bytes")
        assert http.get("/readyz").status_code == 200


def test_network_and_epoch_limits(server: Deployment, dataset_id: str) -> None:
    cases = [
        ({"training": {"epochs": 101}}, "max_epochs", "config.training.epochs"),
        ({"architecture": {"hidden": [4, 4, 4, 4]}}, "max_depth", "config.architecture.hidden"),
        ({"architecture": {"hidden": [8, 65]}}, "max_width", "config.architecture.hidden.1"),
        ({"spline": {"knots": 53}}, "max_knots", "config.spline.knots"),
        ({"architecture": {"hidden": [60, 60, 60]}}, "max_parameters", "config.architecture"),
    ]
    with server.client() as http:
        before = len(http.get("/v1/jobs").json()["items"])
        for config, limit, field in cases:
            body = limit_problem(http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config}), 422, limit)
            assert body["errors"][0]["field"] == field
        assert len(http.get("/v1/jobs").json()["items"]) == before


def test_predict_batch_limit(server: Deployment, dataset_id: str) -> None:
    with server.client() as http:
        job = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY}).json()
        state = wait_for_job(http, job["id"])
        assert state["status"] == "succeeded", state
        predict = f"/v1/models/{state['model_id']}/predict"
        assert http.post(predict, json={"inputs": [[0.1, 0.2]] * 50}).status_code == 200
        response = http.post(predict, json={"inputs": [[0.1, 0.2]] * 51})
        assert response.status_code == 422 and "51 rows exceed the limit of 50" in response.json()["detail"]


def test_rate_limit_per_key_gives_429_with_retry_after(server: Deployment) -> None:
    key = server.create_key("busy")
    with server.client(key) as http, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: http.get("/v1/models"), range(150)))
    codes = [r.status_code for r in statuses]
    assert codes.count(429) > 0 and set(codes) <= {200, 429}
    limited = next(r for r in statuses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"].startswith("application/problem+json")
    with server.client() as other:  # another key is not throttled by this one
        assert other.get("/v1/models").status_code == 200


def test_idempotency_key_replays_conflicts_and_rejects_reuse(server: Deployment, dataset_id: str) -> None:
    job = {"dataset_id": dataset_id, "config": TINY}
    with server.client() as http:
        first = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "job-1"})
        again = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "job-1"})
        assert first.status_code == again.status_code == 202
        assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        ids = [j["id"] for j in http.get("/v1/jobs").json()["items"]]
        assert ids.count(first.json()["id"]) == 1

        other = {"dataset_id": dataset_id, "config": {**TINY, "training": {"epochs": 3}}}
        reused = http.post("/v1/jobs", json=other, headers={"Idempotency-Key": "job-1"})
        assert reused.status_code == 422 and "different request" in reused.json()["detail"]

        # uploads: a retried multipart upload has a new boundary but the same content
        files = {"file": ("d.csv", b"a,b,y\n0,1,0\n1,0,1\n2,2,0\n3,1,1\n")}
        up1 = http.post("/v1/datasets", files=files, data={"target": "y"}, headers={"Idempotency-Key": "up-1"})
        up2 = http.post("/v1/datasets", files=files, data={"target": "y"}, headers={"Idempotency-Key": "up-1"})
        assert up1.status_code == up2.status_code == 201 and up1.json()["id"] == up2.json()["id"]
        names = [d["id"] for d in http.get("/v1/datasets").json()["items"]]
        assert names.count(up1.json()["id"]) == 1

        # a failed request releases its key: the same key works once the body is fixed
        bad = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": {"training": {"epochs": 101}}},
                        headers={"Idempotency-Key": "job-2"})
        assert bad.status_code == 422
        assert http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "job-2"}).status_code == 202


def test_idempotency_key_in_flight_gives_409(server: Deployment, dataset_id: str) -> None:
    """The first request is still being processed: simulated by its in-flight record in the database."""
    from lipspline_platform.db.engine import session_scope
    from lipspline_platform.db.tables import DEFAULT_TENANT, IdempotencyRow
    from service.http.idempotency import fingerprint

    job = {"dataset_id": dataset_id, "config": TINY}
    database = f"sqlite:///{Path(server.env['LIPSPLINE_DATA_DIR']).resolve() / 'lipspline.sqlite3'}"
    with session_scope(database) as session:
        session.add(IdempotencyRow(
            tenant_id=DEFAULT_TENANT, route="POST /v1/jobs", key="busy-1", state="in_flight",
            request_sha256=fingerprint(JobCreate.model_validate(job).model_dump(mode="json", by_alias=True)),
        ))
    with server.client() as http:
        response = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "busy-1"})
        assert response.status_code == 409 and "still being processed" in response.json()["detail"]
        too_long = http.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k" * 256})
        assert too_long.status_code == 422
