"""The ``noise`` recipe's weight search as λ sweeps: the accuracy-robustness front on Boston housing.

Each penalised scheme's regularisation weight is chosen by a grid sweep over
``objective.lambda`` run through the sweep engine (``lipspline.sweeps``: the same
planner, fronts and selection as ``POST /v1/sweeps``). A trial trains on the
inner split and is scored by minus its clean MAE on the inner validation rows, so
the engine's ``max_accuracy`` rule picks what paper 002's grid search picks, and
its front is validation MAE against the certified Lipschitz bound of the raw map
(the bound the service would serve). The schemes' trials of one seed are also
pooled into one front: which scheme and weight give the best MAE for a given
certified bound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from api_schemas import TrainingConfig
from lipspline.data import Dataset
from lipspline.experiments.context import ExperimentContext
from lipspline.experiments.tables import Table
from lipspline.nn.model import TrainedModel
from lipspline.sweeps.local import LocalSweep, run_sweep
from lipspline.sweeps.plan import SweepSpec
from lipspline.sweeps.selection import Selection, TrialOutcome, lipschitz_front
from lipspline.sweeps.space import parse_space


def mean_absolute_error(model: TrainedModel, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(model.outputs(x).numpy()[:, 0] - y).mean())


def weight_sweep(
    ctx: ExperimentContext,
    base: TrainingConfig,
    grid: Sequence[float],
    inner: Dataset,
    validation_mae: Callable[[TrainedModel], float],
) -> LocalSweep:
    """One scheme's λ grid through the sweep engine; ``base`` is the scheme's config (its λ is replaced)."""
    spec = SweepSpec(base, parse_space({"objective.lambda": list(grid)}, base), "grid",
                     max_trials=len(grid), selection=Selection("max_accuracy"))

    def train(dataset: Dataset, config: TrainingConfig, _on_epoch: object) -> tuple[TrainedModel, int]:
        return ctx.trainer.train(dataset, config).model, config.training.epochs

    return run_sweep(inner, spec, train, score=lambda model: -validation_mae(model))


def chosen_weight(sweep: LocalSweep) -> float:
    """The weight the engine selected (the lowest validation MAE; ties go to the smaller certified bound)."""
    trial = sweep.trial(sweep.summary.selected)
    if trial is None:
        raise RuntimeError("the weight sweep selected no trial (every trial lacks a finite certificate)")
    return float(trial.params["objective.lambda"])


def pooled_front(sweeps: dict[str, LocalSweep]) -> set[tuple[str, float]]:
    """(scheme key, λ) of the trials on the front of all schemes' trials together (MAE vs certified L)."""
    labelled: list[tuple[str, float]] = []
    outcomes: list[TrialOutcome] = []
    for key, sweep in sweeps.items():
        for trial in sweep.trials:
            outcome = trial.outcome()
            if outcome is None:
                continue
            outcomes.append(TrialOutcome(len(labelled), outcome.score, outcome.lipschitz))
            labelled.append((key, float(trial.params["objective.lambda"])))
    return {labelled[i] for i in lipschitz_front(outcomes)}


@dataclass
class WeightPoint:
    """One (scheme, λ) across seeds: what its inner-split model gave, and where it sat on the fronts."""

    inner: list[float] = field(default_factory=list)
    clean: list[float] = field(default_factory=list)
    worst: list[float] = field(default_factory=list)
    certified: list[float] = field(default_factory=list)
    scheme_front: int = 0
    pooled_front: int = 0
    chosen: int = 0


def record(
    points: dict[tuple[str, float], WeightPoint],
    key: str,
    sweep: LocalSweep,
    held_out: Sequence[tuple[np.ndarray, np.ndarray]],
) -> None:
    """Add one seed's sweep of scheme ``key``: its trials' MAEs (inner validation, then each ``held_out``
    (inputs, targets) pair: clean and noisiest), bounds, fronts and choice."""
    for trial in sweep.trials:
        point = points.setdefault((key, float(trial.params["objective.lambda"])), WeightPoint())
        assert trial.model is not None and trial.score is not None and trial.lipschitz is not None
        clean, worst = (mean_absolute_error(trial.model, x, y) for x, y in held_out)
        point.inner.append(-trial.score)
        point.clean.append(clean)
        point.worst.append(worst)
        point.certified.append(trial.lipschitz)
        point.scheme_front += trial.index in sweep.summary.lipschitz_front
        point.chosen += trial.index == sweep.summary.selected


def mark_pooled(points: dict[tuple[str, float], WeightPoint], front: set[tuple[str, float]]) -> None:
    for key in front:
        points[key].pooled_front += 1


def collapse_floor(bounds: Sequence[float]) -> float:
    """Certified bounds below this (a thousandth of the median bound) belong to networks collapsed to a
    (nearly) constant map: the front's trivial robust end, set apart in the table's note and the figure."""
    return 1e-3 * float(np.median(np.asarray(bounds, dtype=np.float64))) if len(bounds) else 0.0


