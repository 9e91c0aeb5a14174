"""Lists: cursor pagination, filters, unknown query parameters and trailing slashes (issue 17, part 5).

The 250-record walk stores most datasets with one shared ``created_at`` (as a bulk import or a
coarse clock would), so only the id tie-break keeps the order total: a keyset on the timestamp
alone would repeat or skip records at every page boundary there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.ids import new_id
from lipspline_platform.db.tables import DEFAULT_TENANT, DatasetRow
from service.http.pagination import DEFAULT_LIMIT, MAX_LIMIT, encode_cursor
from tests.routes.helpers import Service, problem, seed_dataset_body

RECORDS = 250
SHARED_TIME = datetime(2020, 1, 1, 12, 0, 0, tzinfo=UTC)


def _store_datasets(svc: Service, count: int, created_at: datetime, name: str = "bulk") -> list[str]:
    """``count`` copies of an uploaded dataset's row with one ``created_at``: the ids."""
    template_id = svc.upload(seed_dataset_body(name))
    ids = []
    with session_scope(svc.database_url) as session:
        template = session.get(DatasetRow, template_id)
        for _ in range(count):
            row = DatasetRow(id=new_id(), tenant_id=DEFAULT_TENANT, name=name, task=template.task,
                             n_samples=template.n_samples, n_features=template.n_features, classes=template.classes,
                             feature_names=template.feature_names, source_format="json", sha256=template.sha256,
                             content=template.content, created_at=created_at)
            session.add(row)
            ids.append(row.id)
    return ids


