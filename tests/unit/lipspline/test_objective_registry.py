"""Objective modes are registered strategies: the network builder and fit() ask them, never test names."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import get_args

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from api_schemas import TrainingConfig
from api_schemas.training_config import ObjectiveMode
from lipspline.data import from_arrays
from lipspline.nn.activations import PReLU
from lipspline.nn.layers import OneLipschitzConv2d, OneLipschitzLinear
from lipspline.nn.networks import SplineNetwork
from lipspline.objectives import (
    LayerClasses,
    Objective,
    ObjectiveStrategy,
    objective_for,
    register_objective,
    registered_objectives,
    unregister_objective,
)
from lipspline.training.loop import fit

BUILT_IN = get_args(ObjectiveMode)


def _config(mode: str, activation: str = "deepspline", lam: float = 0.1, **objective) -> TrainingConfig:
    """A validated config whose mode is then swapped in, so modes unknown to the request schema work too."""
    config = TrainingConfig.model_validate(
        {
            "architecture": {"hidden": [6, 5], "activation": activation},
            "spline": {"knots": 9, "range": 2.0},
            "objective": {"mode": "none", "lambda": lam, **objective},
            "training": {"epochs": 3, "batch_size": 16, "lr": 1e-2, "seed": 2, "validation_split": 0.25},
            "device": "cpu",
        }
    )
    return config.model_copy(update={"objective": config.objective.model_copy(update={"mode": mode})})


# ---------------------------------------------------------------------------------------------
# the built-in modes
# ---------------------------------------------------------------------------------------------


def test_every_mode_a_client_may_request_is_registered_and_nothing_else_is_built_in():
    registered = set(registered_objectives())
    assert set(BUILT_IN) <= registered
    built_in = {
        name
        for name in registered
        if type(objective_for(_config(name).objective)).__module__.startswith("lipspline.objectives.modes")
    }
    assert built_in == set(BUILT_IN)


@pytest.mark.parametrize("mode", BUILT_IN)
def test_network_is_built_as_the_strategy_says(mode):
    strategy = objective_for(_config(mode).objective)
    net = SplineNetwork(_config(mode), 3, 1)
    linear = strategy.layer_classes().linear
    assert all(type(layer) is getattr(linear, "func", linear) for layer in net.layers)
    assert all(a.slope_bound == strategy.activation_slope_bound for a in net.splines())
    prelu_net = SplineNetwork(_config(mode, activation="prelu"), 3, 1)
    assert all(isinstance(a, PReLU) and a.slope_bound == strategy.activation_slope_bound for a in prelu_net.activations)
    # one_lipschitz is the only built-in mode that constrains the architecture or the scaling
    if mode == "one_lipschitz":
        classes = strategy.layer_classes()
        assert (classes.linear.func, classes.linear.keywords) == (OneLipschitzLinear, {"parametrization": "bjorck"})
        assert (classes.conv.func, classes.conv.keywords) == (OneLipschitzConv2d, {"parametrization": "aol"})
        assert all(layer.parametrization == "bjorck" for layer in net.layers)
        assert (strategy.activation_slope_bound, strategy.isotropic_scaling) == (1.0, True)
    else:
        assert strategy.layer_classes() == LayerClasses(nn.Linear, nn.Conv2d)
        assert (strategy.activation_slope_bound, strategy.isotropic_scaling) == (None, False)


@pytest.mark.parametrize("mode", BUILT_IN)
def test_penalties_use_only_declared_term_names(mode):
    config = _config(mode, mu=0.01)
    net = SplineNetwork(config, 3, 1)
    objective = Objective(config.objective, net)
    terms = objective.penalties(net)  # raises on an undeclared name
    assert set(terms) <= set(objective.strategy.term_names)
    assert not {"data", "total"} & set(objective.strategy.term_names)


def test_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown objective mode 'no_such_mode'"):
        objective_for(_config("no_such_mode").objective)


# ---------------------------------------------------------------------------------------------
# the registry itself
# ---------------------------------------------------------------------------------------------


def test_registry_refuses_clashes_reserved_terms_and_nameless_classes():
    class Clash(ObjectiveStrategy):
        name = "bv2"

    class Reserved(ObjectiveStrategy):
        name = "reserved_terms_mode"
        term_names = ("data",)

    class Nameless(ObjectiveStrategy):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_objective(Clash)
    with pytest.raises(ValueError, match="may not report"):
        register_objective(Reserved)
    with pytest.raises(TypeError, match="name"):
        register_objective(Nameless)
    assert "reserved_terms_mode" not in registered_objectives()
    assert objective_for(_config("bv2").objective).__class__ is not Clash


def test_a_term_the_mode_did_not_declare_is_refused():
    class Sneaky(ObjectiveStrategy):
        name = "sneaky_terms_mode"

        def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
            return {"data": torch.zeros(())}  # would overwrite the data loss in the loss report

    register_objective(Sneaky)
    try:
        config = _config("sneaky_terms_mode")
        net = SplineNetwork(config, 2, 1)
        with pytest.raises(RuntimeError, match="not in its term_names"):
            Objective(config.objective, net).penalties(net)
    finally:
        unregister_objective("sneaky_terms_mode")
    assert "sneaky_terms_mode" not in registered_objectives()


# ---------------------------------------------------------------------------------------------
# a new mode is one class: registering it is all fit() needs
# ---------------------------------------------------------------------------------------------


class _TaggedLinear(nn.Linear):
    """A plain linear layer whose type shows the network was built from the toy mode's classes."""


