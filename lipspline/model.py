"""A trained model: the network plus everything needed to serve it.

Predictions are returned in the dataset's own terms: class labels as they
appeared in the uploaded data, regression values in target units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from api_schemas import TrainingConfig
from lipspline.networks import SplineNetwork


@dataclass
class TrainedModel:
    network: SplineNetwork
    config: TrainingConfig
    task: str
    classes: list | None
    feature_names: list[str]
    metrics: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.network.n_features

    def outputs(self, inputs: np.ndarray | Tensor) -> Tensor:
        """Raw inputs -> outputs of the certified map (logits for classifiers), float64 CPU."""
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32) if not isinstance(inputs, Tensor) else inputs)
        param = next(self.network.parameters())
        with torch.no_grad():
            out = self.network(x.to(device=param.device, dtype=param.dtype))
        return out.detach().to("cpu", torch.float64)

    def predictions_from_outputs(self, outputs: Tensor) -> list:
        """Class labels (as in the dataset) or regression values from outputs."""
        if self.task == "regression":
            return outputs.squeeze(-1).tolist()
        assert self.classes is not None
        index = (outputs.squeeze(-1) > 0).long() if outputs.shape[-1] == 1 else outputs.argmax(dim=-1)
        return [self.classes[i] for i in index.tolist()]

    def predict(self, inputs: np.ndarray | Tensor) -> list:
        return self.predictions_from_outputs(self.outputs(inputs))
