"""The papers' training protocol, shared by every recipe: one place where it is written down.

Each paper reproduced here trains with Adam at a fixed learning rate for a fixed number of
epochs: no schedule, no early stopping, no validation split (every row trains), on the CPU so
that a seed repeats a run. A recipe states only what its paper varies: the architecture, the
splines and the objective.
"""

from __future__ import annotations

from typing import Any

from api_schemas import TrainingConfig


def protocol_config(*, architecture: dict[str, Any], spline: dict[str, Any], objective: dict[str, Any],
                    epochs: int, batch_size: int, lr: float, seed: int) -> TrainingConfig:
    """The recipe's ``TrainingConfig`` under the fixed-lr, fixed-epochs protocol."""
    return TrainingConfig.model_validate(
        {
            "architecture": {"kind": "mlp", **architecture},
            "spline": spline,
            "objective": objective,
            "training": {
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
                "optimizer": "adam",
                "seed": seed,
                "validation_split": 0.0,
                "lr_schedule": "none",
                "early_stopping": False,
            },
            "device": "cpu",
        }
    )
