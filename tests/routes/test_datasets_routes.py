"""``/v1/datasets``: uploads in every format, list, get, delete, and the 409 of a dataset in use."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.routes.helpers import SEED_INPUTS, SEED_TARGETS, Service, problem, seed_csv, seed_dataset_body

ID_KEYS = {"id", "name", "task", "n_samples", "n_features", "classes", "feature_names", "target_name",
           "source_format", "sha256", "created_at", "tags", "description", "uri"}


def npz_bytes(X: np.ndarray, y: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    return buffer.getvalue()


def parquet_bytes(columns: dict[str, list]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def created(response) -> dict:
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == ID_KEYS
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert len(body["sha256"]) == 64 and int(body["sha256"], 16) >= 0
    return body


def test_json_upload(svc: Service) -> None:
    body = created(svc.client.post("/v1/datasets", json=seed_dataset_body("disc")))
    assert body["name"] == "disc" and body["task"] == "classification" and body["source_format"] == "json"
    assert body["n_samples"] == 64 and body["n_features"] == 2 and body["classes"] == [0, 1]
    assert body["feature_names"] == ["x1", "x2"] and body["target_name"] is None


def test_json_upload_with_feature_names_and_string_labels(svc: Service) -> None:
    labels = ["out" if t == 0 else "in" for t in SEED_TARGETS]
    body = created(svc.client.post("/v1/datasets", json={"inputs": SEED_INPUTS, "targets": labels,
                                                        "feature_names": ["a", "b"]}))
    assert body["feature_names"] == ["a", "b"] and sorted(body["classes"]) == ["in", "out"]
    assert body["name"] == "dataset"  # the default name


def test_json_upload_regression(svc: Service) -> None:
    body = created(svc.client.post("/v1/datasets", json={"inputs": [[0.0], [1.0], [2.0]], "targets": [0.5, 1.5, 2.25],
                                                        "task": "regression"}))
    assert body["task"] == "regression" and body["classes"] is None and body["n_features"] == 1


def test_csv_upload(svc: Service) -> None:
    response = svc.client.post("/v1/datasets", files={"file": ("disc.csv", seed_csv(), "text/csv")},
                               data={"target": "y", "name": "from csv"})
    body = created(response)
    assert body["source_format"] == "csv" and body["target_name"] == "y" and body["name"] == "from csv"
    assert body["n_samples"] == 64 and body["feature_names"] == ["x1", "x2"] and body["classes"] == [0, 1]


def test_csv_upload_regression_task_field(svc: Service) -> None:
    csv = b"x,t\n0.0,1\n1.0,2\n2.0,3\n3.0,5\n"
    body = created(svc.client.post("/v1/datasets", files={"file": ("r.csv", csv)},
                                   data={"target": "t", "task": "regression"}))
    assert body["task"] == "regression" and body["classes"] is None and body["target_name"] == "t"


def test_npz_upload(svc: Service) -> None:
    X, y = np.array(SEED_INPUTS), np.array(SEED_TARGETS, dtype=np.int64)
    body = created(svc.client.post("/v1/datasets", files={"file": ("disc.npz", npz_bytes(X, y))}))
    assert body["source_format"] == "npz" and body["target_name"] is None
    assert body["n_samples"] == 64 and body["n_features"] == 2 and body["classes"] == [0, 1]


@pytest.mark.parametrize("filename", ["disc.parquet", "disc.pq"])
def test_parquet_upload(svc: Service, filename: str) -> None:
    columns = {"x1": [r[0] for r in SEED_INPUTS], "x2": [r[1] for r in SEED_INPUTS], "label": SEED_TARGETS}
    body = created(svc.client.post("/v1/datasets", files={"file": (filename, parquet_bytes(columns))},
                                   data={"target": "label"}))
    assert body["source_format"] == "parquet" and body["target_name"] == "label"
    assert body["feature_names"] == ["x1", "x2"] and body["n_samples"] == 64


def test_the_same_data_has_the_same_sha256_in_every_format(svc: Service) -> None:
    X, y = np.array(SEED_INPUTS), np.array(SEED_TARGETS, dtype=np.int64)
    from_json = created(svc.client.post("/v1/datasets", json=seed_dataset_body()))
    from_npz = created(svc.client.post("/v1/datasets", files={"file": ("d.npz", npz_bytes(X, y))}))
    assert from_json["sha256"] == from_npz["sha256"] and from_json["id"] != from_npz["id"]


def test_list_get_delete(svc: Service) -> None:
    first = svc.upload(seed_dataset_body("first"))
    second = svc.upload(seed_dataset_body("second"))
    items = svc.client.get("/v1/datasets").json()["items"]
    assert [d["id"] for d in items] == [second, first]  # newest first
    got = svc.client.get(f"/v1/datasets/{first}")
    assert got.status_code == 200 and got.json()["name"] == "first" and got.json() == items[1]

    deleted = svc.client.delete(f"/v1/datasets/{first}")
    assert deleted.status_code == 204 and deleted.content == b""
    problem(svc.client.get(f"/v1/datasets/{first}"), 404, "not-found")
    problem(svc.client.delete(f"/v1/datasets/{first}"), 404, "not-found")
    assert [d["id"] for d in svc.client.get("/v1/datasets").json()["items"]] == [second]


def test_preview_shows_the_first_rows_and_every_features_range(svc: Service) -> None:
    dataset_id = svc.upload(seed_dataset_body("preview"))
    response = svc.client.get(f"/v1/datasets/{dataset_id}/preview", params={"rows": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["x1", "x2", "target"] and body["n_samples"] == len(SEED_INPUTS)
    assert body["rows"] == [[*x, y] for x, y in zip(SEED_INPUTS[:3], SEED_TARGETS[:3], strict=True)]
    X = np.asarray(SEED_INPUTS)
    assert body["feature_ranges"] == [{"min": lo, "max": hi} for lo, hi in zip(X.min(0), X.max(0), strict=True)]
    strings = svc.upload({"inputs": [[1.0], [2.0]], "targets": ["cat", "dog"], "task": "classification"})
    assert svc.client.get(f"/v1/datasets/{strings}/preview").json()["rows"] == [[1.0, "cat"], [2.0, "dog"]]
    problem(svc.client.get(f"/v1/datasets/{dataset_id}/preview", params={"rows": 0}), 422, "validation-error")
    problem(svc.client.get("/v1/datasets/nope/preview"), 404, "not-found")


def test_unknown_dataset_is_404(svc: Service) -> None:
    body = problem(svc.client.get("/v1/datasets/does-not-exist"), 404, "not-found")
    assert body["detail"] == "dataset 'does-not-exist' does not exist"
    problem(svc.client.delete("/v1/datasets/does-not-exist"), 404, "not-found")


@pytest.mark.parametrize("state", ["queued", "running"])
def test_delete_refused_while_an_active_job_uses_it(svc: Service, state: str) -> None:
    dataset_id = svc.upload()
    job_id = svc.submit(dataset_id)
    if state == "running":
        svc.worker.claim(job_id)
    assert svc.job(job_id)["status"] == state
    body = problem(svc.client.delete(f"/v1/datasets/{dataset_id}"), 409, "dataset-in-use")
    assert body["jobs"] == [job_id] and job_id in body["detail"]
    assert svc.client.get(f"/v1/datasets/{dataset_id}").status_code == 200  # still there


def test_delete_allowed_once_the_job_finished_and_the_job_keeps_its_history(svc: Service) -> None:
    ids = svc.trained_model()
    assert svc.client.delete(f"/v1/datasets/{ids['dataset_id']}").status_code == 204
    job = svc.job(ids["job_id"])
    assert job["status"] == "succeeded" and job["dataset_id"] is None and job["model_id"] == ids["model_id"]
    assert svc.client.get(f"/v1/models/{ids['model_id']}").status_code == 200  # the model lives on


def test_delete_allowed_after_a_queued_job_was_cancelled(svc: Service) -> None:
    dataset_id = svc.upload()
    job_id = svc.submit(dataset_id)
    problem(svc.client.delete(f"/v1/datasets/{dataset_id}"), 409, "dataset-in-use")
    assert svc.client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    assert svc.client.delete(f"/v1/datasets/{dataset_id}").status_code == 204


# ---- each 4xx of the upload, naming what is wrong
def test_bad_csv_names_row_and_column(svc: Service) -> None:
    bad = b"x1,x2,y\n0.1,0.2,1\n0.3,nan,0\n"
    body = problem(svc.client.post("/v1/datasets", files={"file": ("d.csv", bad)}, data={"target": "y"}), 422,
                   "invalid-dataset", problem="nan", row=1, column="x2")
    assert "row 1" in body["detail"] and "x2" in body["detail"]
    assert svc.client.get("/v1/datasets").json()["items"] == []  # nothing half-written


def test_bad_json_dataset_names_the_row(svc: Service) -> None:
    body = problem(svc.client.post("/v1/datasets", json={"inputs": [[1, 2], [3]], "targets": [0, 1]}), 422,
                   "invalid-dataset", problem="ragged_row", row=1)
    assert "row 1" in body["detail"].lower()


def test_json_schema_errors_name_the_field(svc: Service) -> None:
    body = problem(svc.client.post("/v1/datasets", json={"inputs": [[1]], "targets": [0], "colour": "red"}), 422,
                   "validation-error", field="colour")
    assert "colour" in body["detail"]
    problem(svc.client.post("/v1/datasets", json={"targets": [0]}), 422, "validation-error", field="inputs")
    problem(svc.client.post("/v1/datasets", json={"inputs": [[1], [2]], "targets": [0, 1], "task": "ranking"}), 422,
            "validation-error", field="task")


def test_unparseable_json_is_400(svc: Service) -> None:
    response = svc.client.post("/v1/datasets", content=b'{"inputs": [[1,', headers={"content-type": "application/json"})
    assert "not valid JSON" in problem(response, 400, "bad-json")["detail"]


def test_other_content_types_are_415(svc: Service) -> None:
    response = svc.client.post("/v1/datasets", content=seed_csv(), headers={"content-type": "text/csv"})
    assert "Content-Type" in problem(response, 415, "unsupported-media-type")["detail"]
    problem(svc.client.post("/v1/datasets"), 415, "unsupported-media-type")  # no body, no type


def test_multipart_needs_a_file_and_a_known_task(svc: Service) -> None:
    problem(svc.client.post("/v1/datasets", files={"other": (None, "x")}, data={"target": "y"}), 422,
            "validation-error", field="file")
    problem(svc.client.post("/v1/datasets", files={"file": ("d.csv", seed_csv())}, data={"target": "y", "task": "x"}),
            422, "validation-error", field="task")
    # a second file part (here: the name field sent as a file) is refused by the form parser itself
    response = svc.client.post("/v1/datasets", files=[("file", ("d.csv", seed_csv())), ("name", ("n.txt", b"x"))],
                               data={"target": "y"})
    assert "too many files" in problem(response, 400)["detail"].lower()


def test_upload_that_is_valid_is_stored_with_its_content(svc: Service) -> None:
    """What is stored is what was sent: a job trained on it sees the uploaded rows."""
    from lipspline_platform.db.dataset_blob import dataset_from_row
    from lipspline_platform.db.engine import session_scope
    from lipspline_platform.db.tables import DatasetRow

    dataset_id = created(svc.client.post("/v1/datasets", files={"file": ("d.csv", seed_csv())},
                                         data={"target": "y"})).get("id")
    with session_scope(svc.database_url) as session:
        stored = dataset_from_row(session.get(DatasetRow, dataset_id), svc.settings)
    np.testing.assert_array_equal(stored.X, np.array(SEED_INPUTS))
    assert stored.y.tolist() == SEED_TARGETS


@pytest.mark.parametrize("media_type", ["Application/JSON", "Multipart/Form-Data"])
def test_media_types_are_case_insensitive(svc: Service, media_type: str) -> None:
    if media_type.startswith("Application"):
        content, content_type = b'{"inputs": [[1], [2]], "targets": [0, 1]}', media_type
    else:
        request = httpx.Request("POST", "http://test/", files={"file": ("d.csv", seed_csv())}, data={"target": "y"})
        content = request.read()
        content_type = request.headers["content-type"].replace("multipart/form-data", media_type)
    response = svc.client.post("/v1/datasets", content=content, headers={"content-type": content_type})
    assert response.status_code == 201, response.text
