"""The registry and the Open Inference Protocol against live deployments (embedded, and PostgreSQL + Redis).

Registry: register -> alias -> predict by ``name@production`` -> retrain -> move the alias ->
the next predict uses the new version, with no restart. OIP: the real ``tritonclient.http``
client gets the same outputs and bound as ``/v1/.../predict`` for the same rows, with JSON and
binary tensors, for a classifier and a regressor; malformed tensors are 400 with ``error``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.support.processes import Deployment, wait_for_job

pytestmark = pytest.mark.e2e
triton = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

#: 64 points, label 1 inside a small disc, and a smooth numeric target on the same points
INPUTS = [[(i % 7) / 7 - 0.5, (i % 5) / 5 - 0.4] for i in range(64)]
LABELS = [int(a * a + b * b < 0.1) for a, b in INPUTS]
VALUES = [round(a - 0.5 * b, 6) for a, b in INPUTS]
ROWS = np.random.default_rng(3).uniform(-0.6, 0.6, size=(40, 2))


def tiny_config(seed: int) -> dict:
    return {"architecture": {"hidden": [2], "activation": "deepspline"}, "spline": {"knots": 11, "range": 2.0},
            "training": {"epochs": 5, "batch_size": 16, "lr": 0.05, "seed": seed, "validation_split": 0.0},
            "device": "cpu"}


@pytest.fixture(scope="module")
def http(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client() as client:
        yield client


def train(http: httpx.Client, dataset_id: str, seed: int, register_as: str | None = None) -> dict:
    body = {"dataset_id": dataset_id, "config": tiny_config(seed)}
    if register_as is not None:
        body["register_as"] = register_as
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(http, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def upload(http: httpx.Client, name: str, targets: list) -> str:
    response = http.post("/v1/datasets", json={"name": name, "inputs": INPUTS, "targets": targets})
    assert response.status_code == 201, response.text
    return response.json()["id"]


#: the members of a predict answer that say which model answered (``served_by``); the rest are the numbers
SERVED_BY = ("model_id", "registered_name", "version")


def predict(http: httpx.Client, reference: str, rows: np.ndarray, **extra: object) -> dict:
    """The answer's numbers (which model gave them: :func:`served_by`)."""
    response = http.post(f"/v1/models/{reference}/predict", json={"inputs": rows.tolist(), **extra})
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json().items() if k not in SERVED_BY}


def served_by(http: httpx.Client, reference: str) -> tuple:
    """(model id, registered name, version) of the model that answers ``reference`` now, as body and headers say."""
    response = http.post(f"/v1/models/{reference}/predict", json={"inputs": ROWS.tolist()})
    assert response.status_code == 200, response.text
    body, headers = response.json(), response.headers
    said = (headers["x-lipspline-model-id"], headers.get("x-lipspline-model-name"),
            int(headers["x-lipspline-model-version"]) if "x-lipspline-model-version" in headers else None)
    assert said == tuple(body[k] for k in SERVED_BY), (said, body)
    return said


def test_alias_move_takes_effect_on_the_next_request(deployment: Deployment, http: httpx.Client) -> None:
    dataset_id = upload(http, "disc", LABELS)
    assert http.post("/v1/registered-models", json={"name": "disc"}).status_code == 201
    first = train(http, dataset_id, seed=0, register_as="disc")
    assert first["progress"]["registered_as"] == {"name": "disc", "version": 1}
    assert http.put("/v1/registered-models/disc/aliases/production", json={"version": 1}).status_code == 200
    before = predict(http, "disc@production", ROWS)
    assert before == predict(http, first["model_id"], ROWS)
    assert served_by(http, "disc@production") == (first["model_id"], "disc", 1)
    assert served_by(http, first["model_id"]) == (first["model_id"], None, None)

    second = train(http, dataset_id, seed=1, register_as="disc")  # retrain: version 2
    assert second["progress"]["registered_as"] == {"name": "disc", "version": 2}
    assert predict(http, "disc@production", ROWS) == before  # the alias has not moved yet
    assert http.put("/v1/registered-models/disc/aliases/production", json={"version": 2}).status_code == 200
    after = predict(http, "disc@production", ROWS)
    assert after == predict(http, second["model_id"], ROWS) and after["outputs"] != before["outputs"]
    assert served_by(http, "disc@production") == (second["model_id"], "disc", 2)
    assert served_by(http, "disc") == (second["model_id"], "disc", 2)  # a bare name: its production alias
    assert served_by(http, "disc%2Fversions%2F1") == (first["model_id"], "disc", 1)
    # name/versions/N, also with the slashes percent-encoded on the wire
    assert predict(http, "disc%2Fversions%2F1", ROWS) == before
    assert predict(http, "disc/versions/2", ROWS) == after
    events = http.get("/v1/registered-models/disc/alias-events").json()["items"]
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 2)]
    # refused: an alias to a missing version changes nothing
    assert http.put("/v1/registered-models/disc/aliases/production", json={"version": 9}).status_code == 404
    assert predict(http, "disc@production", ROWS) == after
    missing = http.post("/v1/models/disc@staging/predict", json={"inputs": ROWS.tolist()})
    assert missing.status_code == 404 and "disc@staging" in missing.json()["detail"]


