"""What an objective mode is, and the registry that finds one by its configured name.

A mode touches training in more places than its penalty: it may constrain how the network
is built (1-Lipschitz layers, bounded activation slopes), how the data is scaled, and what
happens after every optimizer step. Gathering all of that in one :class:`ObjectiveStrategy`
subclass means the network builder and the training loop ask the mode instead of testing
mode names, and a new mode is one registered class with nothing to edit elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol, TypeVar

from torch import Tensor, nn

from api_schemas.training_config import ObjectiveConfig

if TYPE_CHECKING:
    from lipspline.nn.splines import LinearSpline


class SplineNetwork(Protocol):
    """What the objective modes read of a network (``lipspline.nn.networks.SplineNetwork`` is the one).

    Typed here rather than imported: the network module asks this package which layers a mode
    builds (``objective_for``), so importing it back would make the two import each other.
    """

    layers: nn.ModuleList
    activations: nn.ModuleList

    def weights(self) -> list[Tensor]: ...

    def splines(self) -> list[LinearSpline]: ...

#: Names the training loop itself reports next to the penalties; a mode may not emit them,
#: or its term would silently replace the data loss or the total in the loss report.
RESERVED_TERM_NAMES = frozenset({"data", "total"})


class LayerClasses(NamedTuple):
    """The affine layer types a network is built from (called like ``nn.Linear`` / ``nn.Conv2d``)."""

    linear: Callable[..., nn.Module]
    conv: Callable[..., nn.Module]


class ObjectiveStrategy:
    """One objective mode: its penalties, its demands on the network, and its training hooks.

    Subclasses set :attr:`name` (the ``objective.mode`` string that selects them) and
    :attr:`term_names`, and override only what they change; the defaults describe a mode that
    adds nothing to the data loss and builds an unconstrained network. An instance is cheap
    and holds only the objective's configuration; per-run state (the per-layer lambdas) is
    kept by :class:`~lipspline.objectives.Objective` and handed in, so a checkpoint captures it.
    """

    #: the ``objective.mode`` value that selects this strategy
    name: ClassVar[str]
    #: every loss-term name :meth:`penalties` may return, as reported in the loss history
    term_names: ClassVar[tuple[str, ...]] = ()
    #: bound on the slopes of learnable activations (splines, PReLU); ``None`` leaves them free
    activation_slope_bound: ClassVar[float | None] = None
    #: scale every feature (and a regression target) by one common factor, so the standardisation
    #: around the network cannot change the Lipschitz constant of the served map
    isotropic_scaling: ClassVar[bool] = False
    #: the standardised network's Lipschitz constant when the mode guarantees one by construction
    #: (the margin losses then need no estimate of it); ``None``: estimate it from the weights
    lipschitz_by_construction: ClassVar[float | None] = None

    def __init__(self, config: ObjectiveConfig) -> None:
        self.config = config

    def layer_classes(self) -> LayerClasses:
        """The affine layer types the network should be built from."""
        return LayerClasses(linear=nn.Linear, conv=nn.Conv2d)

    def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
        """Each weighted, differentiable penalty term by name; ``lambdas`` holds one weight per activation layer."""
        return {}

    def on_epoch_start(self, network: SplineNetwork, lambdas: list[float]) -> None:
        """Called (without gradients) before each epoch; may rebalance ``lambdas`` in place."""

    def after_step(self, network: SplineNetwork) -> None:
        """Called (without gradients) after every optimizer step, e.g. to project the weights."""


_Strategy = TypeVar("_Strategy", bound=type[ObjectiveStrategy])

_REGISTRY: dict[str, type[ObjectiveStrategy]] = {}


def register_objective(cls: _Strategy) -> _Strategy:
    """Class decorator: make ``cls`` the strategy for ``objective.mode == cls.name``.

    A name can be taken only once, so two modules cannot silently fight over a mode.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty string `name` to be registered")
    reserved = RESERVED_TERM_NAMES.intersection(cls.term_names)
    if reserved:
        raise ValueError(f"objective {name!r} may not report terms named {sorted(reserved)}")
    holder = _REGISTRY.get(name)
    if holder is not None and holder is not cls:
        raise ValueError(f"objective mode {name!r} is already registered by {holder.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def unregister_objective(name: str) -> None:
    """Remove a mode (tests and plugins that register one temporarily); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def registered_objectives() -> tuple[str, ...]:
    """Names of every registered mode, in registration order."""
    return tuple(_REGISTRY)


def objective_for(config: ObjectiveConfig) -> ObjectiveStrategy:
    """The strategy for ``config.mode``, configured by ``config``."""
    try:
        cls = _REGISTRY[config.mode]
    except KeyError:
        raise ValueError(f"unknown objective mode {config.mode!r}; registered modes: {', '.join(_REGISTRY)}") from None
    return cls(config)
