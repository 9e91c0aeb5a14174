"""One resolver for every model route (issue 27): ids, ``NAME``, ``NAME@ALIAS``, ``NAME/versions/N``.

Every ``/v1/models/{ref}`` route (get, predict, predict/npy, certify, activations, download zip
and ONNX) and ``/v2`` infer reach the same model for the same reference; one that resolves to
nothing is a 404 problem naming it on each of them; a hostile one is refused before the
registry is queried (the SQL the app sends is watched). Predict answers name the model and
registry version that answered, and the models list shows each model's registry entries with
a number of queries that does not grow with the page.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import event

from lipspline_platform.db.engine import get_engine
from tests.routes.helpers import Service, problem

NAME = "circle"
ROWS = [[0.1, -0.2], [0.3, 0.05]]
NPY = {"content-type": "application/x-npy"}


def npy(rows: list[list[float]]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows), allow_pickle=False)
    return buffer.getvalue()


def registered(svc: Service) -> dict[str, str]:
    """``circle`` with versions 1 and 2 (two models), ``production`` -> 1; the two model ids."""
    first, second = svc.trained_model()["model_id"], svc.trained_model()["model_id"]
    assert svc.client.post("/v1/registered-models", json={"name": NAME}).status_code == 201
    for model_id in (first, second):
        response = svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": model_id})
        assert response.status_code == 201, response.text
    assert svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 1}).is_success
    return {"first": first, "second": second}


def served_by(client: TestClient, reference: str) -> dict[str, object]:
    """What each model route says about ``reference``: which model answered, through which route."""
    seen: dict[str, object] = {}
    got = client.get(f"/v1/models/{reference}")
    assert got.status_code == 200, (reference, got.text)
    seen["get"] = got.json()["id"]
    predicted = client.post(f"/v1/models/{reference}/predict", json={"inputs": ROWS})
    assert predicted.status_code == 200, (reference, predicted.text)
    body = predicted.json()
    seen["predict"] = body["model_id"]
    seen["predict.header"] = predicted.headers["x-lipspline-model-id"]
    seen["predict.outputs"] = body["outputs"]
    binary = client.post(f"/v1/models/{reference}/predict/npy", content=npy(ROWS), headers=NPY)
    assert binary.status_code == 200, (reference, binary.text)
    seen["npy"] = binary.headers["x-lipspline-model-id"]
    seen["npy.records"] = np.load(io.BytesIO(binary.content))["output"].tolist()
    certified = client.post(f"/v1/models/{reference}/certify", json={"inputs": ROWS[:1], "epsilon": 0.1})
    assert certified.status_code == 200, (reference, certified.text)
    seen["certify"] = certified.json()["lipschitz"]["certified"]
    seen["activations"] = client.get(f"/v1/models/{reference}/activations").json()["model_id"]
    for download_format in ("zip", "onnx"):
        download = client.get(f"/v1/models/{reference}/download", params={"format": download_format})
        assert download.status_code == 200, (reference, download_format, download.text[:300])
        disposition = download.headers["content-disposition"]
        seen[download_format] = disposition.split("lipspline-model-")[1].split(".")[0]
    return seen


def expected_for(svc: Service, model_id: str) -> dict[str, object]:
    by_id = served_by(svc.client, model_id)
    assert {by_id[k] for k in ("get", "predict", "predict.header", "npy", "activations", "zip", "onnx")} == {model_id}
    return by_id


def test_every_model_route_resolves_every_kind_of_reference(svc: Service) -> None:
    ids = registered(svc)
    first, second = expected_for(svc, ids["first"]), expected_for(svc, ids["second"])
    for reference, expected in ((NAME, first), (f"{NAME}@production", first), (f"{NAME}/versions/1", first),
                                (f"{NAME}/versions/2", second), (f"{NAME}%2Fversions%2F2", second)):
        assert served_by(svc.client, reference) == expected, reference
    # a bare name follows production; without it, the latest version (the /v2 rule)
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 2})
    assert served_by(svc.client, NAME)["get"] == ids["second"]
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 1})
    assert served_by(svc.client, NAME)["get"] == ids["first"]
    assert svc.client.delete(f"/v1/registered-models/{NAME}/aliases/production").status_code == 204
    assert served_by(svc.client, NAME) == second
    # /v2 resolves through the same function: the same model for the same reference
    for reference, model_id in ((NAME, ids["second"]), (f"{NAME}/versions/1", ids["first"]),
                                (ids["first"], ids["first"])):
        answer = svc.client.post(
            f"/v2/models/{reference}/infer",
            json={"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": sum(ROWS, [])}]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["parameters"]["model_id"] == model_id == answer.headers["x-lipspline-model-id"]


#: (method, route suffix, JSON body or raw bytes) of every /v1 model route
ROUTES = (("GET", "", None), ("POST", "/predict", {"inputs": [[0.0, 0.0]]}), ("POST", "/predict/npy", b""),
          ("POST", "/certify", {}), ("GET", "/activations", None), ("GET", "/download", None),
          ("GET", "/download?format=onnx", None))


def request(client: TestClient, method: str, reference: str, suffix: str, body: object) -> object:
    if isinstance(body, bytes):
        return client.request(method, f"/v1/models/{reference}{suffix}", content=npy([[0.0, 0.0]]), headers=NPY)
    return client.request(method, f"/v1/models/{reference}{suffix}", json=body)


@contextmanager
def statements(svc: Service) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs."""
    sent: list[str] = []
    engine = get_engine(svc.database_url)

    def record(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_unresolvable_references_are_404_problems_naming_them_on_every_route(svc: Service) -> None:
    ids = registered(svc)
    svc.other.post("/v1/registered-models", json={"name": "theirs"})
    unknown_id = "0" * 32
    for reference in (unknown_id, "nope", "nope@production", f"{NAME}@staging", f"{NAME}/versions/9", "theirs",
                      f"{NAME}/versions/x", f"{NAME}@production@x", "a/b", f"{ids['first']}@production"):
        for method, suffix, body in ROUTES:
            response = request(svc.client, method, reference, suffix, body)
            assert reference in problem(response, 404, "not-found")["detail"], (reference, suffix)
    # another tenant sees none of this tenant's names, aliases, versions or ids
    for reference in (NAME, f"{NAME}@production", f"{NAME}/versions/1", ids["first"]):
        for method, suffix, body in ROUTES:
            problem(request(svc.other, method, reference, suffix, body), 404, "not-found")
    problem(svc.anon.get(f"/v1/models/{NAME}"), 401)


def test_hostile_references_are_refused_before_the_registry_is_read(svc: Service) -> None:
    registered(svc)
    hostile = ("x" * 5000, "a'b--", "%27%20OR%201%3D1", "%C3%A9t%C3%A9", f"{NAME}@{'a' * 65}",
               f"{NAME}@1prod", f"{NAME}/versions/{'9' * 12}", f"{'n' * 101}@production")
    for reference in hostile:
        for method, suffix, body in ROUTES:
            with statements(svc) as sent:
                response = request(svc.client, method, reference, suffix, body)
            assert response.status_code == 404, (reference, suffix, response.status_code, response.text[:200])
            assert response.headers["content-type"].startswith("application/problem+json")
            assert not [s for s in sent if "registered_models" in s or "model_versions" in s], (reference, suffix)
    # /v2 too: a hostile name, or a version that cannot be one, behind a valid name
    tensor = {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [0.0, 0.0]}]}
    for path in ("a'b--", "%C3%A9t%C3%A9", f"{NAME}@1prod", f"{NAME}/versions/x1", f"{NAME}/versions/{'9' * 12}"):
        with statements(svc) as sent:
            response = svc.client.post(f"/v2/models/{path}/infer", json=tensor)
        assert response.status_code == 404, (path, response.text)
        assert not [s for s in sent if "registered_models" in s or "model_versions" in s], path
    # the watch sees the registry being read for a reference that could name something
    with statements(svc) as sent:
        problem(svc.client.get("/v1/models/nope"), 404)
    assert any("registered_models" in s for s in sent)


