"""Certified robust accuracy, checked from outside: an attack inside a certified ball never flips a label.

The attack is projected gradient ascent on the served map itself (float64, the very function
the endpoint returns): from each point counted as certified at radius r it pushes the margin
of the true class down, projecting back onto the l2 ball of radius r after every step, and
checks the served label at every iterate. Random restarts on the sphere add points the
gradient might miss. A counted point that the attack flips would mean an unsound count.
"""

from __future__ import annotations

import numpy as np
import pytest

from api_schemas import TrainingConfig
from lipspline.certificates import certify_global
from lipspline.data import Dataset, make_circle
from lipspline.training.loop import fit
from lipspline.training.robust_accuracy import (
    CLASSIFICATION_FRACTIONS,
    certified_accuracy,
    classification_scale,
    default_radii,
    robustness_metrics,
)

CONFIG = {
    "architecture": {"hidden": [4]},
    "spline": {"knots": 11, "range": 3.0},
    "training": {"epochs": 8, "batch_size": 32, "lr": 0.02, "seed": 0, "validation_split": 0.25},
    "device": "cpu",
}


@pytest.fixture(scope="module")
def trained() -> tuple:
    data = make_circle(240, seed=3)
    model = fit(data, TrainingConfig.model_validate(CONFIG)).model
    return data, model, certify_global(model.network).certified


