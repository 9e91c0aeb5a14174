"""Deployments under test: the embedded default, and PostgreSQL + Redis with two workers.

One of each for the whole session, shared by every module that takes ``deployment`` (tests
create their own datasets and models and never assume an empty service), so the suite
starts each pair of servers once rather than once per module.

Both are real processes (uvicorn via `lipspline serve` / `lipspline api`, Celery
via `lipspline worker`) driven over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import Deployment, embedded_env
from tests.support.services import fresh_postgres_database, fresh_redis_url

# Redis database numbers reserved for these tests (flushed at start)
E2E_REDIS_DB = 11


@pytest.fixture(scope="session", params=["embedded", "postgres_redis"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp(request.param)
    env = {"LIPSPLINE_DATA_DIR": str(workdir / "data"), "LIPSPLINE_CANCEL_POLL_S": "0.2"}
    drop = None
    if request.param == "embedded":
        dep = Deployment(embedded_env(workdir, **env), workdir, embedded=True)
    else:
        url, drop = fresh_postgres_database()
        env["LIPSPLINE_DATABASE_URL"] = url
        env["LIPSPLINE_BROKER_URL"] = fresh_redis_url(E2E_REDIS_DB)
        dep = Deployment(env, workdir, embedded=False, workers=2)
    dep.kind = request.param
    try:
        with dep.running():
            yield dep
    finally:
        if drop is not None:
            drop()
