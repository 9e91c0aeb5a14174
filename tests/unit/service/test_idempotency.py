"""service/http/idempotency.py on a migrated SQLite database: claim, replay, 422 on reuse with another
request, 409 while in flight, takeover of a stale claim, release on failure, scope per tenant and route."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.responses import JSONResponse

from api_schemas.timestamps import utcnow
from lipspline_platform.db.engine import dispose_all, session_scope
from lipspline_platform.db.migrate import upgrade
from lipspline_platform.db.tables import DEFAULT_TENANT, IdempotencyRow, TenantRow
from service.http.idempotency import STALE_AFTER, IdempotentRequest, fingerprint
from service.http.problems import ProblemError

ROUTE = "POST /v1/jobs"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idempotency") / "migrated.sqlite3"
    upgrade(f"sqlite:///{path.resolve()}")
    return path


@pytest.fixture
def url(tmp_path: Path, migrated: Path) -> Iterator[str]:
    """A fresh copy of the migrated database, with a second tenant."""
    shutil.copyfile(migrated, tmp_path / "db.sqlite3")
    url = f"sqlite:///{(tmp_path / 'db.sqlite3').resolve()}"
    with session_scope(url) as session:
        session.add(TenantRow(id="t2", name="second"))
    yield url
    dispose_all()


def request(url: str, key: str | None = "k1", tenant: str = DEFAULT_TENANT, route: str = ROUTE) -> IdempotentRequest:
    return IdempotentRequest(url, tenant, route, key)


def rows(url: str) -> list[tuple]:
    with session_scope(url) as session:
        query = session.query(IdempotencyRow).order_by(IdempotencyRow.tenant_id, IdempotencyRow.route)
        return [(r.tenant_id, r.route, r.key, r.state, r.response_status) for r in query]


def refused(idem: IdempotentRequest, sha: str) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        idem.begin(sha)
    return caught.value


# ---- fingerprint
def test_fingerprint_is_canonical_json() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) != fingerprint({"a": "1"})
    assert fingerprint([1, 2]) != fingerprint([2, 1])
    digest = fingerprint({"when": datetime(2030, 1, 1, tzinfo=UTC)})  # not JSON: written with str()
    assert len(digest) == 64 and int(digest, 16) >= 0


# ---- no key
def test_without_a_key_nothing_is_recorded(url: str) -> None:
    idem = request(url, key=None)
    assert idem.begin("sha") is None and not idem.claimed
    idem.finish(201, {"id": "x"})
    idem.release()
    response = idem.respond("sha", lambda: JSONResponse({"ok": True}, status_code=201))
    assert response.status_code == 201
    assert rows(url) == []


# ---- claim, store, replay
def test_first_request_claims_then_its_response_is_replayed(url: str) -> None:
    first = request(url)
    assert first.begin("sha-a") is None and first.claimed
    assert rows(url) == [(DEFAULT_TENANT, ROUTE, "k1", "in_flight", None)]
    first.finish(202, {"id": "job-1", "status": "queued"}, {"Location": "/v1/jobs/job-1"})
    assert rows(url) == [(DEFAULT_TENANT, ROUTE, "k1", "done", 202)]

    retry = request(url)
    replay = retry.begin("sha-a")
    assert isinstance(replay, JSONResponse) and not retry.claimed
    assert replay.status_code == 202 and json.loads(replay.body) == {"id": "job-1", "status": "queued"}
    assert replay.headers["location"] == "/v1/jobs/job-1" and replay.headers["idempotent-replayed"] == "true"
    retry.finish(500, {"overwrite": True})  # a replay never rewrites the stored response
    assert rows(url) == [(DEFAULT_TENANT, ROUTE, "k1", "done", 202)]


def test_respond_replays_without_running_the_handler_again(url: str) -> None:
    calls = []

    def produce(idem: IdempotentRequest) -> JSONResponse:
        calls.append(1)
        idem.finish(201, {"n": len(calls)})
        return JSONResponse({"n": len(calls)}, status_code=201)

    first, second = request(url), request(url)
    assert json.loads(first.respond("sha", lambda: produce(first)).body) == {"n": 1}
    assert json.loads(second.respond("sha", lambda: produce(second)).body) == {"n": 1}
    assert calls == [1]


def test_the_same_key_with_another_request_is_422(url: str) -> None:
    first = request(url)
    first.begin("sha-a")
    error = refused(request(url), "sha-b")  # while the first is in flight
    assert (error.status, error.kind) == (422, "idempotency-key-reused") and "different request" in error.detail
    first.finish(202, {})
    error = refused(request(url), "sha-b")  # and once it is done
    assert error.status == 422


def test_the_same_request_while_the_first_is_in_flight_is_409(url: str) -> None:
    request(url).begin("sha-a")
    error = refused(request(url), "sha-a")
    assert (error.status, error.kind) == (409, "idempotency-in-flight") and "still being processed" in error.detail


def test_a_stale_claim_is_taken_over(url: str) -> None:
    request(url).begin("sha-a")
    with session_scope(url) as session:
        session.get(IdempotencyRow, (DEFAULT_TENANT, ROUTE, "k1")).created_at = (
            utcnow() - STALE_AFTER - timedelta(seconds=1)
        )
    taker = request(url)
    assert taker.begin("sha-a") is None and taker.claimed
    with session_scope(url) as session:
        created = session.get(IdempotencyRow, (DEFAULT_TENANT, ROUTE, "k1")).created_at
    assert utcnow() - created.replace(tzinfo=UTC) < timedelta(minutes=1)  # the claim is fresh again
    assert refused(request(url), "sha-a").status == 409


def test_a_claim_just_inside_the_stale_window_is_still_409(url: str) -> None:
    request(url).begin("sha-a")
    with session_scope(url) as session:
        row = session.get(IdempotencyRow, (DEFAULT_TENANT, ROUTE, "k1"))
        row.created_at = utcnow() - STALE_AFTER + timedelta(seconds=30)
    assert refused(request(url), "sha-a").status == 409


# ---- failure
def test_a_failure_releases_the_key(url: str) -> None:
    idem = request(url)

    def fail() -> JSONResponse:
        raise ProblemError(422, "Bad", "config: no")

    with pytest.raises(ProblemError):
        idem.respond("sha-a", fail)
    assert rows(url) == [] and not idem.claimed
    again = request(url)
    assert again.begin("sha-b") is None and again.claimed  # the key is free, even for another body


def test_release_forgets_only_an_unfinished_claim(url: str) -> None:
    idem = request(url)
    idem.begin("sha-a")
    idem.finish(202, {"id": "x"})
    idem.release()
    assert rows(url) == [(DEFAULT_TENANT, ROUTE, "k1", "done", 202)]


def test_finish_in_the_callers_transaction_rolls_back_with_it(url: str) -> None:
    idem = request(url)
    idem.begin("sha-a")
    with pytest.raises(RuntimeError), session_scope(url) as session:
        idem.finish(202, {"id": "x"}, session=session)
        raise RuntimeError("the resource could not be stored")
    assert rows(url) == [(DEFAULT_TENANT, ROUTE, "k1", "in_flight", None)]
    with session_scope(url) as session:
        idem.finish(202, {"id": "x"}, session=session)
    assert rows(url) == [(DEFAULT_TENANT, ROUTE, "k1", "done", 202)]


# ---- scope
def test_keys_are_scoped_per_tenant_and_route(url: str) -> None:
    for tenant, route in [(DEFAULT_TENANT, ROUTE), ("t2", ROUTE), (DEFAULT_TENANT, "POST /v1/datasets")]:
        idem = request(url, tenant=tenant, route=route)
        assert idem.begin(f"sha-{tenant}-{route}") is None and idem.claimed
    assert len(rows(url)) == 3