def _margin_and_gradient(model, x: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Margin of the true class (positive: correctly classified) and its gradient, from the served map."""
    served = model.served_map()
    outputs = served.outputs(x)
    jac = served.jacobians(x)  # (B, outputs, inputs)
    if outputs.shape[1] == 1:
        sign = np.where(label == 1, 1.0, -1.0)
        return sign * outputs[:, 0], sign[:, None] * jac[:, 0, :]
    true = outputs[np.arange(len(x)), label]
    other = outputs.copy()
    other[np.arange(len(x)), label] = -np.inf
    runner = other.argmax(axis=1)
    grad = jac[np.arange(len(x)), label] - jac[np.arange(len(x)), runner]
    return true - other[np.arange(len(x)), runner], grad


def _attack_flips(
    model, x: np.ndarray, label: np.ndarray, radius: float, steps: int = 40, restarts: int = 4
) -> np.ndarray:  # noqa: E501
    """Per row: whether any PGD iterate inside the l2 ball of ``radius`` is labelled otherwise."""
    rng = np.random.default_rng(0)
    flipped = np.zeros(len(x), dtype=bool)
    for restart in range(restarts):
        delta = np.zeros_like(x)
        if restart:
            direction = rng.normal(size=x.shape)
            delta = radius * direction / np.linalg.norm(direction, axis=1, keepdims=True)
        for _ in range(steps):
            margin, grad = _margin_and_gradient(model, x + delta, label)
            flipped |= margin <= 0
            norm = np.linalg.norm(grad, axis=1, keepdims=True)
            delta = delta - (radius / 8) * grad / np.where(norm > 0, norm, 1.0)
            length = np.linalg.norm(delta, axis=1, keepdims=True)
            delta = delta * np.minimum(1.0, radius / np.where(length > 0, length, 1.0))
        margin, _ = _margin_and_gradient(model, x + delta, label)
        flipped |= margin <= 0
    return flipped


def test_no_attack_inside_the_radius_flips_a_point_counted_as_certified(trained: tuple) -> None:
    data, model, lipschitz = trained
    labels = data.encoded_targets()
    radii = default_radii(data.X, labels, "classification")
    result = certified_accuracy(model, data.X, labels, lipschitz, radii, local=True)
    checked = 0
    for j, radius in enumerate(radii):
        if radius <= 0:
            continue
        counted = result.certified[:, j]
        assert counted.sum() >= 1, "nothing certified: the test would check nothing"
        flips = _attack_flips(model, data.X[counted], labels[counted], radius)
        assert not flips.any(), f"radius {radius}: {int(flips.sum())} certified points flipped by the attack"
        checked += int(counted.sum())
    assert checked > 0


def test_the_attack_does_flip_points_it_should(trained: tuple) -> None:
    """The attack is strong enough to matter: beyond the largest radius some correct points do flip."""
    data, model, _ = trained
    labels = data.encoded_targets()
    big = 4 * classification_scale(data.X, labels)
    assert _attack_flips(model, data.X, labels, big).mean() > 0.2


def test_the_curve_is_monotone_and_starts_at_the_clean_accuracy(trained: tuple) -> None:
    data, model, lipschitz = trained
    labels = data.encoded_targets()
    radii = default_radii(data.X, labels, "classification")
    result = certified_accuracy(model, data.X, labels, lipschitz, radii)
    assert radii[0] == 0.0 and len(radii) == len(CLASSIFICATION_FRACTIONS)
    assert result.global_[0] <= result.accuracy
    assert all(a >= b for a, b in zip(result.global_, result.global_[1:], strict=False))
    assert result.local is not None
    assert all(loc >= glo for loc, glo in zip(result.local, result.global_, strict=True))


def test_metrics_use_the_validation_split_or_say_training(trained: tuple) -> None:
    data, model, lipschitz = trained
    stored = robustness_metrics(model, data, lipschitz)["certified_accuracy"]
    assert stored["split"] == "validation" and stored["points"] == 60
    no_split = model.config.model_copy(
        update={"training": model.config.training.model_copy(update={"validation_split": 0.0})}
    )
    model.config = no_split
    try:
        stored = robustness_metrics(model, data, lipschitz)["certified_accuracy"]
    finally:
        model.config = TrainingConfig.model_validate(CONFIG)
    assert stored["split"] == "training" and stored["points"] == 240


def test_extra_radii_join_the_default_curve_and_are_read_exactly(trained: tuple) -> None:
    data, model, lipschitz = trained
    default = robustness_metrics(model, data, lipschitz)["certified_accuracy"]
    extra = [0.0123, default["radii"][2]]  # one new radius, one the default curve already has
    model.config = model.config.model_copy(
        update={"robustness": model.config.robustness.model_copy(update={"extra_radii": extra})}
    )
    try:
        stored = robustness_metrics(model, data, lipschitz)["certified_accuracy"]
    finally:
        model.config = TrainingConfig.model_validate(CONFIG)
    assert stored["radii"] == sorted({*default["radii"], 0.0123})
    assert stored["radius_rule"].endswith("plus robustness.extra_radii")
    for r, value in zip(default["radii"], default["global"], strict=True):  # the default points are unchanged
        assert stored["global"][stored["radii"].index(r)] == value
    at = stored["global"][stored["radii"].index(0.0123)]
    below = [v for r, v in zip(stored["radii"], stored["global"], strict=True) if r < 0.0123]
    above = [v for r, v in zip(stored["radii"], stored["global"], strict=True) if r > 0.0123]
    assert min(below) >= at >= max(above)  # in its place on the monotone curve


def test_an_unbounded_certificate_certifies_nothing(trained: tuple) -> None:
    data, model, _ = trained
    stored = robustness_metrics(model, data, None)["certified_accuracy"]
    assert stored["lipschitz"] is None and all(v == 0.0 for v in stored["global"][1:])


def test_regression_tolerance_beside_the_error() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(120, 2))
    data = Dataset(X=x, y=x[:, 0] - 0.5 * x[:, 1], task="regression", feature_names=["a", "b"], classes=None)
    config = TrainingConfig.model_validate({**CONFIG, "robustness": {"radii": [0.01, 0.1]}})
    model = fit(data, config).model
    lipschitz = certify_global(model.network).certified
    stored = robustness_metrics(model, data, lipschitz)["certified_tolerance"]
    assert stored["epsilons"] == [0.01, 0.1] and stored["radius_rule"].startswith("given")
    small, large = stored["output_tolerance"]
    assert lipschitz * 0.01 <= small < large and large >= lipschitz * 0.1
    assert stored["mae"] > 0 and stored["rmse"] >= stored["mae"]


@pytest.fixture(scope="module", params=["bjorck", "aol"])
def target_trained(request: pytest.FixtureRequest) -> tuple:
    """A 3-class model trained for a target radius (GroupSort, orthogonal layers, margin loss)."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 240)
    x = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.7]])[labels] + rng.normal(scale=0.45, size=(240, 2))
    data = Dataset(X=x, y=labels, task="classification", feature_names=["a", "b"], classes=[0, 1, 2], name="three")
    target = classification_scale(x, labels) / 8
    config = TrainingConfig.model_validate({
        "architecture": {"hidden": [16, 16]}, "objective": {"one_lipschitz_layer": request.param},
        "robustness": {"target_radius": target}, "training": {"epochs": 40, "seed": 0}, "device": "cpu",
    })
    model = fit(data, config).model
    return data, model, certify_global(model.network).certified, target


def test_no_attack_flips_a_point_a_target_radius_model_counts_as_certified(target_trained: tuple) -> None:
    data, model, lipschitz, target = target_trained
    labels = data.encoded_targets()
    radii = sorted({*default_radii(data.X, labels, "classification"), target})
    result = certified_accuracy(model, data.X, labels, lipschitz, radii, local=True, target_radius=target)
    assert result.certified_at_target is not None and result.certified_at_target > 0.5
    for j, radius in enumerate(radii):
        counted = result.certified[:, j]
        if radius <= 0 or not counted.any():
            continue
        flips = _attack_flips(model, data.X[counted], labels[counted], radius)
        assert not flips.any(), f"radius {radius}: {int(flips.sum())} certified points flipped by the attack"
