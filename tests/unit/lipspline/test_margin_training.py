"""Training for a certified radius: the margin losses, the orthogonal 1-Lipschitz layers,
the ``robustness.target_radius`` defaults, the config checks and the certified-accuracy monitor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from api_schemas import TrainingConfig
from lipspline.certificates import certify_global
from lipspline.data import from_arrays
from lipspline.nn.layers import OneLipschitzLinear, aol_rescale, bjorck_orthonormalize, proven_norm_bound
from lipspline.objectives import data_loss
from lipspline.objectives.losses import MarginSpec, certified_fraction
from lipspline.training.config_checks import config_problems
from lipspline.training.convergence import ConvergenceMonitor
from lipspline.training.loop import fit
from lipspline.training.robust_accuracy import NOTHING_CERTIFIED, certified_accuracy, robustness_metrics


# ---- losses -------------------------------------------------------------------------------
def test_lipschitz_margin_is_cross_entropy_with_the_other_logits_raised():
    z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]])
    y = torch.tensor([0, 2])
    spec = MarginSpec(radius=0.25, temperature=3.0)
    lipschitz = 2.0
    m = math.sqrt(2) * lipschitz * 0.25
    shifted = z + m * torch.tensor([[0.0, 1, 1], [1, 1, 0]])
    expected = nn.functional.cross_entropy(3.0 * shifted, y) / 3.0
    assert float(data_loss("lipschitz_margin", z, y, spec, lipschitz)) == pytest.approx(float(expected), rel=1e-6)
    # tau_cross_entropy ignores the margin
    plain = nn.functional.cross_entropy(3.0 * z, y) / 3.0
    assert float(data_loss("tau_cross_entropy", z, y, spec, lipschitz)) == pytest.approx(float(plain), rel=1e-6)


def test_hkr_is_hinge_at_the_margin_minus_the_kr_spread():
    z = torch.tensor([[1.0, 0.6, -0.4], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 2])
    spec = MarginSpec(radius=0.5, hkr_alpha=0.8)  # margin sqrt(2) * 1 * 0.5
    m = math.sqrt(2) * 0.5
    # row 0: gap to runner-up 0.4; row 1: true 1.0, runner-up 2.0, gap -1
    hinge = (max(0.0, m - 0.4) + max(0.0, m + 1.0)) / 2
    spread = ((1.0 - (0.6 - 0.4) / 2) + (1.0 - (0.0 + 2.0) / 2)) / 2
    expected = 0.8 * hinge - 0.2 * spread
    assert float(data_loss("hkr", z, y, spec, 1.0)) == pytest.approx(expected, rel=1e-6)


def test_binary_margin_losses_push_the_logit_past_l_r_on_the_label_side():
    z = torch.tensor([[0.3], [-0.2]])
    y = torch.tensor([1, 0])
    spec = MarginSpec(radius=0.1, temperature=2.0, factor=1.0)
    # the label side must exceed L r = 0.5 * 0.1 = 0.05: BCE on tau (z - s m)
    m = 0.05
    expected = nn.functional.binary_cross_entropy_with_logits(
        2.0 * torch.tensor([0.3 - m, -0.2 + m]), torch.tensor([1.0, 0.0])
    ) / 2.0
    assert float(data_loss("lipschitz_margin", z, y, spec, 0.5)) == pytest.approx(float(expected), rel=1e-6)


def test_certified_fraction_counts_correct_rows_with_the_needed_margin():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.9], [0.0, 1.0]])
    y = torch.tensor([0, 0, 0])
    spec = MarginSpec(radius=0.5)
    # needed margin sqrt(2) * 1 * 0.5 = 0.707: only row 0 is correct with that margin
    assert certified_fraction(z, y, spec, 1.0) == pytest.approx(1 / 3)


# ---- layers -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(12, 5), (5, 12), (8, 8)])
def test_bjorck_makes_the_weight_orthonormal_on_its_smaller_side(shape):
    torch.manual_seed(0)
    w = bjorck_orthonormalize(torch.randn(*shape, dtype=torch.float64), iterations=40)
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    assert torch.allclose(gram, torch.eye(min(shape), dtype=torch.float64), atol=1e-9)


def test_aol_rescaling_has_norm_at_most_one():
    torch.manual_seed(1)
    for _ in range(20):
        w = aol_rescale(torch.randn(7, 11, dtype=torch.float64) * 3)
        assert float(torch.linalg.matrix_norm(w, 2)) <= 1 + 1e-12


@pytest.mark.parametrize("kind", ["spectral", "bjorck", "aol"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_parametrization_serves_a_weight_with_a_proven_norm_at_most_one(kind, dtype):
    torch.manual_seed(2)
    layer = OneLipschitzLinear(9, 6, parametrization=kind).to(dtype)
    with torch.no_grad():
        layer.weight.mul_(5.0).add_(torch.randn_like(layer.weight))
    layer.eval()
    served = layer.served_weight()
    assert served.dtype == dtype
    assert proven_norm_bound(served.to(torch.float64)) <= 1.0
    # the served weight is the training weight up to float rounding (same map, float64, proven)
    layer.train()
    assert torch.allclose(layer.effective_weight().detach(), served, atol=1e-4)


def test_an_unknown_parametrization_is_refused():
    with pytest.raises(ValueError, match="parametrization"):
        OneLipschitzLinear(3, 3, parametrization="cayley")


# ---- target_radius defaults and checks ----------------------------------------------------
def test_target_radius_fills_only_what_the_request_left_unset():
    config = TrainingConfig.model_validate({"robustness": {"target_radius": 0.3}})
    assert (config.objective.mode, config.objective.loss) == ("one_lipschitz", "lipschitz_margin")
    assert (config.architecture.hidden, config.architecture.activation) == ([128, 128], "groupsort")
    explicit = TrainingConfig.model_validate(
        {"robustness": {"target_radius": 0.3}, "objective": {"loss": "hkr"}, "architecture": {"hidden": [32]}}
    )
    assert (explicit.objective.mode, explicit.objective.loss) == ("one_lipschitz", "hkr")
    assert explicit.architecture.hidden == [32]
    # stored fully spelled out, validating again changes nothing
    assert TrainingConfig.model_validate(explicit.to_json()) == explicit
    # odd widths cannot pair units for GroupSort: the 1-Lipschitz splines take over
    odd = TrainingConfig.model_validate({"robustness": {"target_radius": 0.3}, "architecture": {"hidden": [33]}})
    assert odd.architecture.activation == "deepspline"
    # without a target radius the defaults are untouched
    assert TrainingConfig().objective.mode == "bv2"


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan")])
def test_target_radius_must_be_positive_and_finite(value):
    with pytest.raises(ValueError, match="target_radius"):
        TrainingConfig.model_validate({"robustness": {"target_radius": value}})


def test_task_checks_name_the_field_at_fault():
    radius = TrainingConfig.model_validate({"robustness": {"target_radius": 0.3}})
    assert [p.field for p in config_problems(radius, "regression")] == ["robustness.target_radius", "objective.loss"]
    assert config_problems(radius, "classification") == []
    margin = TrainingConfig.model_validate({"objective": {"loss": "lipschitz_margin"}})
    assert [p.field for p in config_problems(margin, "regression")] == ["objective.loss"]
    hkr = TrainingConfig.model_validate({"objective": {"loss": "hkr", "mode": "bv2"}})
    assert [p.field for p in config_problems(hkr, "classification")] == ["objective.loss"]
    monitor = TrainingConfig.model_validate({"training": {"monitor": "certified_accuracy"}})
    assert [p.field for p in config_problems(monitor, "classification")] == ["training.monitor"]
    for loss in ("mse", "mae"):
        wrong = TrainingConfig.model_validate({"objective": {"loss": loss}})
        assert [p.field for p in config_problems(wrong, "classification")] == ["objective.loss"]
        assert config_problems(wrong, "regression") == []
    for loss in ("cross_entropy", "bce"):
        wrong = TrainingConfig.model_validate({"objective": {"loss": loss}})
        assert [p.field for p in config_problems(wrong, "regression")] == ["objective.loss"]
        assert config_problems(wrong, "classification") == []


def test_cross_entropy_and_bce_are_one_loss_for_one_logit_or_several():
    logit = torch.tensor([[0.3], [-1.2], [2.0]])
    labels = torch.tensor([1, 0, 0])
    assert data_loss("cross_entropy", logit, labels) == pytest.approx(float(data_loss("bce", logit, labels)))
    two = torch.cat([torch.zeros_like(logit), logit], dim=1)  # the softmax of (0, z) is the sigmoid of z
    assert data_loss("bce", two, labels) == pytest.approx(float(data_loss("bce", logit, labels)), rel=1e-6)


# ---- training -----------------------------------------------------------------------------
def blobs(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    y = rng.integers(0, 3, n)
    x = centers[y] + rng.normal(scale=0.5, size=(n, 2))
    return from_arrays(x, y, task="classification")


def test_target_radius_training_certifies_the_validation_points_at_that_radius():
    data = blobs()
    radius = 0.4
    config = TrainingConfig.model_validate(
        {"robustness": {"target_radius": radius}, "architecture": {"hidden": [16, 16]},
         "training": {"epochs": 60, "seed": 0}}
    )
    result = fit(data, config)
    assert result.outcome.monitor == "validation_certified_accuracy"
    assert "certified_accuracy_at_target" in result.history[-1].validation_metrics
    lipschitz = certify_global(result.model.network).certified
    assert lipschitz <= 1.0
    stored = robustness_metrics(result.model, data, lipschitz)
    curve = stored["certified_accuracy"]
    assert radius in curve["radii"] and curve["target_radius"] == radius
    assert curve["certified_at_target"] >= 0.8
    assert stored["warnings"] == []


def _first_stall(series: list[list[float]], patience: int, min_improvement: float) -> int | None:
    """The first epoch (1-based) at which monitors fed ``series`` (one list each) have all stalled."""
    monitors = [ConvergenceMonitor(patience, patience, min_improvement) for _ in series]
    for epoch, values in enumerate(zip(*series, strict=True), start=1):
        for monitor, value in zip(monitors, values, strict=True):
            monitor.record(epoch, value, plateau=False)
        if all(monitor.converged for monitor in monitors):
            return epoch
    return None


def test_a_target_radius_run_stops_only_once_neither_certified_accuracy_nor_the_margin_loss_progresses():
    """The certified count saturates early on easy data; the run goes on while the margins still grow."""
    patience = 4
    config = TrainingConfig.model_validate(
        {"robustness": {"target_radius": 0.4}, "architecture": {"hidden": [16, 16]},
         "training": {"epochs": 300, "patience": patience, "seed": 0}}
    )
    result = fit(blobs(), config)
    assert result.outcome.stop_reason == "converged"
    rows = [report.validation_metrics for report in result.history]
    certified_error = [1.0 - r["certified_accuracy_at_target"] for r in rows]
    margin_loss = [r["loss"] for r in rows]
    certified_stall = _first_stall([certified_error], patience, 1e-2)
    # the count alone would have stopped the run earlier than it did ...
    assert certified_stall is not None and certified_stall < result.outcome.epochs_run
    # ... which ends at the first epoch where both have stalled
    assert _first_stall([certified_error, margin_loss], patience, 1e-2) == result.outcome.epochs_run


def test_lipschitz_margin_on_an_unconstrained_network_uses_its_own_bound():
    data = blobs(seed=1)
    config = TrainingConfig.model_validate(
        {"objective": {"mode": "none", "loss": "lipschitz_margin", "margin": 0.3},
         "architecture": {"hidden": [16], "activation": "relu"}, "training": {"epochs": 40, "seed": 0}}
    )
    plain = config.model_copy(update={"objective": config.objective.model_copy(update={"loss": "auto"})})
    margin_model, plain_model = fit(data, config).model, fit(data, plain).model
    certified = {}
    for name, model in (("margin", margin_model), ("plain", plain_model)):
        bound = certify_global(model.network).certified
        curve = certified_accuracy(model, data.X, data.encoded_targets(), bound, [0.3], local=False)
        certified[name] = curve.global_[0]
    # the margin loss pays for the certificate the plain loss never asks for
    assert certified["margin"] > certified["plain"]


def test_a_curve_that_certifies_nothing_says_so():
    data = blobs(seed=2)
    config = TrainingConfig.model_validate({"architecture": {"hidden": [8]}, "training": {"epochs": 2}})
    model = fit(data, config).model
    stored = robustness_metrics(model, data, float("inf"))
    assert stored["certified_accuracy"]["warning"] == NOTHING_CERTIFIED
    assert stored["warnings"] == [NOTHING_CERTIFIED]


def test_the_margin_plan_follows_the_target_radius_rule():
    from lipspline.data import fit_scaling
    from lipspline.objectives import objective_for
    from lipspline.training.loop import ONE_LIPSCHITZ_TEMPERATURE_SCALE, TARGET_MARGIN_FACTOR, plan_margins
    from lipspline.training.robust_accuracy import classification_scale

    data = blobs(seed=3)
    config = TrainingConfig.model_validate({"robustness": {"target_radius": 0.2}})
    scaling = fit_scaling(data, isotropic=True)
    x = torch.as_tensor((data.X - scaling.input_mean) / scaling.input_scale)
    y = torch.as_tensor(data.encoded_targets())
    plan = plan_margins(config, objective_for(config.objective), scaling, x, y, 3, "classification", "lipschitz_margin")
    to_standard = 1.0 / float(np.min(scaling.input_scale))
    assert plan.loss.radius == pytest.approx(TARGET_MARGIN_FACTOR * 0.2 * to_standard)
    d = classification_scale(x.numpy(), y.numpy())
    assert plan.loss.temperature == pytest.approx(ONE_LIPSCHITZ_TEMPERATURE_SCALE / d)
    assert plan.monitor is not None and plan.monitor.radius == pytest.approx(0.2 * to_standard)
    assert plan.lipschitz == 1.0 and plan.loss.factor == pytest.approx(math.sqrt(2))
    explicit = TrainingConfig.model_validate(
        {"robustness": {"target_radius": 0.2}, "objective": {"margin": 0.05, "temperature": 3.0}}
    )
    plan = plan_margins(
        explicit, objective_for(explicit.objective), scaling, x, y, 3, "classification", "lipschitz_margin"
    )
    assert (plan.loss.radius, plan.loss.temperature) == (pytest.approx(0.05 * to_standard), 3.0)
    free = TrainingConfig.model_validate({"objective": {"mode": "bv2", "loss": "lipschitz_margin", "margin": 0.1}})
    plan = plan_margins(
        free, objective_for(free.objective), fit_scaling(data), x, y, 3, "classification", "lipschitz_margin"
    )
    assert plan.lipschitz is None and plan.loss.temperature == 1.0 and plan.monitor is None


def test_auto_loss_gives_a_one_lipschitz_classifier_a_temperature():
    from lipspline.data import fit_scaling
    from lipspline.objectives import objective_for, resolve_loss
    from lipspline.training.loop import ONE_LIPSCHITZ_TEMPERATURE_SCALE, plan_margins
    from lipspline.training.robust_accuracy import classification_scale

    assert resolve_loss("auto", "classification", 3, lipschitz_fixed=True) == "tau_cross_entropy"
    assert resolve_loss("auto", "classification", 1, lipschitz_fixed=True) == "tau_cross_entropy"
    assert resolve_loss("auto", "classification", 3, lipschitz_fixed=False) == "cross_entropy"
    assert resolve_loss("auto", "regression", 1, lipschitz_fixed=True) == "mse"
    assert resolve_loss("cross_entropy", "classification", 3, lipschitz_fixed=True) == "cross_entropy"
    data = blobs(seed=4)
    config = TrainingConfig.model_validate({"objective": {"mode": "one_lipschitz"}})
    scaling = fit_scaling(data, isotropic=True)
    x = torch.as_tensor((data.X - scaling.input_mean) / scaling.input_scale)
    y = torch.as_tensor(data.encoded_targets())
    strategy = objective_for(config.objective)
    plan = plan_margins(config, strategy, scaling, x, y, 3, "classification", "tau_cross_entropy")
    d = classification_scale(x.numpy(), y.numpy())
    assert plan.loss.temperature == pytest.approx(ONE_LIPSCHITZ_TEMPERATURE_SCALE / d)
    assert plan.loss.radius == 0.0 and plan.monitor is None


def test_a_default_one_lipschitz_classifier_fits_two_moons():
    """With plain cross-entropy this network stayed near 80 % clean (its logits are too small to be sharp)."""
    from sklearn.datasets import make_moons

    x, y = make_moons(600, noise=0.1, random_state=0)
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    data = from_arrays(x[:400], y[:400], task="classification")
    config = TrainingConfig.model_validate(
        {"objective": {"mode": "one_lipschitz"}, "architecture": {"hidden": [32, 32]}, "device": "cpu",
         "training": {"seed": 0, "epochs": 40}}
    )
    result = fit(data, config)
    assert result.outcome.loss == "tau_cross_entropy"  # what auto chose, reported with the outcome
    predicted = np.asarray(result.model.predict(x[400:]))
    assert float((predicted == y[400:]).mean()) >= 0.95


def test_isotropic_scaling_of_a_classifier_by_the_largest_feature_std():
    from lipspline.data import Dataset, fit_scaling
    from lipspline.data.scaling import MIN_ISOTROPIC_CLASSIFIER_STD as FLOOR

    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 3)) * np.array([1.0, 0.5, 0.25])  # largest std about 1
    labels = (base[:, 0] > 0).astype(np.int64)
    for units in (4.0, 0.3, 0.01):
        data = Dataset(base * units, labels, "classification", ["a", "b", "c"], [0, 1])
        s = float((base * units).std(axis=0).max())
        scaling = fit_scaling(data, isotropic=True)
        if s >= 1:  # inputs shrunk to unit std, logits as they are: the constant can only shrink
            expected = (s, 1.0)
        elif s >= FLOOR:  # left as they are
            expected = (1.0, 1.0)
        else:  # inputs grown to std FLOOR, logits shrunk by the same factor: the constant is the network's
            expected = (s / FLOOR, s / FLOOR)
        assert np.allclose(scaling.input_scale, expected[0]) and scaling.target_scale == pytest.approx(expected[1])
        assert scaling.target_mean == 0.0


def test_a_one_lipschitz_classifier_learns_the_same_in_any_small_units():
    """Two moons in units 100 and 10,000 times smaller than their own: the same network sees the same
    numbers, so it reaches the same accuracy and certifies the same share of rows at the same (scaled)
    radius. Before the floor on the scaled std, the smaller units trained to chance accuracy."""
    from sklearn.datasets import make_moons

    from lipspline.data import Dataset
    from lipspline.training.robust_accuracy import classification_scale

    x, y = make_moons(300, noise=0.1, random_state=0)
    curves = []
    for units in (1e-2, 1e-4):
        data = Dataset(x * units, y, "classification", ["a", "b"], [0, 1])
        radius = classification_scale(x * units, y) / 8
        config = TrainingConfig.model_validate(
            {"robustness": {"target_radius": radius}, "training": {"epochs": 80, "seed": 0}, "device": "cpu"}
        )
        model = fit(data, config).model
        lipschitz = certify_global(model.network).certified
        assert lipschitz <= 1.0  # still a 1-Lipschitz map in the data's own units
        curve = robustness_metrics(model, data, lipschitz)["certified_accuracy"]
        curves.append((curve["accuracy"], curve["certified_at_target"]))
    assert curves[0] == curves[1]
    assert curves[0][0] >= 0.9 and curves[0][1] >= 0.8, curves
