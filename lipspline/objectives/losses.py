"""Data losses, shared by every objective mode.

Each loss is the *mean* over the batch (not the sum the papers write), so the penalty
weights lambda and mu are per-sample weights: a paper's lambda corresponds to ours times the
number of samples. That keeps one configuration meaningful across dataset sizes.
"""

from __future__ import annotations

from torch import Tensor, nn


def resolve_loss(loss: str, task: str, n_outputs: int) -> str:
    """The data loss actually used: ``auto`` picks BCE (one logit), CE or MSE."""
    if loss != "auto":
        return loss
    if task == "classification":
        return "bce" if n_outputs == 1 else "cross_entropy"
    return "mse"


def data_loss(name: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean data loss; classification targets are class indices."""
    if name == "bce":
        return nn.functional.binary_cross_entropy_with_logits(outputs.squeeze(-1), targets.to(outputs.dtype))
    if name == "cross_entropy":
        return nn.functional.cross_entropy(outputs, targets.long())
    if name == "mse":
        return nn.functional.mse_loss(outputs.squeeze(-1), targets.to(outputs.dtype))
    if name == "mae":
        return nn.functional.l1_loss(outputs.squeeze(-1), targets.to(outputs.dtype))
    raise ValueError(f"unknown loss {name!r}")