def test_predict_answers_name_the_model_and_version_that_answered(svc: Service) -> None:
    ids = registered(svc)
    by_alias = svc.client.post(f"/v1/models/{NAME}@production/predict", json={"inputs": ROWS})
    by_id = svc.client.post(f"/v1/models/{ids['first']}/predict", json={"inputs": ROWS})
    alias_body, id_body = by_alias.json(), by_id.json()
    assert (alias_body["model_id"], alias_body["registered_name"], alias_body["version"]) == (ids["first"], NAME, 1)
    assert (id_body["model_id"], id_body["registered_name"], id_body["version"]) == (ids["first"], None, None)
    served = ("model_id", "registered_name", "version")
    assert {k: v for k, v in alias_body.items() if k not in served} == {k: v for k, v in id_body.items()
                                                                      if k not in served}
    assert (by_alias.headers["x-lipspline-model-id"], by_alias.headers["x-lipspline-model-name"],
            by_alias.headers["x-lipspline-model-version"]) == (ids["first"], NAME, "1")
    assert by_id.headers["x-lipspline-model-id"] == ids["first"]
    assert "x-lipspline-model-name" not in by_id.headers and "x-lipspline-model-version" not in by_id.headers

    # the alias moves: the next answer says so, with no restart
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/production", json={"version": 2})
    moved = svc.client.post(f"/v1/models/{NAME}@production/predict", json={"inputs": ROWS})
    assert (moved.json()["model_id"], moved.json()["version"]) == (ids["second"], 2)
    assert moved.headers["x-lipspline-model-version"] == "2"

    binary = svc.client.post(f"/v1/models/{NAME}/versions/1/predict/npy", content=npy(ROWS), headers=NPY)
    assert binary.status_code == 200 and binary.headers["content-type"] == "application/x-npy"
    assert (binary.headers["x-lipspline-model-id"], binary.headers["x-lipspline-model-name"],
            binary.headers["x-lipspline-model-version"]) == (ids["first"], NAME, "1")
    binary_by_id = svc.client.post(f"/v1/models/{ids['second']}/predict/npy", content=npy(ROWS), headers=NPY)
    assert binary_by_id.headers["x-lipspline-model-id"] == ids["second"]
    assert "x-lipspline-model-name" not in binary_by_id.headers

    tensor = {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": sum(ROWS, [])}]}
    oip = svc.client.post(f"/v2/models/{NAME}/infer", json=tensor)  # production -> 2 now
    answer = oip.json()
    assert (answer["model_name"], answer["model_version"]) == (NAME, "2")
    assert (answer["parameters"]["model_id"], answer["parameters"]["registered_name"],
            answer["parameters"]["version"]) == (ids["second"], NAME, 2)
    assert (oip.headers["x-lipspline-model-id"], oip.headers["x-lipspline-model-name"],
            oip.headers["x-lipspline-model-version"]) == (ids["second"], NAME, "2")
    oip_by_id = svc.client.post(f"/v2/models/{ids['first']}/infer", json=tensor)
    by_id_parameters = oip_by_id.json()["parameters"]
    assert by_id_parameters["model_id"] == ids["first"] and oip_by_id.json()["model_version"] == ""
    assert "registered_name" not in by_id_parameters and "version" not in by_id_parameters  # no null values
    assert "x-lipspline-model-name" not in oip_by_id.headers


def test_the_models_list_shows_registry_entries_with_bounded_queries(svc: Service) -> None:
    ids = registered(svc)
    svc.client.put(f"/v1/registered-models/{NAME}/aliases/staging", json={"version": 1})
    svc.client.post("/v1/registered-models", json={"name": "disc"})
    svc.client.post("/v1/registered-models/disc/versions", json={"model_id": ids["first"]})
    plain = svc.trained_model()["model_id"]
    listed = {m["id"]: m["registrations"] for m in svc.client.get("/v1/models").json()["items"]}
    assert listed == {
        ids["first"]: [{"name": NAME, "version": 1, "aliases": ["production", "staging"],
                        "reference": f"{NAME}/versions/1"},
                       {"name": "disc", "version": 1, "aliases": [], "reference": "disc/versions/1"}],
        ids["second"]: [{"name": NAME, "version": 2, "aliases": [], "reference": f"{NAME}/versions/2"}],
        plain: [],
    }
    assert svc.client.get(f"/v1/models/{NAME}@staging").json()["registrations"] == listed[ids["first"]]
    # every listed reference is one the model routes accept, and reaches that model
    for model_id, entries in listed.items():
        for entry in entries:
            assert svc.client.get(f"/v1/models/{entry['reference']}").json()["id"] == model_id

    def selects(limit: int) -> int:
        with statements(svc) as sent:
            response = svc.client.get("/v1/models", params={"limit": limit})
        assert len(response.json()["items"]) == limit
        # the model and registry tables' reads (a key's own check may come and go with its cache's age)
        tables = ("FROM models", "model_versions", "model_aliases", "registered_models")
        return len([s for s in sent if s.lstrip().upper().startswith("SELECT") and any(t in s for t in tables)])

    # a page of one model and a page of five cost the same number of queries (none per row)
    for _ in range(2):
        model_id = svc.trained_model()["model_id"]
        svc.client.post(f"/v1/registered-models/{NAME}/versions", json={"model_id": model_id})
    assert selects(1) == selects(3) == selects(5) == 3  # the page, its versions, their aliases
