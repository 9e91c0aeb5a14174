"""Certified robust accuracy (classifiers) and certified output tolerance (regression).

Why: a Lipschitz bound is only useful to a user through what it guarantees on
their data. For a classifier that is the fraction of held-out points that are
classified correctly *and* provably keep their label under any l2 perturbation
of size r (Tsuzuku, Sato and Sugiyama, "Lipschitz-Margin Training"); plotted
against r it is the certified-accuracy curve. For a regression model it is how
far the returned outputs can move when the input moves by eps, beside the
validation error.

Soundness: a point counts at radius r only if ``served_radius`` of its returned
output is at least r. ``served_radius`` already includes the proven rounding bound
of the served float64 evaluation (``certificates/served_map.py``), so the statement
holds for what the endpoint returns, not only for the real-arithmetic network.
With ``local`` a point also counts when the *local* bound in the ball B(x, r)
certifies it (the radius is capped at r there, since that bound holds only inside
the ball); it is never counted on a weaker basis than the global one.

Default radii (when the config gives none), from the data's own scale:

* classification: ``d`` = median over evaluation points of the l2 distance to the
  nearest point of *another* class (on at most 512 points); the radii are
  ``d * (0, 1/16, 1/8, 1/4, 1/2)``. Beyond ``d / 2`` the balls of two such points
  may overlap, so no classifier can certify both: the curve ends where it must drop.
* regression: ``s`` = median l2 distance of a point to the mean input; eps are
  ``s * (1/100, 1/20, 1/10, 1/4)``.

``robustness.target_radius`` is always one of the radii (added to the default or given ones),
so the curve answers the question the model was trained for. A classifier that certifies no
point at any radius > 0 is sound but useless as a guarantee; its curve says so in
``warning`` and the model's ``metrics.warnings`` repeats it (the dashboard and sweeps show it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from api_schemas.training_config import RobustnessConfig
from lipspline.certificates import local_served_radius, served_output_bound, served_radius
from lipspline.data import Dataset, train_validation_split
from lipspline.nn.label_rule import label_of
from lipspline.nn.model import TrainedModel

CLASSIFICATION_FRACTIONS = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2)
REGRESSION_FRACTIONS = (0.01, 0.05, 0.1, 0.25)
#: points used to measure the data scale (pairwise distances: quadratic in this)
SCALE_POINTS = 512
CLASSIFICATION_RULE = "d * (0, 1/16, 1/8, 1/4, 1/2), d = median distance to the nearest point of another class"
NOTHING_CERTIFIED = (
    "certifies no validation point at any radius > 0: the bound is sound but guarantees nothing here; "
    "set robustness.target_radius (or objective.mode one_lipschitz) to train for a certified radius"
)
REGRESSION_RULE = "s * (0.01, 0.05, 0.1, 0.25), s = median distance of a point to the mean input"


@dataclass
class CertifiedAccuracy:
    """Classifier: clean and certified robust accuracy at each radius, and the per-point radii behind them."""

    split: str
    points: int
    radii: list[float]
    radius_rule: str
    lipschitz: float
    accuracy: float
    global_: list[float]
    local: list[float] | None
    local_note: str | None
    #: per evaluation point: correctly classified, and its certified radius from the global bound
    correct: np.ndarray = field(repr=False)
    global_radius: np.ndarray = field(repr=False)
    #: per point and radius (points x radii): certified by the global or the local bound
    certified: np.ndarray = field(repr=False)
    target_radius: float | None = None

    @property
    def best_curve(self) -> list[float]:
        """Per radius, the share certified by the best proof computed (local where it was run)."""
        return self.local if self.local is not None else self.global_

    @property
    def certified_at_target(self) -> float | None:
        if self.target_radius is None or self.target_radius not in self.radii:
            return None
        return self.best_curve[self.radii.index(self.target_radius)]

    @property
    def warning(self) -> str | None:
        """Set when no radius > 0 certifies a single point (and there are points)."""
        positive = [v for r, v in zip(self.radii, self.best_curve, strict=True) if r > 0]
        if self.points and positive and max(positive) == 0.0:
            return NOTHING_CERTIFIED
        return None

    def to_json(self) -> dict:
        return {
            "target_radius": self.target_radius,
            "certified_at_target": self.certified_at_target,
            "warning": self.warning,
            "split": self.split,
            "points": self.points,
            "radii": self.radii,
            "radius_rule": self.radius_rule,
            "lipschitz": _finite([self.lipschitz])[0],
            "accuracy": self.accuracy,
            "global": self.global_,
            "local": self.local,
            "local_note": self.local_note,
        }


@dataclass
class CertifiedTolerance:
    """Regression: the largest certified output change at each input eps, beside the validation error."""

    split: str
    points: int
    epsilons: list[float]
    radius_rule: str
    lipschitz: float
    #: per eps: the largest (over the points) proven l2 change of the returned outputs
    output_tolerance: list[float]
    #: per eps: the median over the points
    median_output_tolerance: list[float]
    mae: float
    rmse: float

    def to_json(self) -> dict:
        return {
            "split": self.split,
            "points": self.points,
            "epsilons": self.epsilons,
            "radius_rule": self.radius_rule,
            "lipschitz": _finite([self.lipschitz])[0],
            "output_tolerance": _finite(self.output_tolerance),
            "median_output_tolerance": _finite(self.median_output_tolerance),
            "mae": self.mae,
            "rmse": self.rmse,
        }


def _finite(values: list[float]) -> list[float | None]:
    """JSON has no infinity: an unbounded value is stored as null."""
    return [v if np.isfinite(v) else None for v in values]


def evaluation_rows(dataset: Dataset, validation_split: float, seed: int) -> tuple[np.ndarray, str]:
    """The rows the measures are taken on: the run's validation split, or the training data when it has none."""
    _, validation = train_validation_split(dataset.n_samples, validation_split, seed)
    if validation.size:
        return validation, "validation"
    return np.arange(dataset.n_samples), "training"


