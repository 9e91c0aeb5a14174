"""Two ways to train a recipe's model: in-process through the core, or through a running service.

The remote trainer speaks the public v1 HTTP API through the SDK (``lipspline_client``,
which imports nothing of the service), uploads the dataset as JSON, submits the job,
follows its event stream, and downloads the model zip; the model it returns is rebuilt
from that zip, so a recipe evaluates exactly what the service serves.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from typing import Protocol

from api_schemas import TrainingConfig
from lipspline.data import Dataset
from lipspline.nn.model import TrainedModel
from lipspline.nn.serialization import model_from_parts
from lipspline.training.loop import fit
from lipspline_client import Client


@dataclass
class Trained:
    model: TrainedModel
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


class Trainer(Protocol):
    where: str

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained: ...


class LocalTrainer:
    """``lipspline.training.loop.fit`` in this process."""

    where = "core (in-process)"

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained:
        began = time.perf_counter()
        result = fit(dataset, config)
        return Trained(result.model, [r.to_json() for r in result.history], time.perf_counter() - began)


class RemoteTrainer:
    """A running LipSpline service at ``url``, authenticated with ``api_key``, through the SDK."""

    def __init__(self, url: str, api_key: str, *, poll_s: float = 0.5, timeout_s: float = 3600.0) -> None:
        # poll_s is kept for callers; progress now comes from the job's event stream, not polling
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
