"""A database outage: 503 problem+json with ``Retry-After`` (never a 500), keys verified before the
outage keep working where no database is needed (predict on a loaded model), and everything works
again once the database is back. The outage is real: the SQLite file is put aside and a folder
stands in its place, so every new connection fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lipspline_platform.db.engine import dispose_all
from tests.routes.helpers import Service, problem


@contextmanager
def database_down(svc: Service) -> Iterator[None]:
    path = Path(svc.database_url.removeprefix("sqlite:///"))
    aside = path.with_name(path.name + ".aside")
    dispose_all()  # pooled connections would still reach the open file
    path.rename(aside)
    path.mkdir()
    try:
        yield
    finally:
        dispose_all()
        path.rmdir()
        aside.rename(path)


def test_database_outage(make_service: Callable[..., Service]) -> None:
    svc = make_service(auth_cache_ttl_s=0)  # every request asks the database about its key
    ids = svc.trained_model()
    predict = f"/v1/models/{ids['model_id']}/predict"
    assert svc.client.post(predict, json={"inputs": [[0.1, 0.2]]}).status_code == 200  # key verified, model loaded
    unused_key = svc.open_client(svc.create_key("default"))  # valid, but never seen by the API

    with database_down(svc):
        for method, path in [("GET", "/v1/datasets"), ("GET", f"/v1/jobs/{ids['job_id']}"),
                             ("GET", f"/v1/models/{ids['model_id']}")]:
            response = svc.client.request(method, path)
            body = problem(response, 503, "database-unavailable")
            assert response.headers["retry-after"] == "2" and "retry" in body["detail"]
        # a key verified before the outage still predicts with the loaded model
        during = svc.client.post(predict, json={"inputs": [[0.1, 0.2]]})
        assert during.status_code == 200, during.text
        # a key never verified cannot be: 503, not 401
        problem(unused_key.get("/v1/models"), 503, "database-unavailable")
        ready = problem(svc.anon.get("/readyz"), 503, "not-ready")
        assert ready["checks"]["database"] is False
        assert svc.anon.get("/healthz").status_code == 200

    assert svc.client.get("/v1/datasets").status_code == 200
    assert unused_key.get("/v1/models").status_code == 200
    assert svc.anon.get("/readyz").status_code == 200
    assert svc.client.post(predict, json={"inputs": [[0.1, 0.2]]}).json() == during.json()
