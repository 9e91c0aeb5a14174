"""``predict`` with ``local_ball``: the certified radius from the best proof, still sound.

A local bound over B(x, rho) can prove a larger radius than the global bound (the network
uses fewer of its pieces near x). The route then returns the larger radius, capped at rho,
and says which proof gave it. Soundness is attacked through the endpoint itself: points at
the certified radius, in directions all around each 2-D input, must keep the returned label.
"""

from __future__ import annotations

import numpy as np

from tests.routes.helpers import SEED_INPUTS, TINY_CONFIG, Service, problem, seed_dataset_body

#: a (2, [8, 8], 1) ReLU net: locally many units are dead, so local bounds beat the global one
RELU_CONFIG = {**TINY_CONFIG, "architecture": {"hidden": [8, 8], "activation": "relu"},
               "training": {**TINY_CONFIG["training"], "epochs": 30}}


def _predict(svc: Service, model_id: str, rows: list, **extra) -> dict:
    response = svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": rows, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_local_ball_never_lowers_the_radius_and_names_its_source(svc: Service) -> None:
    dataset_id = svc.upload(seed_dataset_body())
    model_id = svc.worker.run(svc.submit(dataset_id, RELU_CONFIG))
    rows = SEED_INPUTS[:32]
    plain = _predict(svc, model_id, rows)
    assert "radius_source" not in plain or plain["radius_source"] is None
    ball = 0.2
    best = _predict(svc, model_id, rows, local_ball=ball)
    assert best["predictions"] == plain["predictions"] and best["outputs"] == plain["outputs"]
    for g, b, source in zip(plain["certified_radius"], best["certified_radius"], best["radius_source"], strict=True):
        assert b >= g
        if source == "local":
            assert g < b <= ball
        else:
            assert b == g
    assert "local" in best["radius_source"], "a ReLU net should gain somewhere from a local proof"


def test_local_radii_survive_an_attack_through_the_endpoint(svc: Service) -> None:
    dataset_id = svc.upload(seed_dataset_body())
    model_id = svc.worker.run(svc.submit(dataset_id, RELU_CONFIG))
    rows = np.asarray(SEED_INPUTS[:32])
    best = _predict(svc, model_id, rows.tolist(), local_ball=0.2)
    radii = np.asarray(best["certified_radius"])
    rng = np.random.default_rng(0)
    attacked, labels = [], []
    for x, r, label in zip(rows, radii, best["predictions"], strict=True):
        if r <= 0:
            continue
        # 2-D inputs: 64 evenly spaced directions cover the circle of radius r densely
        angles = np.linspace(0.0, 2 * np.pi, 64, endpoint=False) + rng.uniform(0, 0.1)
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        attacked += (x + r * directions).tolist()
        labels += [label] * len(directions)
    answer = _predict(svc, model_id, attacked)
    assert answer["predictions"] == labels


def test_local_ball_is_validated_like_every_field(svc: Service) -> None:
    model_id = svc.trained_model()["model_id"]
    for value in (0, -1, "wide"):
        response = svc.client.post(f"/v1/models/{model_id}/predict", json={"inputs": [[0.0, 0.0]], "local_ball": value})
        assert problem(response, 422, "validation-error")["field"] == "local_ball"
