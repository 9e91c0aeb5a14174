"""A client generated from the live ``/openapi.json`` by ``openapi-python-client`` works (issue 17, part 6).

The generator runs as a user would run it (its CLI, with ``docs/openapi-python-client.yaml``,
which only maps the binary media types to the one it knows) on the schema a running embedded
server serves. It must print no warning: a warning means an operation or a response the
generated client silently lacks. The generated package is then imported and drives the main
flow over HTTP: upload -> train -> predict -> download, typed by the document's schemas.
"""

from __future__ import annotations

import importlib
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import Deployment
from tests.support.services import unavailable

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GENERATOR_CONFIG = REPO / "docs" / "openapi-python-client.yaml"
PACKAGE = "lipspline_generated"
CSV = "x1,x2,y\n" + "".join(f"{(i % 7) / 7 - 0.5},{(i % 5) / 5 - 0.4},{int(i % 3 == 0)}\n" for i in range(48))
TINY_CONFIG = {
    "architecture": {"hidden": [2]},
    "spline": {"knots": 11},
    "training": {"epochs": 2, "batch_size": 16, "validation_split": 0.0},
    "device": "cpu",
}


def _generator() -> list[str]:
    """The generator's command: beside this interpreter first (`make test` runs `.venv/bin/python` without the
    virtual environment on PATH), then on PATH; missing, a skip, or a failure where CI requires everything."""
    beside = Path(sys.executable).parent / "openapi-python-client"
    executable = str(beside) if beside.is_file() else shutil.which("openapi-python-client")
    if executable is None:
        unavailable("openapi-python-client is not installed (pip install -e '.[dev]')")
    return [executable]


def _with_interpreter_bin_on_path() -> dict[str, str]:
    """The environment with this interpreter's bin folder first on PATH: the generator's post-hooks run `ruff`,
    installed there beside it."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


@pytest.fixture(scope="module")
def generated(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The generated package (imported) and the generator's output."""
    folder = tmp_path_factory.mktemp("generated")
    schema = folder / "openapi.json"
    schema.write_bytes(httpx.get(f"{deployment.url}/openapi.json", timeout=30).content)
    result = subprocess.run(
        [*_generator(), "generate", "--path", str(schema), "--meta", "none", "--output-path",
         str(folder / PACKAGE), "--config", str(GENERATOR_CONFIG)],
        capture_output=True, text=True, timeout=300, env=_with_interpreter_bin_on_path(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE), output
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_the_generator_prints_no_warnings(generated: tuple[Any, str]) -> None:
    _, output = generated
    assert "warning" not in output.lower(), output


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_upload_train_predict_download_with_the_generated_client(
    deployment: Deployment, generated: tuple[Any, str]
) -> None:
    package, _ = generated
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    client = package.AuthenticatedClient(base_url=deployment.url, token=deployment.api_key, timeout=60)
    upload_dataset = importlib.import_module(f"{PACKAGE}.api.datasets.upload_dataset")
    submit_job = importlib.import_module(f"{PACKAGE}.api.jobs.submit_job")
    get_job = importlib.import_module(f"{PACKAGE}.api.jobs.get_job")
    list_jobs = importlib.import_module(f"{PACKAGE}.api.jobs.list_jobs")
    predict = importlib.import_module(f"{PACKAGE}.api.models.predict")
    download_model = importlib.import_module(f"{PACKAGE}.api.models.download_model")
    assert api is not None

    body = models.UploadDatasetFilesBody(
        file=types.File(payload=io.BytesIO(CSV.encode()), file_name="rows.csv", mime_type="text/csv"), target="y"
    )
    dataset = upload_dataset.sync(client=client, body=body)
    assert isinstance(dataset, models.DatasetOut), dataset
    assert dataset.n_samples == 48 and dataset.feature_names == ["x1", "x2"]

    spec = models.JobCreate.from_dict({"dataset_id": dataset.id, "config": TINY_CONFIG})
    accepted = submit_job.sync_detailed(client=client, body=spec)
    assert accepted.status_code == 202 and isinstance(accepted.parsed, models.JobAccepted), accepted.content
    assert int(accepted.headers["retry-after"]) >= 1
    job_id = accepted.parsed.id

    deadline = time.monotonic() + 300
    job = get_job.sync(job_id, client=client)
    while job.status.value not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = get_job.sync(job_id, client=client)
    assert isinstance(job, models.JobOut) and job.status.value == "succeeded", job
    assert isinstance(job.config, models.TrainingConfig) and job.config.spline.knots == 11
    assert isinstance(job.progress, models.JobProgress) and job.progress.epoch >= 1

    page = list_jobs.sync(client=client, dataset_id=dataset.id, limit=1)
    assert isinstance(page, models.JobList) and [j.id for j in page.items] == [job_id]

    predicted = predict.sync(job.model_id, client=client, body=models.PredictRequest(inputs=[[0.0, 0.0], [0.4, 0.5]]))
    assert isinstance(predicted, models.PredictResponse), predicted
    assert len(predicted.predictions) == 2 and set(predicted.predictions) <= {0, 1}
    assert predicted.lipschitz_bound > 0 and len(predicted.certified_radius) == 2

    downloaded = download_model.sync(job.model_id, client=client)
    assert isinstance(downloaded, types.File), downloaded
    archive = zipfile.ZipFile(io.BytesIO(downloaded.payload.read()))
    assert set(archive.namelist()) == {"model.json", "weights.safetensors"}
