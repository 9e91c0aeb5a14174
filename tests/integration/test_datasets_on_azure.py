"""Datasets by reference in Azure Blob Storage (issue 30), against a real Azure Blob API: the
Azurite emulator on loopback and a `lipspline serve` deployment pointed at it.

An ``az://container/*.parquet`` URI is registered (footers, columns, one statistics pass), a
job streams it and its model predicts with a certificate; a key the store refuses is a 422
naming the credentials, and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.azurite import Azurite, azurite
from tests.support.processes import Deployment, embedded_env, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
CONTAINER = "team-data"
CONFIG = {"architecture": {"hidden": [8], "activation": "deepspline"},
          "training": {"epochs": 2, "batch_size": 64, "lr": 0.02, "seed": 0, "validation_split": 0.2}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        filesystem = server.filesystem()
        filesystem.create_dir(CONTAINER)
        rng = np.random.default_rng(0)
        for part in range(2):
            label = rng.integers(0, 3, 600)
            columns = {f"x{j}": (rng.normal(size=600) + 1.5 * (label == j)).astype(np.float32) for j in range(3)}
            with filesystem.open_output_stream(f"{CONTAINER}/rows/part-{part}.parquet") as out:
                pq.write_table(pa.table({**columns, "label": label}), out, row_group_size=150)
        yield server


def deployment(store: Azurite, workdir, **env: str) -> Deployment:
    return Deployment(embedded_env(workdir, **{**store.service_env(), **env}), workdir, embedded=True)


def test_an_azure_dataset_is_registered_streamed_trained_and_served(
    store: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with deployment(store, tmp_path_factory.mktemp("azure")).running() as dep, dep.client() as http:
        created = http.post("/v1/datasets", json={"uri": f"az://{CONTAINER}/rows/*.parquet", "target": "label"})
        assert created.status_code == 201, created.text
        dataset = created.json()
        assert (dataset["n_samples"], dataset["n_features"], dataset["classes"]) == (1200, 3, [0, 1, 2])
        assert store.service_env()["AZURE_STORAGE_ACCOUNT_KEY"] not in created.text
        job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG})
        assert job.status_code == 202, job.text
        done = wait_for_job(http, job.json()["id"])
        assert done["status"] == "succeeded", done
        predicted = http.post(f"/v1/models/{done['model_id']}/predict", json={"inputs": [[1.5, 0.0, 0.0]]})
        assert predicted.status_code == 200 and predicted.json()["lipschitz_bound"] > 0

        missing = http.post("/v1/datasets", json={"uri": f"az://{CONTAINER}/nothing/*.parquet", "target": "label"})
        assert missing.status_code == 422 and "no object matches" in missing.text


def test_a_key_the_store_refuses_is_a_422_and_nothing_is_stored(
    store: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    wrong = {"AZURE_STORAGE_ACCOUNT_KEY": "d3Jvbmcta2V5"}
    with deployment(store, tmp_path_factory.mktemp("azure-wrong"), **wrong).running() as dep, dep.client() as http:
        refused = http.post("/v1/datasets", json={"uri": f"az://{CONTAINER}/rows/*.parquet", "target": "label"})
        assert refused.status_code == 422, refused.text
        assert "refused the service's credentials" in refused.json()["detail"]
        assert "d3Jvbmcta2V5" not in refused.text
        assert json.loads(http.get("/v1/datasets").text)["items"] == []
