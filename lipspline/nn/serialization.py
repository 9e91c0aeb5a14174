"""Save and load models and training checkpoints without pickle.

A model is two parts: a JSON document (config, task, class labels, feature
names, versions, the weights' sha256) and a safetensors blob of the network's
state dict (weights, spline coefficients and the scaling buffers). Neither can
execute code when read, so a model from any store is safe to open; the hash
lets a loader refuse a blob that does not belong to its document.

Parts are returned as (dict, bytes) so the service can keep them in its
database; ``save``/``load`` write the same two parts to a directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from api_schemas import TrainingConfig
from lipspline.nn.model import TrainedModel
from lipspline.nn.networks import SplineNetwork

FORMAT = "lipspline-model"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """A model artifact that cannot be trusted or read."""


def _package_version() -> str:
    from api_schemas.version import __version__

    return __version__


def _plain(value):
    """numpy scalars -> Python scalars, so class labels survive JSON."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def model_to_parts(model: TrainedModel) -> tuple[dict, bytes]:
    state = {k: v.detach().cpu().contiguous() for k, v in model.network.state_dict().items()}
    weights = st_save(state)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_json(),
        "task": model.task,
        "classes": None if model.classes is None else [_plain(c) for c in model.classes],
        "feature_names": list(model.feature_names),
        "n_features": model.network.n_features,
        "n_outputs": model.network.n_outputs,
        "metrics": model.metrics,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "versions": {"lipspline": _package_version(), "torch": torch.__version__.split("+")[0]},
    }
    return document, weights


def model_from_parts(document: dict, weights: bytes) -> TrainedModel:
    if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
        raise ArtifactError("not a lipspline model document (format/format_version)")
    digest = hashlib.sha256(weights).hexdigest()
    if digest != document.get("weights_sha256"):
        raise ArtifactError("model weights do not match the sha256 recorded in the model document")
    config = TrainingConfig.from_stored(document["config"])
    network = SplineNetwork(config, int(document["n_features"]), int(document["n_outputs"]))
    try:
        state = st_load(weights)
        network.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors and torch raise several types for bad blobs
        raise ArtifactError(f"model weights cannot be loaded: {exc}") from exc
    network.eval()
    return TrainedModel(
        network=network,
        config=config,
        task=document["task"],
        classes=document["classes"],
        feature_names=list(document["feature_names"]),
        metrics=dict(document.get("metrics") or {}),
    )


def save(model: TrainedModel, directory: str | Path) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    document, weights = model_to_parts(model)
    (path / "weights.safetensors").write_bytes(weights)
    (path / "model.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    return path


def load(directory: str | Path) -> TrainedModel:
    path = Path(directory)
    document = json.loads((path / "model.json").read_text())
    return model_from_parts(document, (path / "weights.safetensors").read_bytes())
