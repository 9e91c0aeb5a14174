"""Every configurable limit with its own clear 4xx (small limits: ``conftest.SMALL_LIMITS``), request
bodies counted as they stream in, and the per-key rate limit (429 with ``Retry-After``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import DatasetRow, JobRow
from tests.routes.conftest import SMALL_LIMITS
from tests.routes.helpers import Service, problem

SMALL_ROWS = [[i / 10, (i % 7) / 7] for i in range(40)]
SMALL_DATASET = {"name": "small", "inputs": SMALL_ROWS, "targets": [i % 2 for i in range(40)]}
#: well above max_upload_bytes (20 kB) plus the 64 kB allowance for multipart framing
BIG_CSV = b"x1,y\n" + b"0.5,1\n" * 20_000


def stored(svc: Service) -> tuple[int, int]:
    with session_scope(svc.database_url) as session:
        return session.query(DatasetRow).count(), session.query(JobRow).count()


def chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    """A body sent without Content-Length (chunked): only the streamed bytes can be counted."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def limit_problem(response, status: int, limit: str, value: int) -> dict:
    body = problem(response, status)
    assert body["limit"] == limit and body["limit_value"] == value, body
    return body


# ---- datasets
@pytest.mark.parametrize(("inputs", "targets", "limit", "words"), [
    ([[0.0, 1.0]] * 301, [0, 1] * 150 + [0], "max_rows", "301 rows"),
    ([[0.0] * 6, [1.0] * 6], [0, 1], "max_features", "6 features"),
    ([[float(i)] for i in range(8)], ["a", "b", "c", "d"] * 2, "max_classes", "4 classes"),
])
def test_dataset_limits(limited: Service, inputs: list, targets: list, limit: str, words: str) -> None:
    response = limited.client.post("/v1/datasets", json={"inputs": inputs, "targets": targets})
    body = limit_problem(response, 422, limit, SMALL_LIMITS[limit])
    assert body["type"].endswith("/limit-exceeded") and words in body["detail"]
    assert body["errors"] == [{"field": "file", "message": body["detail"].removeprefix("file: ")}]
    assert stored(limited) == (0, 0)


def test_dataset_at_the_limits_is_accepted(limited: Service) -> None:
    response = limited.client.post("/v1/datasets", json={"inputs": [[0.0] * 5] * 300,
                                                         "targets": ["a", "b", "c"] * 100})
    assert response.status_code == 201, response.text


def test_declared_body_too_large_is_413_before_reading(limited: Service) -> None:
    response = limited.client.post("/v1/datasets", files={"file": ("big.csv", BIG_CSV)}, data={"target": "y"})
    body = limit_problem(response, 413, "max_upload_bytes", 20_000)
    assert body["type"].endswith("/content-too-large") and "Content-Length" in body["detail"]
    assert response.headers["connection"] == "close"
    assert stored(limited) == (0, 0)
    assert limited.anon.get("/readyz").status_code == 200


def test_streamed_body_too_large_is_413_on_uploads(limited: Service) -> None:
    json_type = {"content-type": "application/json"}
    response = limited.client.post("/v1/datasets", content=chunks(BIG_CSV), headers=json_type)
    assert "content-length" not in response.request.headers
    body = limit_problem(response, 413, "max_upload_bytes", 20_000)
    assert "exceeds the limit of 20000 bytes" in body["detail"]
    multipart = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n' + BIG_CSV
    response = limited.client.post("/v1/datasets", content=chunks(multipart),
                                   headers={"content-type": "multipart/form-data; boundary=b"})
    limit_problem(response, 413, "max_upload_bytes", 20_000)
    assert stored(limited) == (0, 0)


def test_streamed_body_too_large_is_413_on_binary_predict(limited: Service) -> None:
    """``/predict/npy`` reads its body itself, so the streamed-bytes 413 reaches the client."""
    response = limited.client.post("/v1/models/any/predict/npy", content=chunks(BIG_CSV),
                                   headers={"content-type": "application/x-npy"})
    limit_problem(response, 413, "max_upload_bytes", 20_000)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/models/any/predict", "/v1/models/any/certify"])
def test_streamed_body_too_large_is_413_on_json_routes(limited: Service, path: str) -> None:
    big = b'{"dataset_id": "x", "pad": "' + b"a" * 100_000 + b'"}'
    response = limited.client.post(path, content=chunks(big), headers={"content-type": "application/json"})
    limit_problem(response, 413, "max_upload_bytes", 20_000)


