"""Over HTTP: the bound returned with a prediction holds for the outputs the endpoint returns.

A live embedded deployment trains models on data that broke the float32 endpoint
(a feature ``1e6 + 1e-3 N(0, 1)``), then the tests attack every statement a
prediction makes, using only what the API returns: accuracy on the training rows
equals what training reported, pairs of data points never move the returned
outputs by more than ``output_bound(epsilon = their distance)``, points nudged
by float64 ulps (and pushed towards the boundary) inside ``certified_radius`` keep
their label, a 1-Lipschitz model's outputs move by at most
``||x - y|| + rounding_bound(x) + rounding_bound(y)``, and a network with no hidden
layer trains, certifies and serves local bounds.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from lipspline.data import train_validation_split
from tests.support.processes import Deployment, embedded_env, wait_for_job

pytestmark = pytest.mark.e2e

OFFSET_CONFIG = {
    "architecture": {"hidden": [8], "activation": "deepspline"},
    "training": {"epochs": 30, "lr": 0.01, "seed": 0, "validation_split": 0.2},
    "device": "cpu",
}


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("served")
    env = embedded_env(workdir, LIPSPLINE_RATE_LIMIT_PER_S="100000", LIPSPLINE_RATE_LIMIT_BURST="100000")
    with Deployment(env, workdir, embedded=True).running() as deployment:
        yield deployment


def train(http: httpx.Client, inputs: np.ndarray, targets: list, config: dict, task: str | None = None) -> dict:
    body = {"name": "served", "inputs": inputs.tolist(), "targets": targets}
    if task:
        body["task"] = task
    dataset = http.post("/v1/datasets", json=body)
    assert dataset.status_code == 201, dataset.text
    job = http.post("/v1/jobs", json={"dataset_id": dataset.json()["id"], "config": config})
    assert job.status_code == 202, job.text
    state = wait_for_job(http, job.json()["id"])
    assert state["status"] == "succeeded", state
    return http.get(f"/v1/models/{state['model_id']}").json()


def predict(http: httpx.Client, model_id: str, rows: np.ndarray, epsilon: float | None = None) -> dict:
    body: dict = {"inputs": np.asarray(rows).tolist()}
    if epsilon is not None:
        body["epsilon"] = epsilon
    response = http.post(f"/v1/models/{model_id}/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def offset_model(dep: Deployment) -> dict:
    rng = np.random.default_rng(7)
    z = rng.normal(size=(500, 2))
    X = np.c_[1e6 + 1e-3 * z[:, 0], z[:, 1]]
    y = (z[:, 0] + 0.4 * z[:, 1] > 0).astype(int)
    with dep.client() as http:
        model = train(http, X, y.tolist(), OFFSET_CONFIG)
    return {"X": X, "y": y, "model": model}


def test_served_accuracy_equals_what_training_reported(dep: Deployment, offset_model: dict) -> None:
    X, y, model = offset_model["X"], offset_model["y"], offset_model["model"]
    train_rows, validation_rows = train_validation_split(len(y), 0.2, 0)
    with dep.client() as http:
        served = predict(http, model["id"], X)
    assert served["arithmetic"] == "float64"
    labels = np.asarray(served["predictions"])
    for name, rows in (("train", train_rows), ("validation", validation_rows)):
        assert float((labels[rows] == y[rows]).mean()) == model["metrics"][name]["accuracy"]
    assert float((labels == y).mean()) > 0.9  # the float32 endpoint scored 52.7 % here


def test_pairs_of_data_points_stay_within_output_bound(dep: Deployment, offset_model: dict) -> None:
    X = offset_model["X"]
    rng = np.random.default_rng(0)
    with dep.client() as http:
        outputs = np.asarray(predict(http, offset_model["model"]["id"], X)["outputs"])
        worst = 0.0
        for i, j in rng.integers(0, len(X), size=(150, 2)):
            distance = float(np.linalg.norm(X[i] - X[j]))
            if distance == 0.0:
                continue
            bound = predict(http, offset_model["model"]["id"], X[[i]], epsilon=distance)["output_bound"]
            moved = float(np.linalg.norm(outputs[i] - outputs[j]))
            worst = max(worst, moved / bound)
            assert moved <= bound, (i, j, moved, bound)
    print(f"\nworst data-pair move / output_bound: {worst:.4g}")


def _ulp_nudges(x: np.ndarray, steps: int) -> np.ndarray:
    rows = []
    for j in range(x.shape[0]):
        for direction in (np.inf, -np.inf):
            y = x.copy()
            for _ in range(steps):
                y[j] = np.nextafter(y[j], direction)
                rows.append(y.copy())
    return np.array(rows)


def test_points_nudged_inside_the_certified_radius_keep_their_label(dep: Deployment, offset_model: dict) -> None:
    X = offset_model["X"][:40]
    model_id = offset_model["model"]["id"]
    with dep.client() as http:
        served = predict(http, model_id, X)
        radii = np.asarray(served["certified_radius"])
        assert (radii > 0).any()
        checked = 0
        for i in np.flatnonzero(radii > 0)[:15]:
            label = served["predictions"][i]
            # ulp nudges, and points just inside the radius along both feature axes
            edge = [X[i] + sign * radii[i] * (1 - 1e-9) * np.eye(2)[k] for k in range(2) for sign in (1.0, -1.0)]
            trials = np.vstack([_ulp_nudges(X[i], 4), np.array(edge)])
            moved = predict(http, model_id, trials)["predictions"]
            assert all(p == label for p in moved), (i, radii[i])
            checked += len(trials)
    assert checked > 0


def test_one_lipschitz_model_moves_at_most_distance_plus_rounding(dep: Deployment) -> None:
    rng = np.random.default_rng(3)
    X = 5e5 + 100.0 * rng.normal(size=(300, 2))
    y = np.abs(X[:, 0] - 5e5) * 0.5 + np.sin((X[:, 1] - 5e5) / 100.0) * 30
    config = {
        "architecture": {"hidden": [16, 16], "activation": "deepspline"},
        "objective": {"mode": "one_lipschitz"},
        "training": {"epochs": 15, "lr": 0.01, "seed": 0},
        "device": "cpu",
    }
    with dep.client() as http:
        model = train(http, X, y.tolist(), config, task="regression")
        assert model["lipschitz"]["certified"] <= 1.0
        probe = X[:60]
        near = probe + rng.normal(size=probe.shape) * 10.0 ** rng.uniform(-10, 1, size=(60, 1))
        a = predict(http, model["id"], probe)
        b = predict(http, model["id"], near)
    moved = np.linalg.norm(np.asarray(a["outputs"]) - np.asarray(b["outputs"]), axis=1)
    allowed = (
        model["lipschitz"]["certified"] * np.linalg.norm(probe - near, axis=1)
        + np.asarray(a["rounding_bound"])
        + np.asarray(b["rounding_bound"])
    )
    assert np.all(moved <= allowed)


def test_network_without_hidden_layer_trains_certifies_and_serves_local_bounds(dep: Deployment) -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 3)) * [1.0, 1e-3, 1e3] + [0.0, 1e6, -1e4]
    y = (X[:, 0] + (X[:, 1] - 1e6) * 1e3 > 0).astype(int)
    config = {"architecture": {"hidden": []}, "training": {"epochs": 10, "lr": 0.05, "seed": 0}, "device": "cpu"}
    with dep.client() as http:
        model = train(http, X, y.tolist(), config)
        certified = model["lipschitz"]["certified"]
        assert certified is not None and certified > 0
        # an affine map's constant is exact: the lower bounds reach it
        assert model["lipschitz"]["best_lower"] == pytest.approx(certified, rel=1e-6)
        response = http.post(f"/v1/models/{model['id']}/certify", json={"inputs": X[:5].tolist(), "epsilon": 0.5})
        assert response.status_code == 200, response.text
        local = response.json()["local"]
        assert len(local) == 5 and all(item["bound"] <= certified for item in local)


def pushed_to_radius(X: np.ndarray, labels: np.ndarray, probe: np.ndarray, radii: np.ndarray, predicted: list,
                     rng: np.random.Generator, *, nearest: int, random: int) -> tuple[list, list]:
    """Each probe row with a positive radius, moved by its radius towards its ``nearest`` rows of other
    classes and in ``random`` random directions; the rows and the label each must keep."""
    attacked, expected = [], []
    for x, r, label in zip(probe, radii, predicted, strict=True):
        if r <= 0:
            continue
        others = X[labels != label]
        towards = others[np.argsort(np.linalg.norm(others - x, axis=1))[:nearest]] - x
        directions = np.vstack([towards, rng.normal(size=(random, X.shape[1]))])
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        attacked += (x + r * directions).tolist()
        expected += [label] * len(directions)
    return attacked, expected


def test_a_target_radius_model_certifies_at_its_radius_and_its_radii_hold(dep: Deployment) -> None:
    """Nothing but ``robustness.target_radius``: the stored curve certifies most validation rows at it,
    and points pushed to the returned radius (towards the other classes and at random) keep their label."""
    from lipspline.training.robust_accuracy import classification_scale

    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, 360)
    centres = np.array([[0.0, 0.0, 0.0, 0.0], [2.5, 0.0, 0.5, 0.0], [0.0, 2.5, 0.0, 0.5]])
    X = centres[labels] + rng.normal(scale=0.5, size=(360, 4))
    radius = classification_scale(X, labels) / 8
    config = {"robustness": {"target_radius": radius}, "training": {"epochs": 25, "seed": 0}, "device": "cpu"}
    with dep.client() as http:
        model = train(http, X, labels.tolist(), config)
        curve = model["certified_accuracy"]
        assert curve["target_radius"] == radius and radius in curve["radii"]
        assert curve["certified_at_target"] > 0.6 and curve["warning"] is None
        assert model["lipschitz"]["certified"] <= 1.0
        assert model["config"]["objective"]["loss"] == "lipschitz_margin"
        probe = X[:80]
        answer = http.post(f"/v1/models/{model['id']}/predict", json={"inputs": probe.tolist(), "local_ball": radius})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        radii = np.asarray(body["certified_radius"])
        assert len(body["radius_source"]) == len(probe)
        attacked, expected = pushed_to_radius(X, labels, probe, radii, body["predictions"], rng, nearest=4, random=8)
        assert len(expected) > 100
        pushed = predict(http, model["id"], np.asarray(attacked))
    assert pushed["predictions"] == expected


def test_a_cnn_trained_for_a_radius_serves_aol_convolutions_and_its_radii_hold(dep: Deployment) -> None:
    """Image-shaped rows with ``architecture.kind = cnn`` and a target radius: the convolutions are AOL
    (stored spelled out), the model is 1-Lipschitz, it certifies at its radius, and rows pushed to the
    returned radius towards the other classes keep their label."""
    from lipspline.training.robust_accuracy import classification_scale

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 300)
    patterns = np.zeros((3, 6, 6))
    patterns[0, :, 1] = patterns[1, 2, :] = 1.0  # a vertical bar, a horizontal bar, a diagonal
    patterns[2][np.arange(6), np.arange(6)] = 1.0
    X = patterns[labels].reshape(300, 36) + rng.normal(scale=0.15, size=(300, 36))
    radius = classification_scale(X, labels) / 8
    config = {
        "architecture": {"kind": "cnn", "input_shape": [1, 6, 6], "conv_channels": [8], "hidden": [32]},
        "robustness": {"target_radius": radius}, "training": {"epochs": 30, "seed": 0}, "device": "cpu",
    }
    with dep.client() as http:
        model = train(http, X, labels.tolist(), config)
        assert model["config"]["objective"]["mode"] == "one_lipschitz"
        assert model["config"]["objective"]["one_lipschitz_conv"] == "auto"  # resolves to aol
        assert model["lipschitz"]["certified"] <= 1.0
        assert model["certified_accuracy"]["certified_at_target"] > 0.5
        probe = X[:60]
        body = predict(http, model["id"], probe)
        radii = np.asarray(body["certified_radius"]) * (1 - 1e-9)
        attacked, expected = pushed_to_radius(X, labels, probe, radii, body["predictions"], rng, nearest=3, random=4)
        assert len(expected) > 100
        pushed = predict(http, model["id"], np.asarray(attacked))
    assert pushed["predictions"] == expected