def _walk(svc: Service, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following ``next_cursor``; checks the Link header against it on the way."""
    items, cursor, pages = [], None, 0
    while True:
        response = svc.client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            assert "link" not in response.headers
            return items
        link = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers["link"])
        assert link, response.headers["link"]
        follow = svc.client.get(link.group(1))  # the Link URL alone gives the same next page
        assert follow.status_code == 200 and follow.json()["items"], follow.text
        assert pages < 100, "pagination does not end"


def test_250_records_paged_with_no_duplicate_and_no_gap(svc: Service) -> None:
    _store_datasets(svc, 200, SHARED_TIME)  # 200 share one timestamp (+ their template, uploaded now)
    _store_datasets(svc, RECORDS - 202, SHARED_TIME - timedelta(days=1), name="older")
    with session_scope(svc.database_url) as session:
        everything = {row.id for row in session.query(DatasetRow).filter_by(tenant_id=DEFAULT_TENANT)}
    assert len(everything) == RECORDS  # the two uploaded templates included

    paged = _walk(svc, "/v1/datasets", limit=7)
    seen = [item["id"] for item in paged]
    assert len(seen) == len(set(seen)), "a record was listed twice"
    assert set(seen) == everything, "a record was never listed"
    order = [(item["created_at"], item["id"]) for item in paged]
    assert order == sorted(order, reverse=True), "not newest first by (created_at, id)"

    first = svc.client.get("/v1/datasets").json()
    assert len(first["items"]) == DEFAULT_LIMIT and first["next_cursor"]
    assert len(svc.client.get("/v1/datasets", params={"limit": MAX_LIMIT}).json()["items"]) == MAX_LIMIT
    problem(svc.client.get("/v1/datasets", params={"limit": MAX_LIMIT + 1}), 422, field="query.limit")
    problem(svc.client.get("/v1/datasets", params={"limit": 0}), 422, field="query.limit")


def test_a_record_added_while_paging_does_not_shift_the_pages(svc: Service) -> None:
    _store_datasets(svc, 30, SHARED_TIME)
    first = svc.client.get("/v1/datasets", params={"limit": 10}).json()
    svc.upload(seed_dataset_body("late"))  # newer than everything: it belongs before page 1, not in page 2
    rest = _walk(svc, "/v1/datasets", limit=10, cursor=first["next_cursor"])
    ids = [item["id"] for item in first["items"] + rest]
    assert len(ids) == len(set(ids)) == 31
    assert "late" not in {item["name"] for item in rest}


def test_filters_by_name_task_and_creation_time(svc: Service) -> None:
    old = _store_datasets(svc, 3, SHARED_TIME - timedelta(days=10), name="old")
    new = _store_datasets(svc, 2, SHARED_TIME, name="new")
    named = _walk(svc, "/v1/datasets", name="old")
    assert {item["id"] for item in named} == set(old) | {named[0]["id"]} and len(named) == 4
    window = {"created_after": (SHARED_TIME - timedelta(days=1)).isoformat(),
              "created_before": (SHARED_TIME + timedelta(seconds=1)).isoformat()}
    assert {item["id"] for item in _walk(svc, "/v1/datasets", **window)} == set(new)
    assert _walk(svc, "/v1/datasets", task="regression") == []
    assert len(_walk(svc, "/v1/datasets", task="classification")) == 7
    # filters are kept in the Link header of the next page
    response = svc.client.get("/v1/datasets", params={"name": "old", "limit": 2})
    assert "name=old" in response.headers["link"] and "limit=2" in response.headers["link"]
    problem(svc.client.get("/v1/datasets", params={"task": "ranking"}), 422, field="query.task")
    problem(svc.client.get("/v1/datasets", params={"created_after": "yesterday"}), 422, field="query.created_after")


def test_jobs_models_webhooks_and_registry_lists_page_and_filter(svc: Service) -> None:
    first, second = svc.trained_model(), svc.trained_model(seed_dataset_body("second"))
    queued = svc.submit(first["dataset_id"])
    assert [j["id"] for j in _walk(svc, "/v1/jobs", limit=1)] == [queued, second["job_id"], first["job_id"]]
    assert [j["id"] for j in _walk(svc, "/v1/jobs", status="queued")] == [queued]
    assert {j["id"] for j in _walk(svc, "/v1/jobs", dataset_id=first["dataset_id"])} == {queued, first["job_id"]}
    assert [m["id"] for m in _walk(svc, "/v1/models", limit=1)] == [second["model_id"], first["model_id"]]
    assert [m["id"] for m in _walk(svc, "/v1/models", dataset_id=second["dataset_id"])] == [second["model_id"]]
    assert [m["id"] for m in _walk(svc, "/v1/models", job_id=first["job_id"])] == [first["model_id"]]

    for name in ("alpha", "beta"):
        assert svc.client.post("/v1/registered-models", json={"name": name}).status_code == 201
        for model in (first, second):
            svc.client.post(f"/v1/registered-models/{name}/versions", json={"model_id": model["model_id"]})
    assert [r["name"] for r in _walk(svc, "/v1/registered-models", limit=1)] == ["beta", "alpha"]
    assert [r["name"] for r in _walk(svc, "/v1/registered-models", name="alpha")] == ["alpha"]
    assert [v["version"] for v in _walk(svc, "/v1/registered-models/alpha/versions", limit=1)] == [2, 1]
    # another tenant's records never appear, whatever the filters
    assert svc.other.get("/v1/jobs", params={"dataset_id": first["dataset_id"]}).json()["items"] == []


def test_webhook_endpoints_page(make_service: Callable[..., Service]) -> None:
    svc = make_service(webhook_allow_private=True)  # no name resolution here: loopback receivers
    hooks = [svc.client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/hook/{i}"}).json()["id"]
             for i in range(3)]
    assert [h["id"] for h in _walk(svc, "/v1/webhooks", limit=2)] == hooks[::-1]


def test_a_cursor_that_is_not_ours_is_a_400(svc: Service) -> None:
    for cursor in ("not-a-cursor", "e30", encode_cursor(SHARED_TIME, "x")[:-3] + "!!!", "W10", "WzEsMl0"):
        problem(svc.client.get("/v1/jobs", params={"cursor": cursor}), 400, "bad-cursor", field="cursor")
    # a well-formed cursor made by the service itself is accepted (past the last record: an empty page)
    empty = svc.client.get("/v1/jobs", params={"cursor": encode_cursor(datetime(2000, 1, 1, tzinfo=UTC), "0")})
    assert empty.status_code == 200 and empty.json() == {"items": [], "next_cursor": None}


def test_unknown_query_parameters_are_a_400_naming_them(svc: Service) -> None:
    body = problem(svc.client.get("/v1/jobs", params={"stauts": "failed", "limit": 5}), 400,
                   "unknown-query-parameter", field="stauts")
    assert "stauts" in body["detail"] and "status" in body["detail"]  # names it, and what is accepted
    both = problem(svc.client.get("/v1/datasets?a=1&b=2"), 400, "unknown-query-parameter")
    assert [e["field"] for e in both["errors"]] == ["a", "b"]
    ids = svc.trained_model()
    problem(svc.client.get(f"/v1/models/{ids['model_id']}/download", params={"fromat": "onnx"}), 400,
            "unknown-query-parameter", field="fromat")
    problem(svc.client.post(f"/v1/models/{ids['model_id']}/predict?eps=1", json={"inputs": [[0.1, 0.2]]}), 400,
            "unknown-query-parameter", field="eps")
    # declared parameters, aliases included, still pass
    assert svc.client.get(f"/v1/models/{ids['model_id']}/download", params={"format": "onnx"}).status_code == 200
    assert svc.client.get("/v1/jobs", params={"status": "succeeded", "limit": 5}).status_code == 200
    # outside /v1 nothing is checked (probes, the dashboard)
    assert svc.anon.get("/healthz?verbose=1").status_code == 200


def test_trailing_slashes_reach_the_route_without_a_redirect(svc: Service) -> None:
    created = svc.client.post("/v1/datasets/", json=seed_dataset_body("slash"), follow_redirects=False)
    assert created.status_code == 201, created.text
    dataset_id = created.json()["id"]
    listed = svc.client.get("/v1/datasets/", follow_redirects=False)
    assert listed.status_code == 200 and dataset_id in {d["id"] for d in listed.json()["items"]}
    got = svc.client.get(f"/v1/datasets/{dataset_id}/", follow_redirects=False)
    assert got.status_code == 200 and got.json()["id"] == dataset_id
    submitted = svc.client.post("/v1/jobs/", json={"dataset_id": dataset_id}, follow_redirects=False)
    assert submitted.status_code == 202, submitted.text
    missing = svc.client.get("/v1/datasets/nope/", follow_redirects=False)
    assert missing.status_code == 404 and missing.json()["instance"] == "/v1/datasets/nope"


def test_the_sdk_reads_every_page_of_a_list(svc: Service) -> None:
    from lipspline_client import Client

    _store_datasets(svc, RECORDS - 1, SHARED_TIME)  # more than the SDK's page of 200: two requests
    client = Client("http://testserver", http=svc.client)
    listed = client.datasets.list()
    assert len({d.id for d in listed.items}) == len(listed.items) == RECORDS and listed.next_cursor is None
    assert len(client.datasets.list(name="bulk").items) == RECORDS
    assert client.datasets.list(task="regression").items == []
