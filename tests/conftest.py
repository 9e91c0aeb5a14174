"""Session-wide settings of the test suite.

One intra-op thread for torch and BLAS, here and in every server and worker process the
tests start (they inherit the environment). The networks under test are tiny: a second
thread buys nothing, and on a 2-core machine shared by a test process, an API server and
one or two workers, OpenMP threads that spin-wait for a core each time an operation
starts made training steps wait on the scheduler (a 60-epoch circle fit took 95 s under
load instead of 4 s). It changes no result: the kernels are deterministic per thread count
and every assertion holds for any thread count.
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.support.processes import Deployment, embedded_env  # noqa: E402
from tests.support.services import fresh_postgres_database, fresh_redis_url  # noqa: E402

# ---- deployments under test ----------------------------------------------------------------
# The embedded default, and PostgreSQL + Redis with two workers: one of each for the whole
# session, shared by every module that takes ``deployment`` (the e2e tests and the docs
# examples; tests create their own datasets and models and never assume an empty service), so
# the suite starts each pair of servers once. Both are real processes (uvicorn via
# `lipspline serve` / `lipspline api`, Celery via `lipspline worker`) driven over HTTP.

# Redis database numbers reserved for these tests (flushed at start)
E2E_REDIS_DB = 11


@pytest.fixture(scope="session", params=["embedded", "postgres_redis"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp(request.param)
    # file:// datasets by reference may name the temporary directory (the docs examples write there)
    env = {"LIPSPLINE_DATA_DIR": str(workdir / "data"), "LIPSPLINE_CANCEL_POLL_S": "0.2",
           "LIPSPLINE_DATASET_FILE_ROOTS": json.dumps([tempfile.gettempdir()])}
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
