"""The objective of one training run: the configured mode plus the state it carries across epochs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from api_schemas.training_config import ObjectiveConfig
from lipspline.objectives.strategy import RESERVED_TERM_NAMES, objective_for

if TYPE_CHECKING:
    from lipspline.objectives.strategy import SplineNetwork


class Objective:
    """Penalties, per-layer lambdas and training hooks for one run, delegated to the mode's strategy.

    The lambdas live here rather than in the strategy because they are run state: they change
    under ``auto_lambda`` and are saved in checkpoints (:meth:`state_dict`), while a strategy
    is rebuilt from the configuration alone whenever the network is.
    """

    def __init__(self, config: ObjectiveConfig, network: SplineNetwork) -> None:
        self.config = config
        self.mode = config.mode
        self.strategy = objective_for(config)
        self._allowed_terms = frozenset(self.strategy.term_names)
        # lambda_l per activation layer (only spline layers use theirs)
        self.lambdas: list[float] = [config.lambda_ for _ in network.activations]

    def penalties(self, network: SplineNetwork) -> dict[str, Tensor]:
        """Each weighted penalty term of this mode, by name (differentiable)."""
        terms = self.strategy.penalties(network, self.lambdas)
        if not self._allowed_terms.issuperset(terms):
            # An undeclared name could collide with the loop's own "data"/"total" entries.
            undeclared = sorted(set(terms) - self._allowed_terms)
            raise RuntimeError(
                f"objective {self.mode!r} returned terms {undeclared} that are not in its term_names "
                f"{list(self.strategy.term_names)} (reserved: {sorted(RESERVED_TERM_NAMES)})"
            )
        return terms

    @torch.no_grad()
    def on_epoch_start(self, network: SplineNetwork) -> None:
        """The mode's per-epoch hook (e.g. Theorem-4 balancing of lambda under ``auto_lambda``)."""
        self.strategy.on_epoch_start(network, self.lambdas)

    @torch.no_grad()
    def after_step(self, network: SplineNetwork) -> None:
        """The mode's per-step hook (e.g. the MaxNorm projection)."""
        self.strategy.after_step(network)

    def state_dict(self) -> dict:
        return {"lambdas": list(self.lambdas)}

    def load_state_dict(self, state: dict) -> None:
        self.lambdas = [float(v) for v in state["lambdas"]]
