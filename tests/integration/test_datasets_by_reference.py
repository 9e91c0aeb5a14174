"""Datasets by reference (issue 30), end to end with real processes: `lipspline serve` (embedded
default) reading Parquet objects from a real S3 API (moto's server on loopback) and from a
shared directory, never copying them.

Registered by URI: the footers, the column checks and one statistics pass; a job streams the
rows, and its model predicts with a certificate like any other. Bad references are 422s naming
the URI or the column, with nothing stored; an object changed or deleted after registration
fails the next job with that reason.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.processes import Deployment, embedded_env, wait_for_job
from tests.support.s3_server import CREDENTIALS, S3Server, s3_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
BUCKET = "lipspline-data"
#: Parquet uploads over this go to the artifact store as they arrive (the default is 16 MiB)
LARGE_UPLOAD_BYTES = 4096
CONFIG = {"architecture": {"hidden": [8], "activation": "deepspline"},
          "training": {"epochs": 2, "batch_size": 64, "lr": 0.02, "seed": 0, "validation_split": 0.2}}


def parquet_bytes(n: int, seed: int, **extra: object) -> bytes:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    columns = {f"x{j}": (rng.normal(size=n) + 2.0 * label).astype(np.float32) for j in range(3)}
    buffer = io.BytesIO()
    pq.write_table(pa.table({**columns, "label": label, **extra}), buffer, row_group_size=200)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def service(store: S3Server, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("by-reference")
    env = embedded_env(workdir, LIPSPLINE_S3_ENDPOINT_URL=store.url,
                       LIPSPLINE_DATASET_FILE_ROOTS=json.dumps([str(shared_dir)]),
                       LIPSPLINE_UPLOAD_STREAM_OVER_BYTES=str(LARGE_UPLOAD_BYTES), **CREDENTIALS)
    with Deployment(env, workdir, embedded=True).running() as dep:
        yield dep


@pytest.fixture
def http(service: Deployment) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def put(store: S3Server, key: str, body: bytes) -> None:
    store.client().put_object(Bucket=BUCKET, Key=key, Body=body)


def register(http: httpx.Client, uri: str, **fields: object) -> httpx.Response:
    return http.post("/v1/datasets", json={"uri": uri, "target": "label", **fields})


def dataset_count(http: httpx.Client) -> int:
    return len(http.get("/v1/datasets", params={"limit": 200}).json()["items"])


def test_a_dataset_in_s3_is_registered_trained_streamed_and_served(http: httpx.Client, store: S3Server) -> None:
    for k in range(3):
        put(store, f"blobs/part-{k}.parquet", parquet_bytes(500, seed=k))
    put(store, "blobs/README.txt", b"not data")
    created = register(http, f"s3://{BUCKET}/blobs/*.parquet", name="blobs", tags=["s3"])
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["n_samples"], dataset["n_features"], dataset["task"]) == (1500, 3, "classification")
    assert dataset["uri"] == f"s3://{BUCKET}/blobs/*.parquet" and dataset["feature_names"] == ["x0", "x1", "x2"]
    assert "lipspline-test" not in created.text  # no credential in the row or the answer
    preview = http.get(f"/v1/datasets/{dataset['id']}/preview", params={"rows": 5}).json()
    assert len(preview["rows"]) == 5 and preview["columns"][-1] == "target" and len(preview["feature_ranges"]) == 3

    job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG})
    assert job.status_code == 202, job.text
    done = wait_for_job(http, job.json()["id"])
    assert done["status"] == "succeeded", done
    model = http.get(f"/v1/models/{done['model_id']}").json()
    assert model["metrics"]["validation"]["accuracy"] > 0.85
    predicted = http.post(f"/v1/models/{done['model_id']}/predict", json={"inputs": [[2.0, 2.0, 2.0]]})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["lipschitz_bound"] > 0


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        (f"s3://{BUCKET}/nothing-here/*.parquet", "no object matches"),
        (f"s3://{BUCKET}/absent.parquet", "no object matches"),
        ("s3://no-such-bucket-lipspline/x.parquet", "no"),
        ("http://example.com/data.parquet", "scheme 'http' is not served"),
        ("file:///etc/passwd", "LIPSPLINE_DATASET_FILE_ROOTS"),
    ],
)
def test_a_uri_that_names_nothing_readable_is_a_422_naming_it(http: httpx.Client, uri: str, words: str) -> None:
    before = dataset_count(http)
    response = register(http, uri)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == "uri" and words in body["detail"], body
    assert dataset_count(http) == before


def test_bad_objects_and_columns_are_422s_naming_them(http: httpx.Client, store: S3Server) -> None:
    put(store, "bad/notes.parquet", b"a,b\n1,2\n" * 10)
    put(store, "text/part.parquet", parquet_bytes(50, seed=5, comment=np.array(["hi"] * 50)))
    before = dataset_count(http)
    not_parquet = register(http, f"s3://{BUCKET}/bad/notes.parquet")
    assert not_parquet.status_code == 422 and "notes.parquet" in not_parquet.text, not_parquet.text
    text_column = register(http, f"s3://{BUCKET}/text/part.parquet")
    assert text_column.status_code == 422 and text_column.json().get("column") == "comment", text_column.text
    missing = register(http, f"s3://{BUCKET}/text/part.parquet", features=["x0", "nope"])
    assert missing.status_code == 422 and missing.json().get("column") == "nope", missing.text
    no_target = http.post("/v1/datasets", json={"uri": f"s3://{BUCKET}/text/part.parquet", "target": "y"})
    assert no_target.status_code == 422 and no_target.json().get("column") == "y", no_target.text
    assert dataset_count(http) == before
    chosen = register(http, f"s3://{BUCKET}/text/part.parquet", features=["x0", "x2"])
    assert chosen.status_code == 201 and chosen.json()["feature_names"] == ["x0", "x2"], chosen.text


def test_data_changed_or_deleted_after_registration_fails_the_next_job_naming_it(
    http: httpx.Client, store: S3Server
) -> None:
    put(store, "moving/a.parquet", parquet_bytes(300, seed=1))
    put(store, "moving/b.parquet", parquet_bytes(300, seed=2))
    dataset = register(http, f"s3://{BUCKET}/moving/").json()
    put(store, "moving/b.parquet", parquet_bytes(300, seed=3))  # rewritten: other rows
    job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG}).json()
    failed = wait_for_job(http, job["id"])
    assert failed["status"] == "failed" and "moving/b.parquet" in failed["error"] and "changed" in failed["error"]

    again = register(http, f"s3://{BUCKET}/moving/").json()
    store.client().delete_object(Bucket=BUCKET, Key="moving/a.parquet")
    job = http.post("/v1/jobs", json={"dataset_id": again["id"], "config": CONFIG}).json()
    failed = wait_for_job(http, job["id"])
    assert failed["status"] == "failed" and "moving/a.parquet" in failed["error"]
    assert "no longer exists" in failed["error"]


def test_a_shared_directory_is_read_in_place(http: httpx.Client, shared_dir: Path) -> None:
    (shared_dir / "set").mkdir()
    (shared_dir / "set" / "one.parquet").write_bytes(parquet_bytes(400, seed=8))
    created = register(http, f"file://{shared_dir}/set/*.parquet")
    assert created.status_code == 201, created.text
    outside = register(http, f"file://{shared_dir}/../{shared_dir.name}x/one.parquet")
    assert outside.status_code == 422 and outside.json()["errors"][0]["field"] == "uri"


def csv_text(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 3)) + 2.0 * label[:, None]
    return "x0,x1,x2,label\n" + "".join(f"{a:.6f},{b:.6f},{c:.6f},{y}\n" for (a, b, c), y in zip(X, label, strict=True))


def test_a_large_csv_upload_is_stored_as_parquet_and_means_what_a_small_one_does(
    http: httpx.Client, service: Deployment
) -> None:
    text = csv_text(1000, seed=12)
    assert len(text) > LARGE_UPLOAD_BYTES
    created = http.post("/v1/datasets", files={"file": ("big.csv", text.encode())}, data={"target": "label"})
    assert created.status_code == 201, created.text
    dataset = created.json()
    stored = Path(dataset["uri"].removeprefix("file://"))
    table = pq.read_table(stored)  # the store holds Parquet, converted as the upload was read
    assert table.column_names == ["x0", "x1", "x2", "label"] and table.num_rows == 1000
    assert str(table.schema.field("label").type) == "int64"  # 0/1 labels stay ints, as in a small upload
    small_text = csv_text(40, seed=12)
    assert len(small_text) < LARGE_UPLOAD_BYTES
    small = http.post("/v1/datasets", files={"file": ("small.csv", small_text.encode())}, data={"target": "label"})
    assert small.status_code == 201 and small.json()["uri"] is None
    assert small.json()["classes"] == dataset["classes"] == [0, 1]
    first = http.get(f"/v1/datasets/{dataset['id']}/preview", params={"rows": 1}).json()["rows"][0]
    assert first[:3] == pytest.approx([float(v) for v in text.splitlines()[1].split(",")[:3]], abs=0)
    job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG}).json()
    assert wait_for_job(http, job["id"])["status"] == "succeeded"


def test_a_bad_large_csv_upload_is_a_422_naming_the_cell_and_stores_nothing(
    http: httpx.Client, service: Deployment
) -> None:
    lines = csv_text(1000, seed=13).splitlines()
    lines[700] = lines[700].replace(",", ",oops", 1)
    before = dataset_count(http)
    store_dir = Path(service.env["LIPSPLINE_DATA_DIR"]) / "artifacts"
    stored_before = sorted(store_dir.rglob("*")) if store_dir.exists() else []
    refused = http.post("/v1/datasets", files={"file": ("bad.csv", "\n".join(lines).encode())},
                        data={"target": "label"})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert "Row 699" in problem["detail"] and "'x1'" in problem["detail"], problem
    assert dataset_count(http) == before
    assert (sorted(store_dir.rglob("*")) if store_dir.exists() else []) == stored_before


def test_a_large_npz_upload_is_stored_as_parquet_and_a_bad_one_stores_nothing(
    http: httpx.Client, service: Deployment
) -> None:
    rng = np.random.default_rng(14)
    label = rng.integers(0, 2, 800)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=rng.normal(size=(800, 3)) + 2.0 * label[:, None], y=label)
    assert len(buffer.getvalue()) > LARGE_UPLOAD_BYTES
    created = http.post("/v1/datasets", files={"file": ("big.npz", buffer.getvalue())})
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["n_samples"], dataset["source_format"]) == (800, "npz")
    assert dataset["feature_names"] == ["x1", "x2", "x3"]
    assert pq.read_table(Path(dataset["uri"].removeprefix("file://"))).column_names == ["x1", "x2", "x3", "y"]
    job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG}).json()
    assert wait_for_job(http, job["id"])["status"] == "succeeded"

    before = dataset_count(http)
    buffer = io.BytesIO()
    np.savez(buffer, X=rng.normal(size=(800, 3)), y=label[:799])
    refused = http.post("/v1/datasets", files={"file": ("lengths.npz", buffer.getvalue())})
    assert refused.status_code == 422 and "800 rows but 'y' has 799" in refused.json()["detail"], refused.text
    assert dataset_count(http) == before


def test_a_large_parquet_upload_goes_to_the_artifact_store_and_trains_by_streaming(
    http: httpx.Client, service: Deployment
) -> None:
    body = parquet_bytes(1200, seed=11)
    assert len(body) > LARGE_UPLOAD_BYTES
    created = http.post("/v1/datasets", files={"file": ("big.parquet", body)}, data={"target": "label"})
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["uri"].startswith("file://") and dataset["n_samples"] == 1200
    stored = Path(dataset["uri"].removeprefix("file://"))
    assert stored.read_bytes() == body  # the upload itself, byte for byte, in the store
    job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG}).json()
    assert wait_for_job(http, job["id"])["status"] == "succeeded"
    missing_target = http.post("/v1/datasets", files={"file": ("big.parquet", body)})
    assert missing_target.status_code == 422 and missing_target.json()["errors"][0]["field"] == "target"
    assert http.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert not stored.exists()
