"""``/v1/models``: list, get, predict (with its certificate), certify, activations, download."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from lipspline.nn.serialization import model_from_parts
from lipspline_platform.db.engine import session_scope
from lipspline_platform.db.tables import ModelRow
from tests.routes.helpers import REGRESSION_TARGETS, TINY_CONFIG, Service, problem, seed_dataset_body, tamper_weights

X = np.random.default_rng(7).uniform(-0.6, 0.6, size=(40, 2))
MODEL_KEYS = {"id", "job_id", "dataset_id", "task", "config", "classes", "feature_names", "metrics", "lipschitz",
              "sparsity", "parameter_count", "weights_sha256", "created_at", "certified_accuracy",
              "certified_tolerance", "registrations", "name", "tags", "description"}


def get_model(svc: Service, model_id: str) -> dict:
    response = svc.client.get(f"/v1/models/{model_id}")
    assert response.status_code == 200, response.text
    return response.json()


def predict(svc: Service, model_id: str, **body: object) -> dict:
    response = svc.client.post(f"/v1/models/{model_id}/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_list_and_get(svc: Service, seeded: dict) -> None:
    items = svc.client.get("/v1/models").json()["items"]
    assert [m["id"] for m in items] == [seeded["model_id"]]
    model = get_model(svc, seeded["model_id"])
    assert set(model) == MODEL_KEYS and model == items[0]
    assert model["job_id"] == seeded["job_id"] and model["dataset_id"] == seeded["dataset_id"]
    assert model["task"] == "classification" and model["classes"] == [0, 1] and model["feature_names"] == ["x1", "x2"]
    assert model["config"]["architecture"]["hidden"] == [2] and model["config"]["spline"]["knots"] == 11
    # (2, [2], 1): 2*2+2 weights and biases, 1*2+1, and 2 splines of 11 knots
    assert model["parameter_count"] == 31
    assert model["sparsity"]["layers"][0]["neurons"] == 2
    lipschitz = model["lipschitz"]
    assert lipschitz["norm"] == "l2" and lipschitz["certified"] > 0
    assert lipschitz["certified"] == min(v for v in lipschitz["bounds"].values() if v is not None)
    assert lipschitz["certified_by"] in lipschitz["bounds"]
    assert 0 < lipschitz["best_lower"] <= lipschitz["certified"]
    # certified robust accuracy under that very bound; TINY_CONFIG has no validation split
    curve = model["certified_accuracy"]
    assert model["certified_tolerance"] is None and curve["lipschitz"] == lipschitz["certified"]
    assert curve["split"] == "training" and curve["points"] == 64 and len(curve["global"]) == len(curve["radii"])
    # the curve is served once, typed, beside the metrics (which are name -> number per split)
    assert "certified_accuracy" not in model["metrics"] and all(0 <= a <= 1 for a in curve["global"])


def test_unknown_model_is_404_on_every_model_route(svc: Service) -> None:
    for method, path, body in [
        ("GET", "/v1/models/nope", None),
        ("POST", "/v1/models/nope/predict", {"inputs": [[0.0, 0.0]]}),
        ("POST", "/v1/models/nope/certify", {"inputs": [[0.0, 0.0]]}),
        ("GET", "/v1/models/nope/activations", None),
        ("GET", "/v1/models/nope/download", None),
    ]:
        assert problem(svc.client.request(method, path, json=body), 404, "not-found")["detail"] == (
            "model 'nope' does not exist"
        )


def test_predict_outputs_bound_radius_and_rounding(svc: Service, seeded: dict) -> None:
    certified = get_model(svc, seeded["model_id"])["lipschitz"]["certified"]
    body = predict(svc, seeded["model_id"], inputs=X.tolist())
    assert body["lipschitz_bound"] == certified
    assert body["arithmetic"] == "float64" and body["epsilon"] is None
    assert body["output_bound"] is None and body["output_bounds"] is None
    outputs = np.array(body["outputs"])
    assert outputs.shape == (len(X), 1)
    assert body["predictions"] == [int(z > 0) for z in outputs[:, 0]]
    rounding = np.array(body["rounding_bound"])
    assert rounding.shape == (len(X),) and (rounding >= 0).all() and (rounding < 1e-9).all()
    radius = np.array(body["certified_radius"])
    assert (radius >= 0).all() and (radius <= np.abs(outputs[:, 0]) / certified).all()
    np.testing.assert_allclose(radius, np.abs(outputs[:, 0]) / certified, rtol=1e-6, atol=1e-12)
    # what the response promises: |g(x) - g(y)| <= L |x - y| + E(x) + E(y)
    i, j = np.triu_indices(len(X), k=1)
    moved = np.abs(outputs[i, 0] - outputs[j, 0])
    assert (moved <= certified * np.linalg.norm(X[i] - X[j], axis=1) + rounding[i] + rounding[j]).all()


def test_predict_is_the_same_for_the_same_input(svc: Service, seeded: dict) -> None:
    one = predict(svc, seeded["model_id"], inputs=X[:3].tolist())
    again = predict(svc, seeded["model_id"], inputs=X[:3].tolist())
    assert one == again


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 2.5])
def test_predict_output_bound_with_epsilon(svc: Service, seeded: dict, epsilon: float) -> None:
    body = predict(svc, seeded["model_id"], inputs=X[:5].tolist(), epsilon=epsilon)
    bound, bounds = body["lipschitz_bound"], body["output_bounds"]
    assert body["epsilon"] == epsilon and len(bounds) == 5
    assert body["output_bound"] == max(bounds)
    for per_input, rounding in zip(bounds, body["rounding_bound"], strict=True):
        # L eps (the exact map) + 2 E (rounding at both ends) + a tiny ball-slope term: never less than L eps + 2 E
        assert per_input >= bound * epsilon + 2 * rounding
        assert per_input == pytest.approx(bound * epsilon, rel=1e-6, abs=1e-12)


def test_predict_regression_has_no_radius(svc: Service) -> None:
    ids = svc.trained_model({"inputs": seed_dataset_body()["inputs"], "targets": REGRESSION_TARGETS,
                             "task": "regression"})
    model = get_model(svc, ids["model_id"])
    assert model["task"] == "regression" and model["classes"] is None
    body = predict(svc, ids["model_id"], inputs=X[:4].tolist(), epsilon=0.1)
    assert body["certified_radius"] is None
    assert body["predictions"] == pytest.approx([row[0] for row in body["outputs"]])
    assert body["output_bound"] >= body["lipschitz_bound"] * 0.1


def test_predict_refuses_rows_of_the_wrong_width_naming_the_row(svc: Service, seeded: dict) -> None:
    path = f"/v1/models/{seeded['model_id']}/predict"
    body = problem(svc.client.post(path, json={"inputs": [[1.0, 2.0, 3.0]]}), 422, "validation-error",
                   field="inputs.0")
    assert "3 features" in body["detail"] and "expects 2" in body["detail"]
    problem(svc.client.post(path, json={"inputs": [[1.0, 2.0], [1.0]]}), 422, "validation-error", field="inputs")
    problem(svc.client.post(path, json={"inputs": []}), 422, "validation-error", field="inputs")
    problem(svc.client.post(path, json={"inputs": [[0.0, 0.0]], "epsilon": -1}), 422, "validation-error",
            field="epsilon")
    body = problem(svc.client.post(path, content=b'{"inputs": [[0.1, NaN]]}',
                                   headers={"content-type": "application/json"}), 422, "validation-error")
    assert "not finite" in body["detail"]
    problem(svc.client.post(path, content=b"{not json", headers={"content-type": "application/json"}), 400,
            "bad-json")


def test_certify_without_inputs_gives_the_global_bounds(svc: Service, seeded: dict) -> None:
    model = get_model(svc, seeded["model_id"])
    response = svc.client.post(f"/v1/models/{seeded['model_id']}/certify", json={})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["lipschitz"] == model["lipschitz"]
    assert body["epsilon"] == 0.1 and body["norm"] == "l2" and body["local"] is None


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_certify_local_bounds(svc: Service, seeded: dict, norm: str) -> None:
    points = X[:3].tolist()
    response = svc.client.post(f"/v1/models/{seeded['model_id']}/certify",
                               json={"inputs": points, "epsilon": 0.2, "norm": norm})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["norm"] == norm and body["epsilon"] == 0.2 and len(body["local"]) == 3
    served = predict(svc, seeded["model_id"], inputs=points)
    certified = body["lipschitz"]["certified"]
    for i, item in enumerate(body["local"]):
        assert 0 < item["bound"] <= certified
        assert item["bound"] == min(v for v in [*item["bounds"].values(), certified] if v is not None)
        assert 0 <= item["local_radius"] <= 0.2
        assert item["prediction"] == served["predictions"][i]
        assert item["rounding_bound"] == served["rounding_bound"][i]


def test_certify_refuses_bad_bodies(svc: Service, seeded: dict) -> None:
    path = f"/v1/models/{seeded['model_id']}/certify"
    problem(svc.client.post(path, json={"inputs": [[0.0, 0.0]], "norm": "l1"}), 422, "validation-error", field="norm")
    problem(svc.client.post(path, json={"inputs": [[0.0, 0.0]], "epsilon": 0}), 422, "validation-error",
            field="epsilon")
    problem(svc.client.post(path, json={"inputs": [[0.0]]}), 422, "validation-error", field="inputs.0")
    problem(svc.client.post(path, json={"inputs": [[0.0, 0.0]], "extra": 1}), 422, "validation-error", field="extra")


def test_activations(svc: Service, seeded: dict) -> None:
    response = svc.client.get(f"/v1/models/{seeded['model_id']}/activations")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_id"] == seeded["model_id"] and body["points"] == 201
    (layer,) = body["layers"]
    assert layer["layer"] == 0 and layer["kind"] == "LinearSpline" and layer["units"] == 2 and layer["learnable"]
    assert len(layer["x"]) == 201 and len(layer["y"]) == 2 and all(len(curve) == 201 for curve in layer["y"])
    assert layer["x"][0] == pytest.approx(-2.5) and layer["x"][-1] == pytest.approx(2.5)  # range 2.0 * 1.25
    assert all(np.isfinite(curve).all() for curve in layer["y"])
    # the knots: 9 interior positions of the 11-knot grid on [-2, 2], each unit's value there, which are active
    knots = layer["knots"]
    assert knots["x"] == pytest.approx(np.linspace(-2, 2, 11)[1:-1].tolist())
    assert len(knots["y"]) == 2 and len(knots["active"]) == 2 and all(len(a) == 9 for a in knots["active"])
    sparsity = get_model(svc, seeded["model_id"])["sparsity"]["layers"][0]
    assert [sum(a) for a in knots["active"]] == sparsity["active_knots_per_neuron"]
    # the knot values lie on the sampled curves (the grid holds every knot: step 0.025, knots every 0.4)
    for unit in range(2):
        assert np.interp(knots["x"], layer["x"], layer["y"][unit]) == pytest.approx(knots["y"][unit], abs=1e-5)
    # the training pre-activation range: what the first layer makes of the training rows
    measured = layer["preactivation_range"]
    assert len(measured["min"]) == 2 and all(lo < hi for lo, hi in zip(measured["min"], measured["max"], strict=True))


def test_activations_without_the_dataset_have_no_preactivation_range(svc: Service) -> None:
    trained = svc.trained_model(seed_dataset_body("short-lived"))
    assert svc.client.delete(f"/v1/datasets/{trained['dataset_id']}").status_code == 204
    (layer,) = svc.client.get(f"/v1/models/{trained['model_id']}/activations").json()["layers"]
    assert layer["preactivation_range"] is None and len(layer["knots"]["active"]) == 2


def test_download_is_a_zip_of_document_and_weights(svc: Service, seeded: dict) -> None:
    model = get_model(svc, seeded["model_id"])
    response = svc.client.get(f"/v1/models/{seeded['model_id']}/download")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="lipspline-model-{seeded["model_id"]}.zip"'
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["model.json", "weights.safetensors"]
        document = json.loads(archive.read("model.json"))
        weights = archive.read("weights.safetensors")
    assert hashlib.sha256(weights).hexdigest() == model["weights_sha256"] == document["weights_sha256"]
    assert document["model_id"] == seeded["model_id"]
    assert document["certificate"]["certified"] == model["lipschitz"]["certified"]
    assert document["config"]["architecture"]["hidden"] == TINY_CONFIG["architecture"]["hidden"]
    restored = model_from_parts(document, weights)
    assert restored.predict(X[:5]) == predict(svc, seeded["model_id"], inputs=X[:5].tolist())["predictions"]


# ---- stored models that cannot be trusted or certified
def rewrite_model(svc: Service, model_id: str, **columns: object) -> None:
    with session_scope(svc.database_url) as session:
        row = session.get(ModelRow, model_id)
        for name, value in columns.items():
            setattr(row, name, value)


def test_tampered_weights_are_refused_with_409(svc: Service, seeded: dict) -> None:
    tamper_weights(svc, seeded["model_id"])
    model_id = seeded["model_id"]
    for method, path, body in [
        ("POST", f"/v1/models/{model_id}/predict", {"inputs": [[0.0, 0.0]]}),
        ("POST", f"/v1/models/{model_id}/certify", {}),
        ("GET", f"/v1/models/{model_id}/activations", None),
        ("GET", f"/v1/models/{model_id}/download", None),
    ]:
        detail = problem(svc.client.request(method, path, json=body), 409, "bad-artifact")["detail"]
        assert "sha256" in detail, (method, path, detail)
    assert svc.client.get(f"/v1/models/{model_id}").status_code == 200  # the record itself still reads


def test_a_model_without_a_finite_certificate_does_not_predict(svc: Service, seeded: dict) -> None:
    with session_scope(svc.database_url) as session:
        certificate = dict(session.get(ModelRow, seeded["model_id"]).certificate)
    rewrite_model(svc, seeded["model_id"], certificate={**certificate, "certified": None, "certified_by": None})
    path = f"/v1/models/{seeded['model_id']}/predict"
    problem(svc.client.post(path, json={"inputs": [[0.0, 0.0]]}), 409, "no-certificate")


def test_a_certificate_of_another_map_is_recomputed_on_load(svc: Service, seeded: dict) -> None:
    """A stored certificate whose served-map fingerprint differs is not trusted: a fresh bound is served."""
    with session_scope(svc.database_url) as session:
        certificate = dict(session.get(ModelRow, seeded["model_id"]).certificate)
    rewrite_model(svc, seeded["model_id"], certificate={**certificate, "certified": 1e-6,
                                                        "served_map_sha256": "0" * 64})
    body = predict(svc, seeded["model_id"], inputs=X[:3].tolist())
    assert body["lipschitz_bound"] != 1e-6
    assert body["lipschitz_bound"] >= certificate["best_lower_bound"]


def test_predict_multiclass_labels_and_margin_radius(svc: Service) -> None:
    """Three classes named by strings: labels are the class names, the radius follows the top-two margin."""
    inputs = seed_dataset_body()["inputs"]
    labels = ["low" if a < -0.2 else "mid" if a < 0.2 else "high" for a, _ in inputs]
    ids = svc.trained_model({"inputs": inputs, "targets": labels})
    model = get_model(svc, ids["model_id"])
    assert model["task"] == "classification" and sorted(model["classes"]) == ["high", "low", "mid"]
    body = predict(svc, ids["model_id"], inputs=X.tolist())
    outputs = np.array(body["outputs"])
    assert outputs.shape == (len(X), 3)
    assert body["predictions"] == [model["classes"][i] for i in outputs.argmax(axis=1)]
    top = np.sort(outputs, axis=1)
    margin_radius = (top[:, -1] - top[:, -2]) / (np.sqrt(2) * body["lipschitz_bound"])
    radius = np.array(body["certified_radius"])
    assert (radius <= margin_radius).all()
    np.testing.assert_allclose(radius, margin_radius, rtol=1e-6, atol=1e-12)
    records = svc.client.post(f"/v1/models/{ids['model_id']}/predict/npy", content=_npy(X),
                              headers={"content-type": "application/x-npy"})
    assert records.status_code == 200, records.text
    classes = json.loads(records.headers["x-classes"])
    got = np.load(io.BytesIO(records.content), allow_pickle=False)
    assert [classes[i] for i in got["label"]] == body["predictions"]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