def _sample(x: np.ndarray, limit: int = SCALE_POINTS) -> np.ndarray:
    if x.shape[0] <= limit:
        return np.arange(x.shape[0])
    return np.sort(np.random.default_rng(0).choice(x.shape[0], limit, replace=False))


def classification_scale(x: np.ndarray, labels: np.ndarray) -> float:
    """Median l2 distance from a point to the nearest point of another class (0 if one class only)."""
    pick = _sample(x)
    x, labels = x[pick], labels[pick]
    distances = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    distances[labels[:, None] == labels[None, :]] = np.inf
    nearest = distances.min(axis=1)
    nearest = nearest[np.isfinite(nearest)]
    return float(np.median(nearest)) if nearest.size else 0.0


def regression_scale(x: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(x - x.mean(axis=0), axis=1))) if x.shape[0] else 0.0


def default_radii(x: np.ndarray, targets: np.ndarray, task: str) -> list[float]:
    if task == "classification":
        scale = classification_scale(x, targets)
        return [float(scale * f) for f in CLASSIFICATION_FRACTIONS]
    scale = regression_scale(x)
    return [float(scale * f) for f in REGRESSION_FRACTIONS]


def curve_radii(
    robustness: RobustnessConfig, x: np.ndarray, targets: np.ndarray, task: str
) -> tuple[list[float], str]:
    """The radii a stored curve is measured at, and the rule that gave them: ``robustness.radii`` or the
    data's default fractions, plus ``robustness.extra_radii`` (the target radius is added by the caller)."""
    if robustness.radii is not None:
        radii, rule = [float(r) for r in robustness.radii], "given in config.robustness.radii"
    else:
        radii = default_radii(x, targets, task)
        rule = CLASSIFICATION_RULE if task == "classification" else REGRESSION_RULE
    return with_radii(radii, rule, robustness.extra_radii or (), "robustness.extra_radii")


def with_radii(radii: list[float], rule: str, added: Sequence[float], source: str) -> tuple[list[float], str]:
    """``radii`` with ``added`` joined (sorted, once each), and ``rule`` saying so when any was new."""
    new = {float(r) for r in added} - set(radii)
    if not new:
        return radii, rule
    return sorted({*radii, *new}), f"{rule}; plus {source}"


