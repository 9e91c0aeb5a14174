"""Names, tags and descriptions on PostgreSQL: the list filters (``?name=``, repeated ``?tag=``), the tag
index following a retag and a delete, and hostile labels refused before the database (issue 27).

The same scenario as ``tests/routes/test_labels_routes.py`` (:func:`check_filters`), on a real
server: the ``IN`` subquery of the tag filter, the JSON ``tags`` column and its ``'[]'`` default
must work there as on SQLite. The module's database is created and dropped here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from lipspline_platform.db.migrate import upgrade
from tests.integration.test_hostile_queries_postgres import PostgresService
from tests.routes.helpers import TINY_CONFIG, Trainer, problem
from tests.routes.test_labels_routes import check_filters
from tests.support import unhandled_errors
from tests.support.services import fresh_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    url, drop = fresh_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop()


@pytest.fixture
def svc(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresService]:
    data_dir = tmp_path_factory.mktemp("labels-postgres")
    service = PostgresService(data_dir, database, Trainer())
    try:
        yield service
    finally:
        service.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_unhandled_errors() -> Iterator[None]:
    with unhandled_errors.no_unhandled_errors():
        yield


def test_lists_filter_by_name_and_every_tag_given_on_postgresql(svc: PostgresService) -> None:
    check_filters(svc)


def test_hostile_labels_are_refused_before_postgresql(svc: PostgresService) -> None:
    """What PostgreSQL text cannot hold (NUL, a lone surrogate) is a 422 naming the field, never a 500."""
    job_id = svc.submit(svc.upload())
    for values, field in (({"name": "a\x00b"}, "name"), ({"description": "a\x00b"}, "description"),
                          ({"name": "\ud800"}, "name"), ({"description": "x\udfff"}, "description"),
                          ({"tags": ["a\x00"]}, "tags.0")):
        # sent as JSON escapes (json.dumps' ensure_ascii), as a client would send a lone surrogate
        sent = {"content": json.dumps(values), "headers": {"Content-Type": "application/json"}}
        problem(svc.client.patch(f"/v1/jobs/{job_id}", **sent), 422, "validation-error", field=field)
        body = {"dataset_id": svc.job(job_id)["dataset_id"], "config": TINY_CONFIG, **values}
        sent["content"] = json.dumps(body)
        problem(svc.client.post("/v1/jobs", **sent), 422, "validation-error", field=field)
    form = svc.client.post("/v1/datasets", files={"file": ("d.csv", b"a,b,y\n0,1,0\n1,0,1\n")},
                           data={"target": "y", "description": "x\x00y"})
    problem(form, 422, "validation-error", field="description")
    problem(svc.client.get("/v1/jobs", params={"tag": "a\x00"}), 422, field="query.tag")
    assert svc.job(job_id)["name"] is None
