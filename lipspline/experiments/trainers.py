"""How a recipe gets its model trained: the ``Trainer`` protocol and the in-process trainer.

A recipe only asks a ``Trainer`` for a ``Trained`` model. ``LocalTrainer`` runs the core's
training loop here; the other trainer, which trains through a running service over HTTP, lives
with the CLI (``service/remote_trainer.py``) so that the core imports no web client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from api_schemas import TrainingConfig
from lipspline.data import Dataset
from lipspline.nn.model import TrainedModel
from lipspline.training.loop import fit


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