class _ToyL1(ObjectiveStrategy):
    """L1 penalty on the weights, exercising every hook a mode can have."""

    name = "toy_l1_weights"
    term_names = ("l1_weights",)
    activation_slope_bound = 0.5
    isotropic_scaling = True
    calls: dict[str, int] = {}

    def layer_classes(self) -> LayerClasses:
        return LayerClasses(linear=_TaggedLinear, conv=nn.Conv2d)

    def penalties(self, network: SplineNetwork, lambdas: Sequence[float]) -> dict[str, Tensor]:
        return {"l1_weights": self.config.lambda_ * sum(w.abs().sum() for w in network.weights())}

    def on_epoch_start(self, network: SplineNetwork, lambdas: list[float]) -> None:
        assert not torch.is_grad_enabled()
        self.calls["epoch"] = self.calls.get("epoch", 0) + 1

    def after_step(self, network: SplineNetwork) -> None:
        assert not torch.is_grad_enabled()
        self.calls["step"] = self.calls.get("step", 0) + 1


@pytest.fixture
def toy_mode() -> Iterator[type[_ToyL1]]:
    _ToyL1.calls = {}
    register_objective(_ToyL1)
    try:
        yield _ToyL1
    finally:
        unregister_objective(_ToyL1.name)


def _wide_regression(n: int = 64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)) * np.array([1.0, 4.0])  # unequal feature scales
    return from_arrays(x, 2.0 + np.sin(x[:, 0]) + 0.1 * x[:, 1], task="regression", name="toy")


def test_registering_a_mode_is_all_it_takes_to_train_with_it(toy_mode):
    data = _wide_regression()
    config = _config(toy_mode.name, lam=0.05)
    result = fit(data, config)
    net = result.model.network

    # construction: the mode's layer classes and slope bound
    assert [type(layer) for layer in net.layers] == [_TaggedLinear] * 3
    assert [a.slope_bound for a in net.splines()] == [0.5, 0.5]
    # data scaling: one common scale for every feature and the target
    scale = result.scaling
    assert np.all(scale.input_scale == scale.input_scale[0]) and scale.target_scale == scale.input_scale[0]
    # hooks and the loss report
    epochs, n_train = config.training.epochs, 48
    steps = math.ceil(n_train / config.training.batch_size)
    assert toy_mode.calls == {"epoch": epochs, "step": epochs * steps}
    assert [set(r.losses) for r in result.history] == [{"data", "l1_weights", "total"}] * epochs
    assert all(math.isfinite(v) for r in result.history for v in r.losses.values())
    assert result.model.predict(data.X[:3]) and result.model.metrics["epochs"] == epochs

    # the penalty reaches the optimizer: without it the weights' L1 norm stays far larger
    free = fit(data, _config(toy_mode.name, lam=0.0)).model.network
    l1 = [sum(float(w.detach().abs().sum()) for w in n.weights()) for n in (net, free)]
    assert l1[0] < 0.75 * l1[1]
