"""Datasets by reference in Azure Blob Storage and Google Cloud Storage (issue 30), against real
APIs on loopback: the Azurite emulator (Microsoft's, from npm) and gcp-storage-emulator (the GCS
JSON API, from PyPI), each with a `lipspline serve` deployment pointed at it. (S3 has its own
module, ``test_datasets_by_reference.py``, against moto's server.)

An ``az://`` or ``gs://`` URI is registered (footers, columns, one statistics pass), a job
streams it and its model predicts with a certificate; a URI naming nothing is a 422. On Azure,
which checks keys, a key the store refuses is a 422 naming the credentials, and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.azurite import ACCOUNT_KEY, azurite
from tests.support.gcs_server import gcs_server
from tests.support.processes import Deployment, embedded_env, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
BUCKET = "team-data"
CONFIG = {"architecture": {"hidden": [8], "activation": "deepspline"},
          "training": {"epochs": 2, "batch_size": 64, "lr": 0.02, "seed": 0, "validation_split": 0.2}}
#: each store: its URI scheme and how to start it
STORES = {"az": azurite, "gs": gcs_server}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Each store by scheme, holding two Parquet objects of 600 rows under ``BUCKET/rows/``."""
    with ExitStack() as stack:
        started = {}
        for scheme, start in STORES.items():
            server = started[scheme] = stack.enter_context(start(tmp_path_factory.mktemp(scheme)))
            filesystem = server.filesystem()
            filesystem.create_dir(BUCKET)
            rng = np.random.default_rng(0)
            for part in range(2):
                label = rng.integers(0, 3, 600)
                columns = {f"x{j}": (rng.normal(size=600) + 1.5 * (label == j)).astype(np.float32) for j in range(3)}
                with filesystem.open_output_stream(f"{BUCKET}/rows/part-{part}.parquet") as out:
                    pq.write_table(pa.table({**columns, "label": label}), out, row_group_size=150)
        yield started


def deployment(server: Any, workdir, **env: str) -> Deployment:
    return Deployment(embedded_env(workdir, **{**server.service_env(), **env}), workdir, embedded=True)


@pytest.mark.parametrize("scheme", sorted(STORES))
def test_a_dataset_in_the_store_is_registered_streamed_trained_and_served(
    stores: dict[str, Any], scheme: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = stores[scheme]
    with deployment(server, tmp_path_factory.mktemp("served")).running() as dep, dep.client() as http:
        created = http.post("/v1/datasets", json={"uri": f"{scheme}://{BUCKET}/rows/*.parquet", "target": "label"})
        assert created.status_code == 201, created.text
        dataset = created.json()
        assert (dataset["n_samples"], dataset["n_features"], dataset["classes"]) == (1200, 3, [0, 1, 2])
        assert ACCOUNT_KEY not in created.text
        job = http.post("/v1/jobs", json={"dataset_id": dataset["id"], "config": CONFIG})
        assert job.status_code == 202, job.text
        done = wait_for_job(http, job.json()["id"])
        assert done["status"] == "succeeded", done
        predicted = http.post(f"/v1/models/{done['model_id']}/predict", json={"inputs": [[1.5, 0.0, 0.0]]})
        assert predicted.status_code == 200 and predicted.json()["lipschitz_bound"] > 0

        missing = http.post("/v1/datasets", json={"uri": f"{scheme}://{BUCKET}/nothing/*.parquet", "target": "label"})
        assert missing.status_code == 422 and "no object matches" in missing.text


def test_an_azure_key_the_store_refuses_is_a_422_and_nothing_is_stored(
    stores: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = stores["az"]  # the GCS emulator checks no credentials; Azurite does
    wrong = {"AZURE_STORAGE_ACCOUNT_KEY": "d3Jvbmcta2V5"}
    with deployment(server, tmp_path_factory.mktemp("refused"), **wrong).running() as dep, dep.client() as http:
        refused = http.post("/v1/datasets", json={"uri": f"az://{BUCKET}/rows/*.parquet", "target": "label"})
        assert refused.status_code == 422, refused.text
        assert "refused the service's credentials" in refused.json()["detail"]
        assert "d3Jvbmcta2V5" not in refused.text
        assert http.get("/v1/datasets").json()["items"] == []
