"""Training objectives, chosen by ``objective.mode``.

Every objective is ``data_loss + sum(penalty terms)``; each term is returned by name so the
training loop can report it separately. A mode is an
:class:`~lipspline.objectives.strategy.ObjectiveStrategy` subclass registered under its name:
besides its penalty it says how the network must be built (layer classes, activation slope
bound), whether the data must be scaled isotropically, and what to do at each epoch start
and after each optimizer step. The network builder and the training loop ask the strategy,
so they never test mode names themselves.

The built-in modes live in :mod:`lipspline.objectives.modes`, one module per family:

- ``bv2``, ``tv2`` (:mod:`~lipspline.objectives.modes.spline_norms`): weight decay plus
  spline norms, with Theorem-4 balancing under ``auto_lambda``;
- ``lipschitz_coupled``, ``layerwise_spectral`` (:mod:`~lipspline.objectives.modes.spectral`):
  product or sum of the layers' spectral norms;
- ``maxnorm`` (:mod:`~lipspline.objectives.modes.maxnorm`): projection after every step;
- ``one_lipschitz`` (:mod:`~lipspline.objectives.modes.one_lipschitz`): a 1-Lipschitz
  network by construction, with a TV2 penalty;
- ``none`` (:mod:`~lipspline.objectives.modes.unregularized`): the data loss alone.

The request schema (``api_schemas.training_config.ObjectiveMode``) lists the modes a client
may ask for; a mode registered here but missing there can still be trained in-process.
"""

from __future__ import annotations

from lipspline.objectives import modes as _modes  # noqa: F401 - registers the built-in modes
from lipspline.objectives.losses import data_loss, resolve_loss
from lipspline.objectives.objective import Objective
from lipspline.objectives.strategy import (
    RESERVED_TERM_NAMES,
    LayerClasses,
    ObjectiveStrategy,
    objective_for,
    register_objective,
    registered_objectives,
    unregister_objective,
)

__all__ = [
    "RESERVED_TERM_NAMES",
    "LayerClasses",
    "Objective",
    "ObjectiveStrategy",
    "data_loss",
    "objective_for",
    "register_objective",
    "registered_objectives",
    "resolve_loss",
    "unregister_objective",
]
