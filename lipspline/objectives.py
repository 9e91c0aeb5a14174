"""Training objectives, chosen by ``objective.mode`` (DESIGN 1.2).

Every objective is ``data_loss + sum(penalty terms)``. The data loss is the
*mean* over the batch (not the paper's sum), so lambda and mu are per-sample
weights: the paper's lambda corresponds to ours times the number of samples.
Each term is returned by name so the training loop can report it separately.

Modes and their terms:

- ``bv2``: ``weight_decay`` = mu * sum_l ||W_l||_F^2 and ``bv2`` = sum_l lambda_l
  * outer_n ||sigma_{n,l}||_BV2, where ``outer`` is the sum (l1, paper 000 eq.
  20) or the Euclidean norm (l2) over the neurons of layer l.
- ``tv2``: the same with TV2 (the seminorm, without |sigma(0)| + |sigma(1)|).
- ``lipschitz_coupled`` (paper 002): ``lipschitz_product`` = lambda * prod_l
  ||W_l||_2. Paper 002 writes (1/lambda) loss + prod; multiplying that by
  lambda gives loss + lambda * prod, the same minimisers with the data term on
  the same scale as every other mode. The gradient flows through every
  factor (the coupling).
- ``layerwise_spectral``: ``spectral_sum`` = lambda * sum_l ||W_l||_2.
- ``maxnorm``: no penalty; after every optimizer step each unit's incoming
  weight vector is projected onto the ball ||w_n||_2 <= max_norm.
- ``one_lipschitz`` (paper 003): the network itself enforces ||W_l||_2 <= 1 and
  spline slopes in [-1, 1] (see layers.py, splines.py); the penalty is
  ``tv2`` = lambda * sum of TV2 over all splines.
- ``none``: the data loss alone.

Weight decay (mu) belongs to the BV2/TV2 objectives of paper 000; the other
modes carry only their own regulariser, as in their papers.

``auto_lambda`` (Theorem 4 of paper 000: at a local minimum lambda_l
||sigma_l||_{BV2,1} = 2 mu_{l+1} ||W_{l+1}||_F^2): at the start of every epoch,
from the current parameters, each spline layer l gets lambda_l = 2 mu
||W_{l+1}||_F^2 / ||sigma_l||_{BV2,1} (TV2 in ``tv2`` mode), where W_{l+1} is the
affine layer that reads layer l's output. The value is held fixed (detached)
for the whole epoch so the epoch optimises one well-defined objective; it is
kept when the spline norm is ~0 (nothing to balance). Before the first epoch
it equals ``objective.lambda``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from api_schemas.training_config import ObjectiveConfig
from lipspline.layers import operator_norm_upper
from lipspline.networks import SplineNetwork
from lipspline.splines import LinearSpline


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


def _outer(norms: Tensor, outer_norm: str) -> Tensor:
    return norms.sum() if outer_norm == "l1" else torch.sqrt((norms**2).sum() + 1e-30)


class Objective:
    """Penalties, per-layer lambdas and projections for one training run."""

    def __init__(self, config: ObjectiveConfig, network: SplineNetwork) -> None:
        self.config = config
        self.mode = config.mode
        # lambda_l per activation layer (only spline layers use theirs)
        self.lambdas: list[float] = [config.lambda_ for _ in network.activations]

    # ---- penalties --------------------------------------------------------------
    def penalties(self, network: SplineNetwork) -> dict[str, Tensor]:
        """Each weighted penalty term of this mode, by name (differentiable)."""
        mode = self.mode
        cfg = self.config
        terms: dict[str, Tensor] = {}
        if mode in ("bv2", "tv2"):
            terms["weight_decay"] = cfg.mu * sum((w**2).sum() for w in network.weights())
            spline_terms = [
                self.lambdas[i] * _outer(self._spline_norms(a, mode), cfg.outer_norm)
                for i, a in enumerate(network.activations)
                if isinstance(a, LinearSpline)
            ]
            if spline_terms:
                terms[mode] = sum(spline_terms)
        elif mode == "one_lipschitz":
            splines = network.splines()
            if splines:
                terms["tv2"] = cfg.lambda_ * sum(s.tv2(differentiable=True).sum() for s in splines)
        elif mode == "lipschitz_coupled":
            product = torch.ones((), device=network.layers[0].weight.device)
            for w in network.weights():
                product = product * operator_norm_upper(w)
            terms["lipschitz_product"] = cfg.lambda_ * product
        elif mode == "layerwise_spectral":
            terms["spectral_sum"] = cfg.lambda_ * sum(operator_norm_upper(w) for w in network.weights())
        return terms

    @staticmethod
    def _spline_norms(spline: LinearSpline, mode: str) -> Tensor:
        return spline.bv2_norm(differentiable=True) if mode == "bv2" else spline.tv2(differentiable=True)

    # ---- hooks called by the training loop --------------------------------------
    @torch.no_grad()
    def on_epoch_start(self, network: SplineNetwork) -> None:
        """Theorem-4 balancing of lambda from mu (see module docstring)."""
        if not (self.config.auto_lambda and self.mode in ("bv2", "tv2")):
            return
        weights = network.weights()
        for i, activation in enumerate(network.activations):
            if not isinstance(activation, LinearSpline):
                continue
            spline_norm = float(self._spline_norms(activation, self.mode).sum())
            if spline_norm > 1e-12 and math.isfinite(spline_norm):
                next_weight = float((weights[i + 1] ** 2).sum())
                self.lambdas[i] = 2.0 * self.config.mu * next_weight / spline_norm

    @torch.no_grad()
    def after_step(self, network: SplineNetwork) -> None:
        """MaxNorm: project each unit's incoming weights onto ||w_n||_2 <= c."""
        if self.mode != "maxnorm":
            return
        limit = self.config.max_norm
        for layer in network.layers:
            rows = layer.weight.flatten(1)
            norms = rows.norm(dim=1, keepdim=True)
            factor = torch.clamp(limit / norms.clamp(min=1e-30), max=1.0)
            layer.weight.mul_(factor.view(-1, *([1] * (layer.weight.dim() - 1))))

    def state_dict(self) -> dict:
        return {"lambdas": list(self.lambdas)}

    def load_state_dict(self, state: dict) -> None:
        self.lambdas = [float(v) for v in state["lambdas"]]
