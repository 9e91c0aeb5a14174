"""``POST /v1/models/{id}/predict/npy``: binary rows in, binary records out, same numbers and checks as JSON."""

from __future__ import annotations

import io
import json

import numpy as np

from tests.routes.helpers import Service, problem

NPY = "application/x-npy"


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_binary_predict_matches_the_json_predict(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    rows = np.random.default_rng(0).uniform(-1, 1, size=(50, 2))
    as_json = svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows.tolist(), "epsilon": 0.1})
    assert as_json.status_code == 200, as_json.text
    binary = svc.client.post(
        f"/v1/models/{model_id}/predict/npy?epsilon=0.1", content=npy(rows), headers={"Content-Type": NPY}
    )
    assert binary.status_code == 200, binary.text
    assert binary.headers["content-type"] == NPY
    records = np.load(io.BytesIO(binary.content), allow_pickle=False)
    expected = as_json.json()
    assert records["output"].tolist() == expected["outputs"]
    assert records["rounding_bound"].tolist() == expected["rounding_bound"]
    assert records["certified_radius"].tolist() == expected["certified_radius"]
    assert records["output_bound"].tolist() == expected["output_bounds"]
    classes = json.loads(binary.headers["X-Classes"])
    assert [classes[i] for i in records["label"]] == expected["predictions"]
    assert float(binary.headers["X-Lipschitz-Bound"]) == expected["lipschitz_bound"]
    assert binary.headers["X-Arithmetic"] == expected["arithmetic"] == "float64"
    # float32 and integer arrays are accepted and read as the same float64 values
    as_float32 = svc.client.post(
        f"/v1/models/{model_id}/predict/npy", content=npy(rows.astype(np.float32)), headers={"Content-Type": NPY}
    )
    same = svc.client.post(
        f"/v1/models/{model_id}/predict", json={"inputs": rows.astype(np.float32).astype(np.float64).tolist()}
    )
    assert np.load(io.BytesIO(as_float32.content))["output"].tolist() == same.json()["outputs"]


def test_binary_predict_refuses_bad_bodies_with_the_field_at_fault(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    url = f"/v1/models/{model_id}/predict/npy"
    headers = {"Content-Type": NPY}
    cases = {
        b"not an npy file": "body",
        npy(np.zeros((3, 2, 1))): "body",
        npy(np.array(["a", "b"])): "body",
        npy(np.zeros((0, 2))): "inputs",
        npy(np.zeros((4, 3))): "inputs.0",
        npy(np.array([[0.0, 1.0], [np.nan, 2.0]])): "inputs.1",
        npy(np.array([[0.0, np.inf]])): "inputs.0",
    }
    for body, field in cases.items():
        response = svc.client.post(url, content=body, headers=headers)
        assert problem(response, 422)["errors"][0]["field"] == field, response.text
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert (
        problem(svc.client.post(url, content=pickled.getvalue(), headers=headers), 422)["errors"][0]["field"] == "body"
    )
    assert svc.client.post(url + "?epsilon=-1", content=npy(np.zeros((1, 2))), headers=headers).status_code == 422
    assert svc.other.post(url, content=npy(np.zeros((1, 2))), headers=headers).status_code == 404
    assert svc.anon.post(url, content=npy(np.zeros((1, 2))), headers=headers).status_code == 401
