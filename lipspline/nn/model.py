"""A trained model: the network plus everything needed to serve it.

Predictions are returned in the dataset's own terms: class labels as they
appeared in the uploaded data, regression values in target units. They are
computed by the model's served map (``certificates/served_map.py``): float64
from the raw inputs, the function the certificates bound, with a proven bound
on its rounding, so the numbers a client receives are the ones the guarantee
is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from api_schemas import TrainingConfig
from lipspline.certificates.served_map import ServedMap, ServedOutputs
from lipspline.nn.label_rule import label_of
from lipspline.nn.networks import SplineNetwork


@dataclass
class TrainedModel:
    network: SplineNetwork
    config: TrainingConfig
    task: str
    classes: list | None
    feature_names: list[str]
    metrics: dict = field(default_factory=dict)
    _served: tuple[tuple, ServedMap] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_features(self) -> int:
        return self.network.n_features

    def served_map(self) -> ServedMap:
        """The served map of the network as it is now (rebuilt only when a parameter or buffer changed)."""
        state = tuple((t.data_ptr(), t._version, t.dtype) for t in self.network.state_dict().values())
        if self._served is None or self._served[0] != state:
            self._served = (state, ServedMap(self.network))
        return self._served[1]

    def served(self, inputs: np.ndarray | Tensor) -> ServedOutputs:
        """Outputs of the served map with their proven rounding bounds."""
        return self.served_map().evaluate(_float64_rows(inputs))

    def outputs(self, inputs: np.ndarray | Tensor) -> Tensor:
        """Raw inputs -> outputs of the served map (logits for classifiers), float64 CPU."""
        return torch.from_numpy(self.served_map().outputs(_float64_rows(inputs)))

    def predictions_from_outputs(self, outputs: Tensor | np.ndarray) -> list:
        """Class labels (as in the dataset) or regression values from outputs."""
        out = outputs.numpy() if isinstance(outputs, Tensor) else np.asarray(outputs)
        if self.task == "regression":
            return out.squeeze(-1).tolist()
        assert self.classes is not None
        return classes_of(label_of(out), self.classes)

    def predict(self, inputs: np.ndarray | Tensor) -> list:
        return self.predictions_from_outputs(self.outputs(inputs))


def classes_of(index: np.ndarray, classes: list) -> list:
    """Class indices (``label_of``) -> the classes as they appeared in the dataset, as a list."""
    # one numpy take on an object array: the labels keep their JSON types (int, str, ...)
    return np.asarray(classes, dtype=object)[np.asarray(index, dtype=np.intp)].tolist()


def _float64_rows(inputs: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(inputs, Tensor):
        inputs = inputs.detach().cpu().numpy()
    x = np.asarray(inputs, dtype=np.float64)
    return x.reshape(x.shape[0], -1) if x.ndim != 2 else x
