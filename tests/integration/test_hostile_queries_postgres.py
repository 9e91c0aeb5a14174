"""The hostile-query corpus on PostgreSQL: 400/404/422, never a 500 (issue 26, item 6).

PostgreSQL is stricter than SQLite where the corpus aims: text cannot hold a NUL byte
(comparing a column with one is an error), text is never compared with an integer (a
cursor id of 5), and a timestamp of year 0 does not exist. The app answers all of it
before the database sees it; this module proves it against a real server, with the
corpus and the walk over every route of ``tests/routes/test_hostile_queries_routes.py``.
The module's database is created and dropped here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lipspline_platform.db.migrate import upgrade
from lipspline_platform.settings import EMBEDDED_BROKER, Settings
from service.app import create_app
from tests.routes.helpers import OPEN_RATE, Runner, Service, Trainer
from tests.routes.test_hostile_queries_routes import (
    build_world,
    check_every_list_route,
    check_every_path_route,
    check_nul_in_query_values_and_headers,
)
from tests.support import unhandled_errors
from tests.support.services import fresh_postgres_database

pytestmark = pytest.mark.integration


class PostgresService(Service):
    """``tests/routes/helpers.Service`` on a PostgreSQL database instead of a copy of the SQLite template."""

    def __init__(self, data_dir: Path, database_url: str, trainer: Trainer, **overrides: object) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(data_dir=data_dir, database_url=database_url, broker_url=EMBEDDED_BROKER,
                                 reconcile_every_s=0, **{**OPEN_RATE, **overrides})
        self.app = create_app(self.settings)
        self.worker = Runner(self.settings, trainer)
        self.keys: dict[str, str] = {}
        self._clients = []
        self.client = self.client_for("default")
        self.other = self.client_for("other")
        self.anon = self.open_client(None)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    url, drop = fresh_postgres_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop()


@pytest.fixture(scope="module")
def svc(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresService]:
    data_dir = tmp_path_factory.mktemp("hostile-postgres")
    service = PostgresService(data_dir, database, Trainer(), webhook_allow_private=True)
    try:
        yield service
    finally:
        service.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_unhandled_errors() -> Iterator[None]:
    """The service logs every unhandled exception (the 500s): none may happen."""
    with unhandled_errors.no_unhandled_errors():
        yield


def test_the_corpus_on_postgresql_is_refused_never_a_500(svc: PostgresService) -> None:
    world = build_world(svc)
    assert check_every_path_route(svc, world) > 300
    assert check_every_list_route(svc, world) > 100
    check_nul_in_query_values_and_headers(svc, world)
    # what PostgreSQL refuses outright, one by one, with the plain (read/predict/train) key too
    assert svc.client.get("/v1/datasets/a%00b").status_code == 404
    assert svc.client.get("/v1/datasets", params={"name": "a\x00b"}).status_code == 422
    assert svc.client.get("/v2/models/a%00b").status_code == 404
    assert svc.client.post("/v1/models/reg@pro%00duction/predict", json={"inputs": [[0.0, 0.0]]}).status_code == 404


def test_nul_bytes_in_bodies_and_form_fields_are_refused_never_a_500(svc: PostgresService) -> None:
    """Bodies: every JSON request model refuses a NUL in any string (422 naming it); multipart form fields,
    which no model validates, reach the database, whose refusal is a 422 too (and nothing is stored)."""
    body = {"name": "a\x00b", "inputs": [[0.0, 1.0], [1.0, 0.0]], "targets": [0, 1]}
    refused = svc.client.post("/v1/datasets", json=body)
    assert refused.status_code == 422 and "name: must not contain a NUL byte" in refused.text, refused.text
    job = svc.client.post("/v1/jobs", json={"dataset_id": "a\x00b"})
    assert job.status_code == 422 and "NUL" in job.text, job.text
    registered = svc.client.post("/v1/registered-models", json={"name": "ok", "description": "x\x00y"})
    assert registered.status_code == 422, registered.text
    before = len(svc.client.get("/v1/datasets").json()["items"])
    form = svc.client.post("/v1/datasets", files={"file": ("d.csv", b"a,b,y\n0,1,0\n1,0,1\n")},
                           data={"target": "y", "name": "form\x00name"})
    assert form.status_code in (400, 422), form.text
    assert len(svc.client.get("/v1/datasets").json()["items"]) == before
