"""Names, tags and descriptions on datasets, jobs, models and sweeps (issue 27): set at creation,
edited with ``PATCH`` (JSON merge semantics), filtered in lists, validated with 422s naming the field.

``tests/integration/test_labels_postgres.py`` runs :func:`check_filters` on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import ResourceTagRow
from tests.routes.helpers import TINY_CONFIG, Service, problem, seed_csv, seed_dataset_body

LABELS = {"name": "disc, small net", "tags": ["team:vision", "stage=try", "v1.2"], "description": "first try\nof two"}
RESOURCES = ("datasets", "jobs", "models", "sweeps")


def sweep_body(dataset_id: str, **extra: Any) -> dict[str, Any]:
    return {"dataset_id": dataset_id, "base_config": TINY_CONFIG, "space": {"objective.lambda": [1e-6, 1e-3]},
            "budget": {"max_trials": 2, "max_concurrent": 1}, **extra}


def labels_of(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in ("name", "tags", "description")}


def world(svc: Service, client: Any = None) -> dict[str, str]:
    """One of each resource, every one labelled with LABELS at creation (the model through its job)."""
    client = client or svc.client
    dataset = client.post("/v1/datasets", json={**seed_dataset_body(LABELS["name"]), "tags": LABELS["tags"],
                                                "description": LABELS["description"]})
    assert dataset.status_code == 201, dataset.text
    dataset_id = dataset.json()["id"]
    job = client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG, **LABELS})
    assert job.status_code == 202, job.text
    model_id = svc.worker.run(job.json()["id"])
    sweep = client.post("/v1/sweeps", json=sweep_body(dataset_id, **LABELS))
    assert sweep.status_code == 202, sweep.text
    return {"datasets": dataset_id, "jobs": job.json()["id"], "models": model_id, "sweeps": sweep.json()["id"]}


def test_labels_given_at_creation_are_in_every_answer_and_the_model_gets_its_jobs(svc: Service) -> None:
    ids = world(svc)
    for resource, ident in ids.items():
        got = svc.client.get(f"/v1/{resource}/{ident}")
        assert got.status_code == 200, got.text
        assert labels_of(got.json()) == LABELS, resource
        listed = svc.client.get(f"/v1/{resource}").json()["items"]
        assert [labels_of(item) for item in listed if item["id"] == ident] == [LABELS], resource
    # the sweep's trials are plain jobs without labels; the engine's stored request has none either
    trial_job = svc.client.get(f"/v1/sweeps/{ids['sweeps']}").json()["trials"][0]["job_id"]
    assert labels_of(svc.job(trial_job)) == {"name": None, "tags": [], "description": None}
    # without labels: null, [] and null (a dataset is always called something)
    bare_dataset = svc.upload()
    bare_job = svc.submit(bare_dataset)
    assert labels_of(svc.job(bare_job)) == {"name": None, "tags": [], "description": None}
    bare_model = svc.client.get(f"/v1/models/{svc.worker.run(bare_job)}").json()
    assert labels_of(bare_model) == {"name": None, "tags": [], "description": None}
    assert labels_of(svc.client.get(f"/v1/datasets/{bare_dataset}").json()) == {
        "name": "seed", "tags": [], "description": None}


def test_a_multipart_upload_takes_tags_and_description_as_form_fields(svc: Service) -> None:
    response = svc.client.post("/v1/datasets", files={"file": ("d.csv", seed_csv())},
                               data={"target": "y", "name": "csv", "tags": ["a,b", " c ", "a"],
                                     "description": "from a file"})
    assert response.status_code == 201, response.text
    assert labels_of(response.json()) == {"name": "csv", "tags": ["a", "b", "c"], "description": "from a file"}
    bad = svc.client.post("/v1/datasets", files={"file": ("d.csv", seed_csv())}, data={"target": "y",
                                                                                       "tags": "ok,not ok"})
    problem(bad, 422, "validation-error", field="tags.1")
    long = svc.client.post("/v1/datasets", files={"file": ("d.csv", seed_csv())},
                           data={"target": "y", "description": "x" * 2001})
    problem(long, 422, "validation-error", field="description")
    assert len(svc.client.get("/v1/datasets").json()["items"]) == 1  # the refused uploads stored nothing


def test_patch_has_json_merge_semantics_on_every_resource(svc: Service) -> None:
    ids = world(svc)
    for resource, ident in ids.items():
        path = f"/v1/{resource}/{ident}"
        renamed = svc.client.patch(path, json={"name": "renamed"})
        assert renamed.status_code == 200, (resource, renamed.text)
        assert labels_of(renamed.json()) == {**LABELS, "name": "renamed"}, resource
        assert renamed.json()["id"] == ident
        retagged = svc.client.patch(path, json={"tags": ["b", "a", "b"]})
        assert labels_of(retagged.json()) == {**LABELS, "name": "renamed", "tags": ["b", "a"]}, resource
        cleared = svc.client.patch(path, json={"name": None, "description": None, "tags": None},
                                   headers={"Content-Type": "application/merge-patch+json"})
        assert cleared.status_code == 200, (resource, cleared.text)
        expected_name = "dataset" if resource == "datasets" else None  # a dataset's name goes back to the default
        assert labels_of(cleared.json()) == {"name": expected_name, "tags": [], "description": None}, resource
        assert labels_of(svc.client.get(path).json()) == labels_of(cleared.json()), resource
    # the model kept the labels it was stored with when its job was renamed, and the other way round
    svc.client.patch(f"/v1/jobs/{ids['jobs']}", json={"name": "job only"})
    svc.client.patch(f"/v1/models/{ids['models']}", json={"name": "model only"})
    assert svc.job(ids["jobs"])["name"] == "job only"
    assert svc.client.get(f"/v1/models/{ids['models']}").json()["name"] == "model only"


def test_an_empty_patch_changes_nothing(svc: Service) -> None:
    ids = world(svc)
    for resource, ident in ids.items():
        path = f"/v1/{resource}/{ident}"
        before = svc.client.get(path).json()
        after = svc.client.patch(path, json={})
        assert after.status_code == 200 and labels_of(after.json()) == labels_of(before) == LABELS, resource


def test_a_model_is_patched_through_a_registry_reference(svc: Service) -> None:
    ids = svc.trained_model()
    assert svc.client.post("/v1/registered-models", json={"name": "reg"}).status_code == 201
    assert svc.client.post("/v1/registered-models/reg/versions", json={"model_id": ids["model_id"]}).status_code == 201
    response = svc.client.patch("/v1/models/reg/versions/1", json={"tags": ["prod"]})
    assert response.status_code == 200 and response.json()["id"] == ids["model_id"], response.text
    assert svc.client.get(f"/v1/models/{ids['model_id']}").json()["tags"] == ["prod"]


def check_filters(svc: Service) -> None:
    """``?name=`` and ``?tag=`` (repeated: all of them) on every list, the tag index following every change."""
    dataset_id = svc.upload()
    made: dict[str, dict[str, str]] = {resource: {} for resource in RESOURCES}
    for key, name, tags in (("ab", "alpha", ["a", "b"]), ("a", "alpha", ["a"]), ("bc", "beta", ["b", "c"])):
        dataset = svc.client.post("/v1/datasets", json={**seed_dataset_body(name), "tags": tags})
        made["datasets"][key] = dataset.json()["id"]
        job = svc.client.post("/v1/jobs", json={"dataset_id": dataset_id, "config": TINY_CONFIG, "name": name,
                                                "tags": tags})
        made["jobs"][key] = job.json()["id"]
        made["models"][key] = svc.worker.run(job.json()["id"])
        sweep = svc.client.post("/v1/sweeps", json=sweep_body(dataset_id, name=name, tags=tags))
        made["sweeps"][key] = sweep.json()["id"]
    # another tenant's resources with the same labels are never listed
    foreign_dataset = svc.upload(client=svc.other)
    foreign_job = svc.other.post("/v1/jobs", json={"dataset_id": foreign_dataset, "config": TINY_CONFIG,
                                                   "name": "alpha", "tags": ["a", "b"]})
    assert foreign_job.status_code == 202, foreign_job.text
    svc.worker.run(foreign_job.json()["id"])
    assert svc.other.post("/v1/sweeps", json=sweep_body(foreign_dataset, name="alpha", tags=["a"])).status_code == 202

    def listed(resource: str, **params: Any) -> set[str]:
        response = svc.client.get(f"/v1/{resource}", params={"limit": 100, **params})
        assert response.status_code == 200, (resource, params, response.text)
        return {item["id"] for item in response.json()["items"]}

    for resource in RESOURCES:
        ids = made[resource]
        assert listed(resource, tag="a") == {ids["ab"], ids["a"]}, resource
        assert listed(resource, tag=["a", "b"]) == {ids["ab"]}, resource  # every tag given must be present
        assert listed(resource, tag=["b", "c"]) == {ids["bc"]}, resource
        assert listed(resource, tag="zzz") == set(), resource
        assert listed(resource, name="alpha") == {ids["ab"], ids["a"]}, resource
        assert listed(resource, name="alpha", tag="b") == {ids["ab"]}, resource
        assert listed(resource, name="ALPHA") == set(), resource  # exact, case included
        # the index follows a retag: the old tag no longer matches, the new one does
        patched = svc.client.patch(f"/v1/{resource}/{ids['ab']}", json={"tags": ["c"]})
        assert patched.status_code == 200, patched.text
        assert listed(resource, tag="a") == {ids["a"]}, resource
        assert listed(resource, tag="c") == {ids["ab"], ids["bc"]}, resource
        # a page at a time, filtered
        first = svc.client.get(f"/v1/{resource}", params={"tag": "c", "limit": 1}).json()
        assert len(first["items"]) == 1 and first["next_cursor"], resource
        second = svc.client.get(f"/v1/{resource}", params={"tag": "c", "limit": 1, "cursor": first["next_cursor"]})
        assert {first["items"][0]["id"], second.json()["items"][0]["id"]} == {ids["ab"], ids["bc"]}, resource
    # a deleted dataset's index rows go with it
    assert svc.client.delete(f"/v1/datasets/{made['datasets']['bc']}").status_code == 204
    assert listed("datasets", tag="b") == set()
    with session_scope(svc.database_url) as session:
        count = select(func.count()).select_from(ResourceTagRow).where(
            ResourceTagRow.resource_id == made["datasets"]["bc"])
        assert session.scalar(count) == 0


def test_lists_filter_by_name_and_every_tag_given(svc: Service) -> None:
    check_filters(svc)


BAD_VALUES = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "line\nbreak"}, "name"),
    ({"name": "bell\x07"}, "name"),
    ({"name": "nul\x00"}, "name"),
    ({"name": 5}, "name"),
    ({"tags": ["ok", "not ok"]}, "tags.1"),
    ({"tags": [""]}, "tags.0"),
    ({"tags": ["x" * 51]}, "tags.0"),
    ({"tags": ["comma,separated"]}, "tags.0"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ({"tags": "a"}, "tags"),
    ({"description": "x" * 2001}, "description"),
    ({"description": "escape\x1b[31m"}, "description"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES)
def test_bad_labels_are_422_naming_the_field_on_patch_and_creation(svc: Service, values: dict, field: str) -> None:
    ids = svc.trained_model()
    sweep = svc.client.post("/v1/sweeps", json=sweep_body(ids["dataset_id"]))
    ids = {"datasets": ids["dataset_id"], "jobs": ids["job_id"], "models": ids["model_id"],
           "sweeps": sweep.json()["id"]}
    for resource, ident in ids.items():
        before = svc.client.get(f"/v1/{resource}/{ident}").json()
        problem(svc.client.patch(f"/v1/{resource}/{ident}", json=values), 422, "validation-error", field=field)
        assert labels_of(svc.client.get(f"/v1/{resource}/{ident}").json()) == labels_of(before), resource
    jobs_before = len(svc.client.get("/v1/jobs").json()["items"])
    job = svc.client.post("/v1/jobs", json={"dataset_id": ids["datasets"], "config": TINY_CONFIG, **values})
    problem(job, 422, "validation-error", field=field)
    problem(svc.client.post("/v1/sweeps", json=sweep_body(ids["datasets"], **values)), 422, field=field)
    assert len(svc.client.get("/v1/jobs").json()["items"]) == jobs_before
    if "name" not in values:  # a dataset upload's name keeps its own rules (up to 200 characters)
        problem(svc.client.post("/v1/datasets", json={**seed_dataset_body(), **values}), 422, field=field)


def test_the_edges_of_the_rules_are_taken(svc: Service) -> None:
    job_id = svc.submit(svc.upload())
    edges = {"name": "  é ünïcode 名前 " + "x" * 80, "tags": [f"t.{i}:a/b=c-d_e" for i in range(20)],
             "description": "x" * 1990 + "\n\ttabbed"}
    response = svc.client.patch(f"/v1/jobs/{job_id}", json=edges)
    assert response.status_code == 200, response.text
    assert labels_of(response.json()) == {**edges, "name": edges["name"].strip()}
    long_tag = "a" * 50
    assert svc.client.patch(f"/v1/jobs/{job_id}", json={"tags": [long_tag]}).json()["tags"] == [long_tag]


@pytest.mark.parametrize(("params", "field"), [
    ({"tag": "not ok"}, "query.tag.0"),
    ({"tag": ["ok", ""]}, "query.tag.1"),
    ({"tag": "x" * 51}, "query.tag.0"),
    ({"tag": [f"t{i}" for i in range(21)]}, "query.tag"),
    ({"name": ""}, "query.name"),
    ({"name": "x" * 101}, "query.name"),
    ({"tag": "a\x00"}, "query.tag"),
    ({"name": "a\x00"}, "query.name"),
])
def test_bad_filters_are_422_naming_the_parameter(svc: Service, params: dict, field: str) -> None:
    for resource in ("jobs", "models", "sweeps", "datasets"):
        if resource == "datasets" and params.get("name") == "x" * 101:
            continue  # a dataset may be called up to 200 characters: such a filter is valid there
        problem(svc.client.get(f"/v1/{resource}", params=params), 422, "validation-error", field=field)


def test_patch_is_owner_only_and_needs_the_train_scope(svc: Service) -> None:
    ids = world(svc)
    reader = svc.open_client(svc.scoped_key("default", "read", "predict"))
    for resource, ident in ids.items():
        path = f"/v1/{resource}/{ident}"
        problem(svc.other.patch(path, json={"name": "stolen"}), 404, "not-found")
        problem(reader.patch(path, json={"name": "stolen"}), 403, "insufficient-scope", required_scope="train")
        assert labels_of(svc.client.get(path).json()) == LABELS, resource
        problem(svc.client.patch(f"/v1/{resource}/{'0' * 32}", json={"name": "x"}), 404, "not-found")
    # the other tenant cannot find them by their labels either
    for resource in RESOURCES:
        assert svc.other.get(f"/v1/{resource}", params={"tag": "team:vision"}).json()["items"] == []


def test_the_openapi_document_declares_the_patch_routes_and_filters(svc: Service) -> None:
    spec = svc.anon.get("/openapi.json").json()
    for resource, parameter in (("datasets", "dataset_id"), ("jobs", "job_id"), ("models", "model_id"),
                                ("sweeps", "sweep_id")):
        operation = spec["paths"][f"/v1/{resource}/{{{parameter}}}"]["patch"]
        assert operation["x-required-scope"] == "train"
        assert {"404", "422", "200"} <= set(operation["responses"])
        names = {p["name"] for p in spec["paths"][f"/v1/{resource}"]["get"]["parameters"]}
        assert {"name", "tag"} <= names, resource