def test_a_file_over_the_limit_but_within_the_multipart_allowance_is_413(limited: Service) -> None:
    """The wire allows 64 kB of framing beyond the limit; the file itself is then held to the limit."""
    csv = b"x1,y\n" + b"0.5,1\n" * 5_000  # 30 kB
    response = limited.client.post("/v1/datasets", files={"file": ("mid.csv", csv)}, data={"target": "y"})
    body = problem(response, 413, "invalid-dataset", problem="too_large")
    assert body["detail"] == "The file is 30005 bytes; the limit is 20000."
    assert stored(limited) == (0, 0)


# ---- jobs
@pytest.mark.parametrize(("config", "limit", "field"), [
    ({"training": {"epochs": 101}}, "max_epochs", "config.training.epochs"),
    ({"architecture": {"hidden": [4, 4, 4, 4]}}, "max_depth", "config.architecture.hidden"),
    ({"architecture": {"hidden": [8, 65]}}, "max_width", "config.architecture.hidden.1"),
    ({"spline": {"knots": 53}}, "max_knots", "config.spline.knots"),
    ({"architecture": {"hidden": [60, 60, 60]}}, "max_parameters", "config.architecture"),
])
def test_network_and_epoch_limits(limited: Service, config: dict, limit: str, field: str) -> None:
    dataset_id = limited.upload(SMALL_DATASET)
    body = limit_problem(limited.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config}), 422,
                         limit, SMALL_LIMITS[limit])
    assert body["type"].endswith("/limit-exceeded") and body["errors"][0]["field"] == field
    assert body["detail"].startswith(field + ":")
    assert stored(limited) == (1, 0)


def test_a_network_at_the_limits_is_accepted(limited: Service) -> None:
    dataset_id = limited.upload(SMALL_DATASET)
    config = {"architecture": {"hidden": [20, 20, 20]}, "spline": {"knots": 51}, "training": {"epochs": 100}}
    assert limited.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config}).status_code == 202


# ---- models
def test_predict_and_certify_batch_limits(limited: Service) -> None:
    ids = limited.trained_model()
    predict = f"/v1/models/{ids['model_id']}/predict"
    assert limited.client.post(predict, json={"inputs": [[0.1, 0.2]] * 50}).status_code == 200
    body = problem(limited.client.post(predict, json={"inputs": [[0.1, 0.2]] * 51}), 422, "validation-error",
                   field="inputs")
    assert "51 rows exceed the limit of 50" in body["detail"]
    certify = f"/v1/models/{ids['model_id']}/certify"
    assert limited.client.post(certify, json={"inputs": [[0.1, 0.2]] * 4}).status_code == 200
    body = problem(limited.client.post(certify, json={"inputs": [[0.1, 0.2]] * 5}), 422, "validation-error",
                   field="inputs")
    assert "5 rows exceed the limit of 4" in body["detail"]


# ---- rate limit
def test_rate_limit_gives_429_with_retry_after(throttled: Service) -> None:
    codes = [throttled.client.get("/v1/models").status_code for _ in range(3)]
    assert codes == [200, 200, 200]  # the burst
    limited = throttled.client.get("/v1/models")
    body = problem(limited, 429, "rate-limited")
    assert "rate limit of 0.1 requests/s" in body["detail"]
    # one token refills in 10 s at 0.1/s: the client is told to wait that long (rounded up, at least 1 s)
    assert 9 <= int(limited.headers["retry-after"]) <= 10
    assert throttled.client.post("/v1/datasets", json={"inputs": [[0], [1]], "targets": [0, 1]}).status_code == 429


def test_rate_limit_is_per_key(throttled: Service) -> None:
    for _ in range(3):
        throttled.client.get("/v1/datasets")
    problem(throttled.client.get("/v1/datasets"), 429, "rate-limited")
    assert throttled.other.get("/v1/datasets").status_code == 200  # another tenant's key
    second_key = throttled.open_client(throttled.create_key("default"))
    assert second_key.get("/v1/datasets").status_code == 200  # another key of the same tenant


def test_probes_and_bad_keys_are_not_rate_limited(throttled: Service) -> None:
    for _ in range(3):
        throttled.client.get("/v1/jobs")
    problem(throttled.client.get("/v1/jobs"), 429)
    assert all(throttled.anon.get("/healthz").status_code == 200 for _ in range(10))
    assert throttled.anon.get("/readyz").status_code == 200
    # a request without a valid key is answered 401, whatever the state of any bucket
    assert all(throttled.anon.get("/v1/jobs").status_code == 401 for _ in range(5))
