"""Serving through a PostgreSQL outage: loaded models keep predicting, the rest answers 503, never 500.

The outage is real from the API's side: its database refuses new connections
(``ALLOW_CONNECTIONS false``) and every open connection to it is terminated, while
predictions run from several threads. A prediction of a model the API already
loaded, with a key it verified, needs no database and must keep succeeding; anything
that needs the database answers 503 problem+json with ``Retry-After``; once the
database accepts connections again the API recovers by itself (the pool re-connects).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import DEFAULT_TENANT
from lipspline_platform.settings import Settings
from service.app import create_app
from service.security import auth
from tests.routes.helpers import Runner, Trainer, seed_dataset_body
from tests.support.services import POSTGRES_ADMIN_URL, fresh_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture
def database() -> Iterator[str]:
    url, drop = fresh_postgres_database()
    try:
        yield url
    finally:
        _allow_connections(url, True)
        drop()


def _allow_connections(url: str, allowed: bool) -> None:
    """Open or close the database to new connections; closing also terminates the open ones."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )
    finally:
        admin.dispose()


def test_loaded_models_keep_predicting_and_the_rest_answers_503(database: str, tmp_path: Path) -> None:
    upgrade(database)
    settings = Settings(
        data_dir=tmp_path, database_url=database, reconcile_every_s=0, rate_limit_per_s=1e6, rate_limit_burst=10**6
    )
    with session_scope(database) as session:
        key = auth.create_key(session, DEFAULT_TENANT)
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
    with client:
        dataset = client.post("/v1/datasets", json=seed_dataset_body()).json()["id"]
        job = client.post("/v1/jobs", json={"dataset_id": dataset, "config": {"training": {"epochs": 2}}})
        model_id = Runner(settings, Trainer()).run(job.json()["id"])
        body = {"inputs": [[0.1, -0.2], [0.3, 0.4]], "epsilon": 0.01}
        before = client.post(f"/v1/models/{model_id}/predict", json=body)
        assert before.status_code == 200, before.text

        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                response = client.post(f"/v1/models/{model_id}/predict", json=body)
                statuses.append(response.status_code)
                assert response.status_code != 200 or response.json()["outputs"] == before.json()["outputs"]

        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            _allow_connections(database, False)
            time.sleep(2.5)  # longer than the verified-key cache's 1 s: keys are re-checked, and fail to be
            during = [
                client.get("/v1/jobs"),
                client.get(f"/v1/models/{model_id}"),
                client.post("/v1/datasets", json=seed_dataset_body()),
            ]
            served_during = len(statuses)
        finally:
            _allow_connections(database, True)
            stop.set()
            for thread in threads:
                thread.join(30)
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        assert served_during > 10
        for response in during:
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["type"].endswith("database-unavailable") and response.headers["Retry-After"]
        # the database is back: the API recovers without a restart
        deadline = time.monotonic() + 20
        while (recovered := client.get("/v1/jobs")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert recovered.status_code == 200, recovered.text
        assert job.json()["id"] in {j["id"] for j in recovered.json()["items"]}
    dispose_all()
