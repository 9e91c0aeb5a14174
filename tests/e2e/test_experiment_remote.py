"""`lipspline experiment run --url`: a recipe trained through a live service gets the model the service serves.

The remote trainer uploads, submits, polls and downloads over the public API;
a CPU training run is deterministic per seed, so the downloaded model must
compute exactly what the same config computes in-process, and what the
service's own predict endpoint returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from api_schemas import TrainingConfig
from lipspline.data import make_circle
from lipspline.experiments.trainers import LocalTrainer
from service.remote_trainer import RemoteTrainer
from tests.support.processes import Deployment, embedded_env

pytestmark = pytest.mark.e2e


def test_remote_trainer_matches_the_core_and_the_service(tmp_path: Path) -> None:
    dataset = make_circle(300, seed=3)
    config = TrainingConfig.model_validate(
        {"architecture": {"hidden": [4]}, "training": {"epochs": 3, "batch_size": 32, "seed": 5}, "device": "cpu"}
    )
    probe = np.random.default_rng(0).uniform(-1, 1, size=(64, 2))
    local = LocalTrainer().train(dataset, config)
    with Deployment(embedded_env(tmp_path), tmp_path, embedded=True).running() as deployment:
        remote = RemoteTrainer(deployment.url, deployment.api_key).train(dataset, config)
        with deployment.client() as http:
            model_id = http.get("/v1/models").json()["items"][0]["id"]
            served = http.post(f"/v1/models/{model_id}/predict", json={"inputs": probe.tolist()}).json()
    assert len(remote.history) == 3
    np.testing.assert_array_equal(remote.model.outputs(probe).numpy(), local.model.outputs(probe).numpy())
    assert remote.model.predict(probe) == served["predictions"]
