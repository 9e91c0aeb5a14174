"""Data losses, shared by every objective mode, and the margin losses that train for a certified radius.

Each loss is the *mean* over the batch (not the sum the papers write), so the penalty
weights lambda and mu are per-sample weights: a paper's lambda corresponds to ours times the
number of samples. That keeps one configuration meaningful across dataset sizes.

Why margin losses. A classifier's label is certified at radius r when its logit margin is at
least ``sqrt(2) L r`` (several logits; ``L r`` for one logit), L the network's Lipschitz bound
(``lipspline.certificates.robustness``). Cross-entropy never asks for that margin, so a model
can be 97 % accurate and certify nothing. The three margin losses, for logits z, true class y,
temperature tau and the margin ``m`` in logit units (``m = sqrt(2) L r``, r in standardised
input units; :class:`MarginSpec` computes it):

* ``tau_cross_entropy``: ``CE(tau z, y) / tau``. A 1-Lipschitz network's logits move no faster
  than its inputs, so they are small and plain CE is nearly flat; tau restores the curvature
  (Serrurier et al., *Achieving robustness in classification using optimal transport with
  hinge regularization*, ``TauCrossEntropyLoss``).
* ``lipschitz_margin``: ``CE(tau (z + m (1 - e_y)), y) / tau``: every non-true logit raised by
  m, so the loss only rests once the certificate at r holds (Tsuzuku, Sato and Sugiyama,
  *Lipschitz-Margin Training*). One logit: ``BCE(tau (z - s m)) / tau`` with ``s = 2y - 1`` and
  ``m = L r``. With L an upper bound computed each step (exactly 1 for 1-Lipschitz networks)
  the margin the loss asks for is the margin the certificate will prove.
* ``hkr``: ``alpha * mean(max(0, m - (z_y - max_{j != y} z_j))) - (1 - alpha) * mean(z_y -
  mean_{j != y} z_j)``: a hinge at margin m plus the Kantorovich-Rubinstein term that spreads
  the classes apart (Serrurier et al., the HKR loss). Only for 1-Lipschitz networks: without a
  Lipschitz constraint the second term is unbounded below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from api_schemas.training_config import MARGIN_LOSSES
from lipspline.nn.label_rule import label_of


def resolve_loss(loss: str, task: str, n_outputs: int, lipschitz_fixed: bool = False) -> str:
    """The data loss actually used: ``auto`` picks BCE (one logit), CE or MSE.

    A classifier whose Lipschitz constant is fixed by construction (``lipschitz_fixed``: the
    one_lipschitz mode) gets ``tau_cross_entropy`` instead: its logits can differ by no more than
    sqrt(2) times the input distance, so plain CE stays nearly flat and such a network under-fits
    (two moons: 77 % clean with CE, 99 % with the temperature; breast cancer 82 % and 98 %).
    """
    if loss != "auto":
        return loss
    if task == "classification":
        if lipschitz_fixed:
            return "tau_cross_entropy"
        return "bce" if n_outputs == 1 else "cross_entropy"
    return "mse"


@dataclass(frozen=True)
class MarginSpec:
    """What a margin loss needs besides the logits: the radius it trains for and its temperature.

    ``radius`` is in the standardised units the network sees (raw radius / smallest input scale,
    the most a raw step of that length can move the standardised input). ``factor`` is sqrt(2)
    for several logits and 1 for one. The margin in logit units is ``factor * L * radius``.
    """

    radius: float = 0.0
    temperature: float = 1.0
    hkr_alpha: float = 0.9
    factor: float = math.sqrt(2.0)

    def logit_margin(self, lipschitz: Tensor | float) -> Tensor | float:
        return self.factor * lipschitz * self.radius


def data_loss(name: str, outputs: Tensor, targets: Tensor, spec: MarginSpec | None = None,
              lipschitz: Tensor | float = 1.0) -> Tensor:
    """Mean data loss; classification targets are class indices.

    The margin losses read ``spec`` (default: radius 0, temperature 1) and ``lipschitz``, the
    network's Lipschitz bound in standardised units (differentiable or a constant).
    """
    if name in ("bce", "cross_entropy"):
        # one loss under two names: a binary classifier has one logit z (the two-class softmax of
        # (0, z)), where cross-entropy is BCE; several logits take the softmax form
        if outputs.shape[-1] == 1:
            return nn.functional.binary_cross_entropy_with_logits(outputs.squeeze(-1), targets.to(outputs.dtype))
        return nn.functional.cross_entropy(outputs, targets.long())
    if name == "mse":
        return nn.functional.mse_loss(outputs.squeeze(-1), targets.to(outputs.dtype))
    if name == "mae":
        return nn.functional.l1_loss(outputs.squeeze(-1), targets.to(outputs.dtype))
    if name in MARGIN_LOSSES:
        spec = spec or MarginSpec()
        margin = 0.0 if name == "tau_cross_entropy" else spec.logit_margin(lipschitz)
        if outputs.shape[-1] == 1:
            return _binary_margin_loss(name, outputs.squeeze(-1), targets, margin, spec)
        return _multiclass_margin_loss(name, outputs, targets.long(), margin, spec)
    raise ValueError(f"unknown loss {name!r}")


def _multiclass_margin_loss(name: str, z: Tensor, y: Tensor, margin: Tensor | float, spec: MarginSpec) -> Tensor:
    others = 1.0 - nn.functional.one_hot(y, z.shape[-1]).to(z.dtype)
    if name == "hkr":
        true = z.gather(1, y[:, None]).squeeze(1)
        runner_up = z.masked_fill(others == 0, -torch.inf).max(dim=1).values
        hinge = torch.relu(margin - (true - runner_up)).mean()
        spread = (true - (z * others).sum(dim=1) / others.sum(dim=1)).mean()
        return spec.hkr_alpha * hinge - (1.0 - spec.hkr_alpha) * spread
    tau = spec.temperature
    return nn.functional.cross_entropy(tau * (z + margin * others), y) / tau


def _binary_margin_loss(name: str, z: Tensor, y: Tensor, margin: Tensor | float, spec: MarginSpec) -> Tensor:
    sign = 2.0 * y.to(z.dtype) - 1.0
    if name == "hkr":
        return spec.hkr_alpha * torch.relu(margin - sign * z).mean() - (1.0 - spec.hkr_alpha) * (sign * z).mean()
    tau = spec.temperature
    return nn.functional.binary_cross_entropy_with_logits(tau * (z - sign * margin), y.to(z.dtype)) / tau


@torch.no_grad()
def certified_fraction(outputs: Tensor, targets: Tensor, spec: MarginSpec, lipschitz: float) -> float:
    """Share of rows classified correctly with a margin of at least ``spec``'s (training-time estimate).

    The monitor of ``training.monitor = certified_accuracy``: the float32 training graph and the
    training bound, not the served certificate (which the stored curve uses).
    """
    if outputs.shape[0] == 0:
        return 0.0
    needed = spec.logit_margin(lipschitz)
    if outputs.shape[-1] == 1:
        z = outputs.squeeze(-1)
        ok = (label_of(outputs) == targets) & (z.abs() >= needed)
    else:
        top = outputs.topk(2, dim=1)
        ok = (top.indices[:, 0] == targets) & (top.values[:, 0] - top.values[:, 1] >= needed)
    return float(ok.double().mean())
