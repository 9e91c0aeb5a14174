"""The ``one_lipschitz`` recipe's classification part: certified robust accuracy at equal width.

Paper 003 claims learnable 1-Lipschitz spline activations make 1-Lipschitz networks more
expressive than fixed ones. For a classifier the quantity that claim should move is certified
robust accuracy (CRA): the share of held-out points classified correctly *and* certified at l2
radius r. This part trains 1-Lipschitz networks of equal width and depth that differ only in
their activation (1-Lipschitz splines with TV², GroupSort, ReLU) on the digits task (64 pixels
in [0, 1], 10 classes), every one with the service's ``robustness.target_radius`` training (the
Lipschitz-margin loss at the target radius, orthogonal layers, the certified-accuracy monitor),
and reads each model's CRA from its sound certificate on a held-out test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from api_schemas import TrainingConfig
from lipspline.data import from_arrays
from lipspline.experiments._measure import certified_raw
from lipspline.experiments.context import ExperimentContext
from lipspline.experiments.tables import Table
from lipspline.training.robust_accuracy import certified_accuracy, classification_scale

#: radii as fractions of d (the test split's median distance to the nearest point of another class)
FRACTIONS = (1 / 16, 1 / 8, 1 / 4)
WIDTH = [128, 128]
TEST_ROWS = 500


@dataclass(frozen=True)
class RobustActivation:
    key: str
    label: str


ACTIVATIONS = (
    RobustActivation("deepspline", "1-Lipschitz linear spline + TV²"),
    RobustActivation("groupsort", "GroupSort (MaxMin)"),
    RobustActivation("relu", "ReLU"),
)


@dataclass
class RobustRun:
    accuracy: float
    certified: list[float]
    lipschitz: float
    seconds: float


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # the `experiments` extra; shipped with the package, no download

    data = load_digits()
    return data.data / 16.0, data.target


def robust_config(activation: str, radius: float, seed: int, quick: bool) -> TrainingConfig:
    training: dict = {"seed": seed}
    if quick:
        training["epochs"] = 3
    return TrainingConfig.model_validate(
        {
            "architecture": {"hidden": WIDTH, "activation": activation},
            "robustness": {"target_radius": radius},
            "training": training,
            "device": "cpu",
        }
    )


def run_robustness(ctx: ExperimentContext, seeds: list[int]) -> dict[str, list[RobustRun]]:
    """Per activation, one run per seed: a fresh test split, the same for every activation."""
    x, y = digits()
    runs: dict[str, list[RobustRun]] = {a.key: [] for a in ACTIVATIONS}
    for seed in seeds:
        order = np.random.default_rng(1000 + seed).permutation(len(x))
        test, train = order[:TEST_ROWS], order[TEST_ROWS:]
        if ctx.quick:
            train = train[:300]
        d_test = classification_scale(x[test], y[test])
        radii = [d_test * f for f in FRACTIONS]
        # the target comes from the training rows only: the test split never chooses anything
        target = classification_scale(x[train], y[train]) / 8
        data = from_arrays(x[train], y[train], task="classification", name="digits")
        for activation in ACTIVATIONS:
            trained = ctx.trainer.train(data, robust_config(activation.key, target, seed, ctx.quick))
            bound = certified_raw(trained.model.network)
            labels = np.searchsorted(np.asarray(trained.model.classes), y[test])
            curve = certified_accuracy(trained.model, x[test], labels, bound, radii, local=False)
            runs[activation.key].append(RobustRun(curve.accuracy, curve.global_, bound, trained.seconds))
            ctx.log(
                f"[one_lipschitz] seed {seed} digits {activation.label:<32} acc {curve.accuracy:.3f} "
                f"CRA {[round(v, 3) for v in curve.global_]} L {bound:.4f} | {trained.seconds:.1f} s"
            )
    return runs


def robustness_table(runs: dict[str, list[RobustRun]], seeds: list[int]) -> Table:
    table = Table(
        f"Certified robust accuracy on digits, 1-Lipschitz {'-'.join(map(str, WIDTH))} networks, "
        f"median over {len(seeds)} seed(s)",
        ["activation", "clean accuracy", "CRA d/16", "CRA d/8", "CRA d/4", "certified L", "train s"],
    )
    for activation in ACTIVATIONS:
        rows = runs[activation.key]
        certified = np.median(np.array([r.certified for r in rows]), axis=0)
        table.add(
            activation.label,
            float(np.median([r.accuracy for r in rows])),
            *[float(v) for v in certified],
            float(np.max([r.lipschitz for r in rows])),
            float(np.median([r.seconds for r in rows])),
        )
    table.notes += [
        f"digits: 1,797 images of 8x8 pixels scaled to [0, 1]; per seed a fresh test split of {TEST_ROWS} rows; "
        "d = the test split's median distance to the nearest point of another class.",
        "Every model: robustness.target_radius = d_train / 8 (training rows only) and nothing else but the "
        "activation: objective one_lipschitz with Björck-orthonormalised layers, the Lipschitz-margin loss, early "
        "stopping on validation certified accuracy. CRA is read from the served map's sound certificate "
        "(global bound, rounding included).",
    ]
    return table
