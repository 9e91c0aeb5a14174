"""Train a paper recipe's models on a running LipSpline service (``lipspline experiment --url``).

The trainer speaks the public v1 HTTP API through the SDK (``lipspline_client``): it uploads the
dataset as JSON, submits the job, follows its event stream, and downloads the model zip. The
model it returns is rebuilt from that zip, so a recipe evaluates exactly what the service serves.
It lives beside the CLI, not in the core's ``lipspline.experiments``, because the core imports no
web code; it satisfies the core's ``Trainer`` protocol.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

from api_schemas import TrainingConfig
from lipspline.data import Dataset
from lipspline.experiments.trainers import Trained
from lipspline.nn.serialization import model_from_parts
from lipspline_client import Client


class RemoteTrainer:
    """A running LipSpline service at ``url``, authenticated with ``api_key``, through the SDK."""

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 3600.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.where = f"service at {self.url}"

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained:
        began = time.perf_counter()
        with Client(self.url, self.api_key, timeout_s=max(60.0, self.timeout_s)) as client:
            uploaded = client.datasets.upload((dataset.X, dataset.y), name=dataset.name, task=dataset.task)
            job = client.jobs.submit(uploaded, config).wait()  # raises if the job failed or was cancelled
            history = client.jobs.get(job.id).metrics_history()
            blob = client.models.get(job.model_id).download(format="zip")
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            document = json.loads(archive.read("model.json"))
            weights = archive.read("weights.safetensors")
        return Trained(model_from_parts(document, weights), history, time.perf_counter() - began)