def certified_accuracy(
    model: TrainedModel,
    x: np.ndarray,
    labels: np.ndarray,
    lipschitz: float,
    radii: list[float],
    *,
    split: str = "validation",
    radius_rule: str = "given",
    local: bool = True,
    local_max_points: int = 512,
    target_radius: float | None = None,
) -> CertifiedAccuracy:
    """Fraction of rows correctly classified *and* certified at each radius (``labels``: class indices)."""
    x = np.asarray(x, dtype=np.float64)
    served = model.served(x)
    outputs = served.outputs
    predicted = label_of(outputs)
    correct = predicted == labels
    radius = served_radius(served, lipschitz)
    certified = np.stack([correct & (radius >= r) for r in radii], axis=1) if radii else np.zeros((len(x), 0), bool)
    local_curve: list[float] | None = None
    note = None
    n = x.shape[0]
    if local and n and n <= local_max_points:
        by_local = certified.copy()
        for j, r in enumerate(radii):
            if r <= 0:
                continue
            local_radius = local_served_radius(model.network, x, served, lipschitz, r)
            by_local[:, j] |= correct & (local_radius >= r)
        certified = by_local
        local_curve = [float(v) for v in by_local.mean(axis=0)]
    elif local:
        note = f"local bounds skipped: {n} points > robustness.local_max_points ({local_max_points})"
    return CertifiedAccuracy(
        split=split,
        points=int(n),
        radii=[float(r) for r in radii],
        radius_rule=radius_rule,
        lipschitz=float(lipschitz),
        accuracy=float(correct.mean()) if n else 0.0,
        global_=[float((correct & (radius >= r)).mean()) if n else 0.0 for r in radii],
        local=local_curve,
        local_note=note,
        correct=correct,
        global_radius=radius,
        certified=certified,
        target_radius=None if target_radius is None else float(target_radius),
    )


def certified_tolerance(
    model: TrainedModel,
    x: np.ndarray,
    targets: np.ndarray,
    lipschitz: float,
    epsilons: list[float],
    *,
    split: str = "validation",
    radius_rule: str = "given",
) -> CertifiedTolerance:
    """Per eps, how far the returned outputs can provably move; and the error on the same rows."""
    served = model.served(np.asarray(x, dtype=np.float64))
    error = served.outputs[:, 0] - targets
    largest, median = [], []
    for eps in epsilons:
        bounds = served_output_bound(served, lipschitz, eps)
        largest.append(float(bounds.max()) if bounds.size else 0.0)
        median.append(float(np.median(bounds)) if bounds.size else 0.0)
    return CertifiedTolerance(
        split=split,
        points=int(x.shape[0]),
        epsilons=[float(e) for e in epsilons],
        radius_rule=radius_rule,
        lipschitz=float(lipschitz),
        output_tolerance=largest,
        median_output_tolerance=median,
        mae=float(np.abs(error).mean()) if error.size else 0.0,
        rmse=float(np.sqrt((error**2).mean())) if error.size else 0.0,
    )


def robustness_metrics(
    model: TrainedModel, dataset: Dataset | None, lipschitz: float | None,
    rows: tuple[np.ndarray, np.ndarray, str] | None = None,
) -> dict:
    """The ``metrics`` entries stored with a model: ``certified_accuracy`` or ``certified_tolerance``
    (and, for a classifier, ``warnings`` to add to the model's).

    Taken on the run's validation split (the training data when it has none: ``split`` says which),
    or on ``rows`` (raw inputs, encoded targets, split name) when given: a streamed dataset's
    validation sample, too large a dataset to split in memory.
    An unbounded certificate (None or infinite) certifies nothing: the curve is then all zeros.
    """
    config = model.config
    if rows is None:
        assert dataset is not None, "a dataset or its evaluation rows"
        index, split = evaluation_rows(dataset, config.training.validation_split, config.training.seed)
        x, targets = dataset.X[index].astype(np.float64), dataset.encoded_targets()[index]
    else:
        x, targets, split = rows[0].astype(np.float64), rows[1], rows[2]
    radii, rule = curve_radii(config.robustness, x, targets, model.task)
    bound = float("inf") if lipschitz is None else float(lipschitz)
    target = config.robustness.target_radius
    if model.task == "classification":
        if target is not None:
            radii, rule = with_radii(radii, rule, [target], "robustness.target_radius")
        result = certified_accuracy(
            model,
            x,
            targets,
            bound,
            list(radii),
            split=split,
            radius_rule=rule,
            local=config.robustness.local and np.isfinite(bound),
            local_max_points=config.robustness.local_max_points,
            target_radius=target,
        )
        return {"certified_accuracy": result.to_json(), "warnings": [result.warning] if result.warning else []}
    tolerance = certified_tolerance(model, x, targets, bound, list(radii), split=split, radius_rule=rule)
    return {"certified_tolerance": tolerance.to_json()}
