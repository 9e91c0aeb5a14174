"""Hostile and broken input over HTTP (issue 5, item 3), against one real embedded deployment.

For every case of ``tests/e2e/corpus`` (bad uploads, bad JSON datasets, bad training configs,
bad predict bodies):

* the answer is a 4xx ``application/problem+json`` whose ``detail`` names the problem, and for
  data errors the machine code, row and column;
* nothing is half-written: the tenant's datasets, jobs and models are the same before and
  after, and no file appeared, vanished or changed under the data dir apart from the SQLite
  files (the database, its WAL and shared memory); the broker's queue and processed folders
  are unchanged because no case is accepted as a job;
* ``/readyz`` still answers 200.

Known service bugs are ``xfail(strict=True)`` with the reason (see ``Case.bug``), so the
suite stays green while the bug is visible, and turns red once it is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import corpus
from tests.e2e.corpus import ABSENT, Case
from tests.support.processes import Deployment, embedded_env, wait_for_job

pytestmark = pytest.mark.e2e

TINY_CONFIG = {
    "architecture": {"hidden": [2], "activation": "deepspline"},
    "spline": {"knots": 11, "range": 2.0},
    "training": {"epochs": 2, "batch_size": 16, "lr": 0.01, "seed": 0, "validation_split": 0.0},
    "device": "cpu",
}
#: files under the data dir that may change on any request (SQLite writes, WAL checkpoints)
SQLITE_SUFFIXES = ("lipspline.sqlite3", "lipspline.sqlite3-wal", "lipspline.sqlite3-shm", "lipspline.sqlite3-journal")


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("hostile")
    env = embedded_env(
        workdir,
        LIPSPLINE_CANCEL_POLL_S="0.2",
        LIPSPLINE_MAX_UPLOAD_BYTES=str(corpus.MAX_UPLOAD_BYTES),
        # a few hundred requests in quick succession: the rate limit is not under test here
        LIPSPLINE_RATE_LIMIT_PER_S="100000",
        LIPSPLINE_RATE_LIMIT_BURST="100000",
    )
    with Deployment(env, workdir, embedded=True).running() as deployment:
        yield deployment


@pytest.fixture(scope="module")
def seeded(dep: Deployment) -> dict[str, str]:
    """One good dataset and one trained 2-feature model, so configs and predicts reach the checks."""
    with dep.client() as http:
        inputs = [[(i % 7) / 7 - 0.5, (i % 5) / 5 - 0.4] for i in range(64)]
        targets = [int(a * a + b * b < 0.1) for a, b in inputs]
        dataset = http.post("/v1/datasets", json={"name": "seed", "inputs": inputs, "targets": targets})
        assert dataset.status_code == 201, dataset.text
        dataset_id = dataset.json()["id"]
        job = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG})
        assert job.status_code == 202, job.text
        state = wait_for_job(http, job.json()["id"])
        assert state["status"] == "succeeded", state
    return {"dataset_id": dataset_id, "model_id": state["model_id"]}


def data_files(dep: Deployment) -> dict[str, tuple[int, int]]:
    """Every file under the data dir except the SQLite ones: path -> (size, mtime_ns)."""
    root = Path(dep.env["LIPSPLINE_DATA_DIR"])
    listing = {}
    for path in root.rglob("*"):
        if path.is_file() and path.name not in SQLITE_SUFFIXES:
            stat = path.stat()
            listing[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return listing


def snapshot(dep: Deployment) -> dict:
    with dep.client() as http:
        records = {kind: sorted(item["id"] for item in http.get(f"/v1/{kind}").json()["items"])
                   for kind in ("datasets", "jobs", "models")}
    sqlite_names = {p.name for p in Path(dep.env["LIPSPLINE_DATA_DIR"]).iterdir() if p.is_file()}
    return {"records": records, "files": data_files(dep), "sqlite": sqlite_names & set(SQLITE_SUFFIXES)}


def check_problem(response: httpx.Response, case: Case) -> dict:
    assert response.status_code == case.status, (case.name, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == case.status and body["title"] and body["type"].startswith("https://")
    detail = body["detail"]
    assert isinstance(detail, str) and detail
    for word in case.words:
        assert word.lower() in detail.lower(), (case.name, word, detail)
    if case.problem is not None:
        assert body["problem"] == case.problem, (case.name, body)
    if case.row is not ABSENT:
        assert body["row"] == case.row, (case.name, body)
    if case.column is not ABSENT:
        assert body["column"] == case.column, (case.name, body)
    if case.field is not None:
        fields = [error["field"] for error in body.get("errors", [])]
        assert case.field in fields, (case.name, fields, body)
    return body


def send_and_check(dep: Deployment, case: Case, method: str, path: str, dataset_id: str | None = None) -> None:
    before = snapshot(dep)
    # A fresh connection per case: after a 500 the server closes the connection it answered on.
    with dep.client() as http:
        response = http.request(method, path, **corpus.request_kwargs(case, dataset_id))
    assert response.status_code < 500, (case.name, response.status_code, response.text[:500])
    check_problem(response, case)
    after = snapshot(dep)
    assert after["records"] == before["records"], f"{case.name}: records changed"
    assert after["files"] == before["files"], f"{case.name}: files under the data dir changed"
    assert after["sqlite"] <= set(SQLITE_SUFFIXES)
    assert httpx.get(dep.url + "/readyz", timeout=10).status_code == 200


def params(cases: list[Case]) -> list:
    return [
        pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else [])
        for c in cases
    ]


UPLOADS = corpus.upload_cases()


def test_corpus_is_big_enough() -> None:
    names = [c.name for c in [*UPLOADS, *corpus.JSON_DATASET_CASES, *corpus.CONFIG_CASES, *corpus.PREDICT_CASES]]
    assert len(set(names)) == len(names)
    assert len(UPLOADS) >= 20 and len(corpus.CONFIG_CASES) >= 10 and len(corpus.PREDICT_CASES) >= 10
    big = [c.name for c in UPLOADS if len(c.content) > 256 * 1024 and c.name != "too-large-upload"]
    assert big == [], big  # the bombs are small on the wire


@pytest.mark.parametrize("case", params(UPLOADS))
def test_bad_upload(dep: Deployment, seeded: dict, case: Case) -> None:
    send_and_check(dep, case, "POST", "/v1/datasets")


@pytest.mark.parametrize("case", params(corpus.JSON_DATASET_CASES))
def test_bad_json_dataset(dep: Deployment, seeded: dict, case: Case) -> None:
    send_and_check(dep, case, "POST", "/v1/datasets")


@pytest.mark.parametrize("case", params(corpus.CONFIG_CASES))
def test_bad_config(dep: Deployment, seeded: dict, case: Case) -> None:
    send_and_check(dep, case, "POST", "/v1/jobs", seeded["dataset_id"])


@pytest.mark.parametrize("case", params(corpus.PREDICT_CASES))
def test_bad_predict(dep: Deployment, seeded: dict, case: Case) -> None:
    send_and_check(dep, case, "POST", f"/v1/models/{seeded['model_id']}/predict")


def test_other_tenants_ids_are_not_found(dep: Deployment, seeded: dict) -> None:
    """A job on another tenant's dataset, or a predict on its model: 404 and nothing written."""
    other = dep.create_key("intruder")
    before = snapshot(dep)
    with dep.client(other) as http:
        job = http.post("/v1/jobs", json={"dataset_id": seeded["dataset_id"], "config": TINY_CONFIG})
        predict = http.post(f"/v1/models/{seeded['model_id']}/predict", json={"inputs": [[0.0, 0.0]]})
        assert http.get("/v1/jobs").json()["items"] == []
    for response in (job, predict):
        assert response.status_code == 404 and "does not exist" in response.json()["detail"], response.text
    after = snapshot(dep)
    assert after["records"] == before["records"] and after["files"] == before["files"]


def test_still_serving_after_the_corpus(dep: Deployment, seeded: dict) -> None:
    """After every bad request: ready, and the seeded model still answers good requests."""
    with dep.client() as http:
        assert http.get("/readyz").status_code == 200
        response = http.post(f"/v1/models/{seeded['model_id']}/predict", json={"inputs": [[0.0, 0.0], [0.3, -0.2]]})
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 2
        good = http.post("/v1/datasets", files={"file": ("ok.csv", b"x1,y\n0.1,0\n0.2,1\n")}, data={"target": "y"})
        assert good.status_code == 201, good.text
        assert http.delete(f"/v1/datasets/{good.json()['id']}").status_code == 204
