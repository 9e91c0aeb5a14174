"""Two ways to train a recipe's model: in-process through the core, or through a running service.

The remote trainer speaks the public v1 HTTP API with the standard library
only (the core must not import the service), uploads the dataset as JSON,
submits the job, polls it, and downloads the model zip; the model it returns
is rebuilt from that zip, so a recipe evaluates exactly what the service serves.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from typing import Protocol

from api_schemas import TrainingConfig
from lipspline.data import Dataset
from lipspline.model import TrainedModel
from lipspline.serialization import model_from_parts
from lipspline.training import fit


@dataclass
class Trained:
    model: TrainedModel
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


class Trainer(Protocol):
    where: str

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained: ...


class LocalTrainer:
    """``lipspline.training.fit`` in this process."""

    where = "core (in-process)"

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained:
        began = time.perf_counter()
        result = fit(dataset, config)
        return Trained(result.model, [r.to_json() for r in result.history], time.perf_counter() - began)


class RemoteTrainer:
    """A running LipSpline service at ``url``, authenticated with ``api_key``."""

    def __init__(self, url: str, api_key: str, *, poll_s: float = 0.5, timeout_s: float = 3600.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.where = f"service at {self.url}"

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.api_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path} answered {error.code}: {detail}") from None

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        return json.loads(self._call(method, path, body)[1])

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained:
        began = time.perf_counter()
        targets = dataset.y.tolist()
        uploaded = self._json(
            "POST",
            "/v1/datasets",
            {"name": dataset.name, "inputs": dataset.X.tolist(), "targets": targets, "task": dataset.task},
        )
        job = self._json("POST", "/v1/jobs", {"dataset_id": uploaded["id"], "config": config.to_json()})
        deadline = time.monotonic() + self.timeout_s
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job['id']} still {job['status']} after {self.timeout_s} s")
            time.sleep(self.poll_s)
            job = self._json("GET", f"/v1/jobs/{job['id']}")
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('error')}")
        history = self._json("GET", f"/v1/jobs/{job['id']}/metrics").get("history", [])
        _, blob = self._call("GET", f"/v1/models/{job['model_id']}/download")
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            document = json.loads(archive.read("model.json"))
            weights = archive.read("weights.safetensors")
        return Trained(model_from_parts(document, weights), history, time.perf_counter() - began)