def _client(deployment: Deployment) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=deployment.url.removeprefix("http://"), network_timeout=60.0)


def _infer(client: triton.InferenceServerClient, name: str, rows: np.ndarray, headers: dict, *, binary: bool,
           datatype: str = "FP64", outputs: tuple[str, ...] = ()) -> triton.InferResult:
    tensor = triton.InferInput("input", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows.astype(np.float32 if datatype == "FP32" else np.float64), binary_data=binary)
    requested = [triton.InferRequestedOutput(o, binary_data=binary) for o in outputs] or None
    # a copy: tritonclient writes Inference-Header-Content-Length into the dict it is given
    return client.infer(name, [tensor], outputs=requested, headers=dict(headers), parameters={"epsilon": 0.05})


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_tritonclient_gets_the_outputs_and_bound_of_v1_predict(
    deployment: Deployment, http: httpx.Client, task: str
) -> None:
    name = f"oip-{task}"
    dataset_id = upload(http, name, LABELS if task == "classification" else VALUES)
    assert http.post("/v1/registered-models", json={"name": name}).status_code == 201
    model_id = train(http, dataset_id, seed=0, register_as=name)["model_id"]
    headers = {"Authorization": f"Bearer {deployment.api_key}"}
    client = _client(deployment)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(name, headers=headers)
        assert not client.is_model_ready("no-such-model", headers=headers)
        meta = client.get_model_metadata(name, headers=headers)
        assert meta["platform"] == "lipspline" and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}]

        expected = predict(http, model_id, ROWS, epsilon=0.05)
        names = ("output", "lipschitz_bound", "rounding_bound", "output_bound")
        if task == "classification":
            names += ("label", "certified_radius")
        for binary in (False, True):
            result = _infer(client, name, ROWS, headers, binary=binary, outputs=names)
            assert result.get_response()["model_version"] == "1"
            assert result.as_numpy("output").tolist() == expected["outputs"], binary
            assert result.as_numpy("lipschitz_bound").tolist() == [expected["lipschitz_bound"]]
            assert result.as_numpy("rounding_bound").tolist() == expected["rounding_bound"]
            assert result.as_numpy("output_bound").tolist() == expected["output_bounds"]
            if task == "classification":
                assert result.as_numpy("label").tolist() == expected["predictions"]
                assert result.as_numpy("certified_radius").tolist() == expected["certified_radius"]
        # FP32 inputs: widened exactly, so they give /v1's answer for the float32 rows
        narrow = ROWS.astype(np.float32).astype(np.float64)
        result = _infer(client, name, ROWS, headers, binary=True, datatype="FP32")
        assert result.as_numpy("output").tolist() == predict(http, model_id, narrow)["outputs"]

        bad = triton.InferInput("input", [2, 3], "FP64")
        bad.set_data_from_numpy(np.zeros((2, 3)), binary_data=False)
        with pytest.raises(InferenceServerException) as refused:
            client.infer(name, [bad], headers=dict(headers))
        assert refused.value.status() == "400" and "shape" in refused.value.message()
        with pytest.raises(InferenceServerException) as unknown:
            _infer(client, "no-such-model", ROWS, headers, binary=False)
        assert unknown.value.status() == "404"
        with pytest.raises(InferenceServerException) as anonymous:
            _infer(client, name, ROWS, {}, binary=False)
        assert anonymous.value.status() == "401"
    finally:
        client.close()