def _median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def front_table(
    points: dict[tuple[str, float], WeightPoint], schemes: Sequence[tuple[str, str]], grid: Sequence[float],
    seeds: int, worst_eta: float,
) -> Table:
    """The sweeps, one row per (scheme, λ): MAEs, certified L and how often the point was on each front."""
    table = Table(
        f"Regularisation-weight sweeps (sweep engine; models trained on the inner split): MAE against certified "
        f"Lipschitz bound, median over {seeds} seed(s)",
        ["scheme", "weight", "inner val MAE (clean)", "held-out MAE η=0", f"held-out MAE η={worst_eta:g}",
         "certified L (raw map)", "on scheme's front", "on pooled front", "chosen"],
    )
    floor = collapse_floor([b for point in points.values() for b in point.certified])
    collapsed: list[str] = []
    for key, label in schemes:
        for value in grid:
            point = points[(key, value)]
            if _median(point.certified) < floor:
                collapsed.append(f"{label} at λ = {value:g}")
            table.add(
                label, value, _median(point.inner), _median(point.clean), _median(point.worst),
                _median(point.certified), f"{point.scheme_front}/{seeds}", f"{point.pooled_front}/{seeds}",
                f"{point.chosen}/{seeds}",
            )
    table.notes += [
        "Each penalised scheme's weight is a grid sweep over objective.lambda run by the same engine as "
        "POST /v1/sweeps (in-process): score = − clean MAE on the inner validation rows, selection = max_accuracy "
        "(the lowest MAE; ties go to the smaller certified L). Selection never sees the held-out rows or the noise.",
        "Certified L (raw map): certify_global of the inner-split model, the bound the service would serve for it "
        "(raw features to k$).",
        "Scheme's front: no other weight of the same scheme has an inner MAE and a certified L at least as good "
        "(and one better). Pooled front: the same over the trials of all five schemes of that seed. k/n counts "
        "the seeds.",
    ]
    if collapsed:
        table.notes.append(
            f"A certified L near 0 ({'; '.join(collapsed)}) is a network collapsed to a constant: certified perfectly "
            "robust and no better than predicting the mean. It is the front's trivial robust end, not a useful model."
        )
    return table


#: colour per objective mode and line style per activation, as in the MAE figure
COLOURS = {"layerwise_spectral": "tab:blue", "lipschitz_coupled": "tab:red", "bv2": "tab:purple"}


def plot_front(
    sweeps: dict[str, LocalSweep], schemes: Sequence[tuple[str, str, str, bool]], front: set[tuple[str, float]],
    seed: int, path: Path,
) -> Path:
    """One seed's trials: inner validation MAE against certified L, each scheme's λ path, the pooled front.

    A weight so large that the network collapses to a constant (certified L many orders below the
    others') would squeeze every other point into a corner of a log axis: such trials are drawn as
    arrows at the left edge, their bound written beside them. The λ labels are on the pooled front's
    points and the selected weights only, so they stay legible.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 5.0), layout="constrained")
    axes = figure.add_subplot()
    every_bound = [t.lipschitz for sweep in sweeps.values() for t in sweep.trials if t.lipschitz is not None]
    floor = collapse_floor(every_bound)
    edge = min([b for b in every_bound if b >= floor], default=1.0) / 2
    pooled: list[tuple[float, float]] = []
    collapsed: list[str] = []  # one stacked note for all of them: they sit at the same spot
    collapsed_at = (edge, 0.0)
    for key, label, mode, spline in schemes:
        sweep = sweeps[key]
        trials = sorted(sweep.trials, key=lambda t: t.params["objective.lambda"])
        points = [(max(t.lipschitz, edge), -t.score) for t in trials]
        axes.plot([p[0] for p in points], [p[1] for p in points], "--" if spline else "-",
                  marker="s" if spline else "o", color=COLOURS[mode], label=label, alpha=0.8)
        for trial, (x, y) in zip(trials, points, strict=True):
            lam = float(trial.params["objective.lambda"])
            chosen = trial.index == sweep.summary.selected
            if trial.lipschitz < floor:
                axes.plot([x], [y], "<", color=COLOURS[mode], markersize=9)
                collapsed.append(f"{label}, λ={lam:g}: L={trial.lipschitz:.0e}")
                collapsed_at = (x, y)
            elif (key, lam) in front or chosen:
                axes.annotate(f"{lam:g}", (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
            if (key, lam) in front:
                pooled.append((x, y))
            if chosen:
                axes.plot([x], [y], "*", color=COLOURS[mode], markersize=13, markeredgecolor="black")
    if collapsed:
        axes.annotate("constant models, drawn at the edge:\n" + "\n".join(collapsed), collapsed_at, fontsize=7,
                      xytext=(10, -6), textcoords="offset points", va="top",
                      bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
    pooled.sort()
    axes.plot([p[0] for p in pooled], [p[1] for p in pooled], ":", color="black", linewidth=2.0, zorder=0,
              label="pooled Pareto front (all schemes)")
    axes.plot([], [], "*", color="gray", markersize=11, markeredgecolor="black", label="selected weight")
    axes.set_xscale("log")
    axes.set_xlabel("certified Lipschitz bound of the raw map (k$ per unit of input)")
    axes.set_ylabel("inner validation MAE (k$), clean inputs")
    axes.set_title(f"Boston housing, seed {seed}: the λ sweeps' accuracy-robustness front (labels: λ)")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)
    return path
