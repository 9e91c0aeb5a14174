"""Every case of the hostile-input corpus (``tests/e2e/corpus``) through the in-process app.

The same expectations as ``tests/e2e/test_hostile_input.py``, checked the same way: a 4xx
``application/problem+json`` (never a 500) whose ``detail`` holds the case's words, with the
data error's ``problem``, ``row`` and ``column`` and the validation error's field; nothing
written (the tenant's rows and the files under the data dir are unchanged); still ready after.
Cases marked with a known bug are strict xfails there and here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.tables import DatasetRow, JobRow, ModelRow
from tests.e2e import corpus
from tests.e2e.corpus import ABSENT, Case
from tests.routes.helpers import DB_FILE, Service, Trainer, problem

SQLITE_FILES = {DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", DB_FILE + "-journal"}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, template_db: Path, trainer: Trainer) -> Iterator[Service]:
    """One service for the whole corpus, with the upload limit the corpus is built for."""
    service = Service(tmp_path_factory.mktemp("hostile") / "data", template_db, trainer,
                      max_upload_bytes=corpus.MAX_UPLOAD_BYTES)
    try:
        yield service
    finally:
        service.close()
        dispose_all()


@pytest.fixture(scope="module")
def seeded_ids(hostile: Service) -> dict[str, str]:
    """One good dataset and a trained 2-feature model, so configs and predicts reach the checks."""
    return hostile.trained_model()


def snapshot(svc: Service) -> dict:
    with session_scope(svc.database_url) as session:
        records = {table.__tablename__: sorted(session.scalars(select(table.id)).all())
                   for table in (DatasetRow, JobRow, ModelRow)}
    root = svc.settings.data_dir
    files = {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in root.rglob("*") if p.is_file() and p.name not in SQLITE_FILES}
    return {"records": records, "files": files}


def send_and_check(svc: Service, case: Case, method: str, path: str, dataset_id: str | None = None) -> None:
    before = snapshot(svc)
    response = svc.client.request(method, path, **corpus.request_kwargs(case, dataset_id))
    assert response.status_code < 500, (case.name, response.status_code, response.text[:500])
    body = problem(response, case.status)
    for word in case.words:
        assert word.lower() in body["detail"].lower(), (case.name, word, body["detail"])
    if case.problem is not None:
        assert body["problem"] == case.problem, (case.name, body)
    if case.row is not ABSENT:
        assert body["row"] == case.row, (case.name, body)
    if case.column is not ABSENT:
        assert body["column"] == case.column, (case.name, body)
    if case.field is not None:
        assert case.field in [error["field"] for error in body.get("errors", [])], (case.name, body)
    assert snapshot(svc) == before, f"{case.name}: something was written"
    assert svc.anon.get("/readyz").status_code == 200


def params(cases: list[Case]) -> list:
    out = []
    for c in cases:
        marks = [pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


@pytest.mark.parametrize("case", params(corpus.upload_cases()))
def test_bad_upload(hostile: Service, seeded_ids: dict, case: Case) -> None:
    send_and_check(hostile, case, "POST", "/v1/datasets")


@pytest.mark.parametrize("case", params(corpus.JSON_DATASET_CASES))
def test_bad_json_dataset(hostile: Service, seeded_ids: dict, case: Case) -> None:
    send_and_check(hostile, case, "POST", "/v1/datasets")


@pytest.mark.parametrize("case", params(corpus.CONFIG_CASES))
def test_bad_config(hostile: Service, seeded_ids: dict, case: Case) -> None:
    send_and_check(hostile, case, "POST", "/v1/jobs", seeded_ids["dataset_id"])


@pytest.mark.parametrize("case", params(corpus.PREDICT_CASES))
def test_bad_predict(hostile: Service, seeded_ids: dict, case: Case) -> None:
    send_and_check(hostile, case, "POST", f"/v1/models/{seeded_ids['model_id']}/predict")


def test_still_serving_after_the_corpus(hostile: Service, seeded_ids: dict) -> None:
    response = hostile.client.post(f"/v1/models/{seeded_ids['model_id']}/predict",
                                   json={"inputs": [[0.0, 0.0], [0.3, -0.2]]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 2
    good = hostile.client.post("/v1/datasets", files={"file": ("ok.csv", b"x1,y\n0.1,0\n0.2,1\n")},
                               data={"target": "y"})
    assert good.status_code == 201, good.text
    assert hostile.client.delete(f"/v1/datasets/{good.json()['id']}").status_code == 204
