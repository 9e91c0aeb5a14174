"""The sweep engine's pure parts: space validation and expansion, seeding, halving rungs, fronts, selection."""

from __future__ import annotations

import itertools
import random

import pytest

from api_schemas import TrainingConfig
from lipspline.sweeps import halving
from lipspline.sweeps.pareto import dominates, pareto_front
from lipspline.sweeps.plan import SweepSpec, next_to_launch, planned_trials, summarize
from lipspline.sweeps.selection import Selection, TrialOutcome, knee, lipschitz_front, robust_front, select
from lipspline.sweeps.space import Choice, Range, SpaceError, apply, grid, grid_size, parse_space, sample

BASE = TrainingConfig.model_validate({"training": {"epochs": 9}})


def spec(space: dict, strategy: str = "grid", max_trials: int = 20, **kw) -> SweepSpec:
    return SweepSpec(BASE, parse_space(space, BASE), strategy, max_trials, **kw)


# ---- space -------------------------------------------------------------------------------------
def test_paths_use_the_public_names_and_values_reach_the_config() -> None:
    mu = {"low": 1e-5, "high": 1e-3, "scale": "log", "count": 3}
    dims = parse_space({"objective.lambda": [1e-6, 1e-3], "spline.knots": [5, 21],
                        "architecture.hidden": [[4], [8, 8]], "architecture.activation": ["relu", "deepspline"],
                        "objective.mode": ["bv2", "tv2"], "objective.mu": mu}, BASE)
    assert [d.path for d in dims][:2] == ["objective.lambda", "spline.knots"]
    config = apply(BASE, {"objective.lambda": 1e-3, "architecture.hidden": [8, 8]})
    assert config.objective.lambda_ == 1e-3 and config.architecture.hidden == [8, 8]
    assert grid_size(dims) == 2 * 2 * 2 * 2 * 2 * 3


def test_a_trial_target_radius_fills_what_the_base_left_to_the_defaults() -> None:
    base = TrainingConfig.model_validate({"training": {"seed": 3}})
    trial = apply(base, {"robustness.target_radius": 0.1})
    alone = TrainingConfig.model_validate({"training": {"seed": 3}, "robustness": {"target_radius": 0.1}})
    assert trial == alone and trial.objective.mode == "one_lipschitz" and trial.architecture.hidden == [128, 128]
    assert TrainingConfig.model_validate(trial.to_json()) == trial  # spelled out: validating again changes nothing
    # what the base chose stays chosen, the rest still follows the radius
    chosen = TrainingConfig.model_validate({"objective": {"mode": "bv2"}, "architecture": {"hidden": [16]}})
    trial = apply(chosen, {"robustness.target_radius": 0.1})
    assert trial.objective.mode == "bv2" and trial.architecture.hidden == [16]
    assert trial.objective.loss == "lipschitz_margin" and trial.training.lr == 2e-2
    # a base that had a radius carries what it implied; a trial's other radius keeps them
    targeted = TrainingConfig.model_validate({"robustness": {"target_radius": 0.2}})
    trial = apply(targeted, {"robustness.target_radius": 0.05, "objective.lambda": 1e-3})
    assert trial.robustness.target_radius == 0.05 and trial.objective.mode == "one_lipschitz"
    assert trial.objective.lambda_ == 1e-3


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({}, "space"),
        ({"objective.lamda": [1]}, "space.objective.lamda"),
        ({"objective": [1]}, "space.objective"),
        ({"objective.lambda.x": [1]}, "space.objective.lambda.x"),
        ({"spline.knots": [21, 2]}, "space.spline.knots"),
        ({"objective.lambda": [-1.0]}, "space.objective.lambda"),
        ({"objective.lambda": {"low": -1, "high": 1}}, "space.objective.lambda"),
        ({"objective.lambda": {"low": 0, "high": 1, "scale": "log"}}, "space.objective.lambda"),
        ({"objective.lambda": {"low": 2, "high": 1}}, "space.objective.lambda"),
        ({"spline.knots": {"low": 3, "high": 5000}}, "space.spline.knots"),
        ({"architecture.activation": {"low": 1, "high": 2}}, "space.architecture.activation"),
        ({"architecture.activation": ["relu", "tanh"]}, "space.architecture.activation"),
        ({"objective.lambda": []}, "space.objective.lambda"),
    ],
)
def test_bad_spaces_name_what_is_wrong(space: dict, field: str) -> None:
    with pytest.raises(SpaceError) as caught:
        parse_space(space, BASE)
    assert caught.value.field == field


def test_a_grid_needs_counts_and_fits_the_budget() -> None:
    with pytest.raises(SpaceError, match="unbounded") as caught:
        planned_trials(spec({"objective.lambda": {"low": 1e-6, "high": 1e-2, "scale": "log"}}))
    assert caught.value.field == "space"
    with pytest.raises(SpaceError) as caught:
        planned_trials(spec({"spline.knots": [5, 7, 9], "objective.lambda": [0.0, 1.0]}, max_trials=5))
    assert caught.value.field == "budget.max_trials"


def test_grid_is_the_cartesian_product_in_order() -> None:
    dims = [Choice("a.b", (1, 2)), Range("c.d", 1e-4, 1e-2, "log", 3)]
    points = grid(dims)
    assert [p["a.b"] for p in points] == [1, 1, 1, 2, 2, 2]
    assert [p["c.d"] for p in points[:3]] == pytest.approx([1e-4, 1e-3, 1e-2])


def test_integer_ranges_are_rounded_and_deduplicated() -> None:
    assert Range("spline.knots", 5, 7, "linear", 5, integer=True).grid() == [5, 6, 7]


def test_random_sampling_is_seeded_and_stays_in_the_range() -> None:
    dims = parse_space({"objective.lambda": {"low": 1e-6, "high": 1e-2, "scale": "log"}, "spline.knots": [5, 21, 41]},
                       BASE)
    first, again, other = sample(dims, 12, seed=7), sample(dims, 12, seed=7), sample(dims, 12, seed=8)
    assert first == again and first != other
    assert all(1e-6 <= p["objective.lambda"] <= 1e-2 and p["spline.knots"] in (5, 21, 41) for p in first)
    # log scale: about half the draws below the geometric middle 1e-4
    many = sample(dims, 400, seed=1)
    assert 0.35 < sum(p["objective.lambda"] < 1e-4 for p in many) / 400 < 0.65


def test_launches_respect_the_concurrency_and_never_repeat() -> None:
    assert list(next_to_launch(planned=5, launched=0, active=0, max_concurrent=2)) == [0, 1]
    assert list(next_to_launch(planned=5, launched=2, active=1, max_concurrent=2)) == [2]
    assert list(next_to_launch(planned=5, launched=4, active=0, max_concurrent=3)) == [4]
    assert list(next_to_launch(planned=5, launched=5, active=0, max_concurrent=3)) == []


# ---- halving -----------------------------------------------------------------------------------
def test_rungs_are_geometric_below_the_epochs() -> None:
    assert halving.rungs(1, 3, 9) == [1, 3]
    assert halving.rungs(2, 2, 20) == [2, 4, 8, 16]
    assert halving.rungs(5, 3, 5) == []
    with pytest.raises(ValueError):
        halving.rungs(1, 1, 9)


def test_a_trial_continues_only_within_the_top_third() -> None:
    assert halving.keeps(0.5, [0.5], eta=3)  # first at the rung: nothing to compare with
    assert not halving.keeps(0.5, [0.9, 0.5], eta=3)
    assert halving.keeps(0.9, [0.9, 0.5, 0.7], eta=3)
    assert halving.keeps(0.7, [0.9, 0.5, 0.7, 0.6], eta=3)  # keep ceil(4/3) = 2
    assert halving.keeps(0.9, [0.9, 0.9, 0.1], eta=3)  # ties continue
    # equal accuracies: the loss decides
    assert not halving.keeps([0.9, -0.5], [[0.9, -0.2], [0.9, -0.5]], eta=3)
    assert halving.keeps([0.9, -0.2], [[0.9, -0.2], [0.9, -0.5], [0.8, -0.1]], eta=3)
    assert halving.rung_score({"accuracy": 0.9, "loss": 0.3}, {}, "classification") == [0.9, -0.3]


def test_halving_plans_the_grid_or_samples_and_needs_a_rung() -> None:
    assert len(planned_trials(spec({"spline.knots": [5, 21]}, "halving"))) == 2
    assert len(planned_trials(spec({"objective.lambda": {"low": 1e-6, "high": 1.0}}, "halving", 7))) == 7
    with pytest.raises(SpaceError) as caught:
        planned_trials(spec({"spline.knots": [5]}, "halving", min_epochs=9))
    assert caught.value.field == "halving.min_epochs"


def test_score_is_accuracy_or_minus_rmse() -> None:
    assert halving.score_of({"accuracy": 0.9}, {"accuracy": 1.0}, "classification") == 0.9
    assert halving.score_of({}, {"accuracy": 1.0}, "classification") == 1.0
    assert halving.score_of({"mse": 4.0}, {}, "regression") == -2.0


# ---- Pareto fronts and selection ---------------------------------------------------------------
def test_front_is_exactly_the_non_dominated_points_with_ties_kept() -> None:
    points = [(0.9, -3.0), (0.8, -1.0), (0.9, -3.0), (0.7, -2.0), (0.95, -10.0), (0.8, -1.0)]
    assert pareto_front(points) == [0, 1, 2, 4, 5]
    assert dominates((1, 1), (1, 0)) and not dominates((1, 1), (1, 1))


def test_front_against_brute_force_on_random_points() -> None:
    rng = random.Random(0)
    for _ in range(50):
        points = [(rng.randint(0, 5), rng.randint(0, 5)) for _ in range(12)]
        front = set(pareto_front(points))
        for i, p in enumerate(points):
            beaten = any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)
            assert (i in front) == (not beaten)


OUTCOMES = [
    TrialOutcome(0, 0.95, 40.0, (0.0, 0.1, 0.2), (0.95, 0.20, 0.05)),
    TrialOutcome(1, 0.93, 10.0, (0.0, 0.1, 0.2), (0.93, 0.60, 0.30)),
    TrialOutcome(2, 0.90, 12.0, (0.0, 0.1, 0.2), (0.90, 0.50, 0.20)),
    TrialOutcome(3, 0.80, 2.0, (0.0, 0.1, 0.2), (0.80, 0.70, 0.50)),
    TrialOutcome(4, 0.50, 1.0, (0.0, 0.1, 0.2), (0.50, 0.50, 0.50)),
]


def test_fronts_of_a_sweep() -> None:
    assert lipschitz_front(OUTCOMES) == [0, 1, 3, 4]
    assert robust_front(OUTCOMES, 0.1) == [0, 1, 3]
    assert OUTCOMES[1].certified_at(0.15) == 0.30  # read at 0.2, the next listed radius: never overstated
    assert robust_front(OUTCOMES, 0.15) == [0, 1, 3]  # (0.5, 0.5) is dominated by (0.8, 0.5)
    assert robust_front(OUTCOMES, 0.5) == []  # above every listed radius: nothing is known


def test_selection_rules_satisfy_their_constraint() -> None:
    assert select(OUTCOMES, Selection("max_accuracy", max_lipschitz=11.0)) == 1
    assert select(OUTCOMES, Selection("max_accuracy", max_lipschitz=0.5)) is None
    assert select(OUTCOMES, Selection("max_accuracy")) == 0
    assert select(OUTCOMES, Selection("max_certified_accuracy", radius=0.1)) == 3
    assert select(OUTCOMES, Selection("max_certified_accuracy", radius=0.2)) == 3  # tie 0.5: better score wins
    for limit in (1.0, 2.0, 10.0, 12.0, 40.0):
        chosen = select(OUTCOMES, Selection("max_accuracy", max_lipschitz=limit))
        assert OUTCOMES[chosen].lipschitz <= limit
        assert OUTCOMES[chosen].score == max(o.score for o in OUTCOMES if o.lipschitz <= limit)


def test_knee_is_on_the_front_and_between_the_ends() -> None:
    chosen = knee(OUTCOMES)
    assert chosen in lipschitz_front(OUTCOMES) and chosen in (1, 3)
    assert knee(OUTCOMES[:2]) == 0  # fewer than three points: the best score
    # a front below its chord (accuracy jumps only near the robust end) has no knee: the best score
    jump = [TrialOutcome(0, 0.98, 27.0), TrialOutcome(1, 0.75, 8.5), TrialOutcome(2, 0.74, 7.3)]
    assert knee(jump) == 0


def test_summary_names_the_front_radius_and_the_selection() -> None:
    s = spec({"spline.knots": [5]}, selection=Selection("max_certified_accuracy", radius=0.1))
    summary = summarize(s, OUTCOMES)
    assert summary.radius == 0.1 and summary.selected == 3 and summary.robust_front == [0, 1, 3]
    default = summarize(spec({"spline.knots": [5]}), OUTCOMES)
    assert default.radius == 0.1  # the middle radius of the first curve


def test_unbounded_trials_are_left_off_the_bound_front() -> None:
    outcomes = [TrialOutcome(0, 0.9, None), TrialOutcome(1, 0.8, float("inf")), TrialOutcome(2, 0.7, 3.0)]
    assert lipschitz_front(outcomes) == [2]
    assert list(itertools.chain(lipschitz_front([]), robust_front([], 0.1))) == []


def test_the_local_engine_stops_trials_at_rungs_through_the_cooperative_stop() -> None:
    """Halving in-process: the trial told to stop at a rung runs no further; the others run every epoch."""
    from lipspline.data import make_circle
    from lipspline.sweeps.local import run_sweep
    from lipspline.training.loop import EpochReport, fit

    data = make_circle(60, seed=0)
    base = TrainingConfig.model_validate({"architecture": {"hidden": [2]}, "device": "cpu",
                                          "training": {"epochs": 3, "validation_split": 0.25}})
    model = fit(data, base.model_copy(update={"training": base.training.model_copy(update={"epochs": 1})})).model
    rung_scores = {5: 0.5, 7: 0.9, 9: 0.1, 11: 0.95}  # by K: sequential ASHA keeps 5, 7, 11 and stops 9

    def train(_data, config, on_epoch):
        for epoch in range(1, config.training.epochs + 1):
            score = rung_scores[config.spline.knots] if epoch == 1 else 1.0
            report = EpochReport(epoch, config.training.epochs, {}, {}, {"accuracy": score, "loss": 1.0}, 0.0)
            if on_epoch is not None and on_epoch(report):
                return model, epoch
        return model, config.training.epochs

    spec = SweepSpec(base, parse_space({"spline.knots": [5, 7, 9, 11]}, base), "halving", 4, eta=3, min_epochs=1)
    sweep = run_sweep(data, spec, train)
    assert [t.status for t in sweep.trials] == ["succeeded", "succeeded", "stopped", "succeeded"]
    assert [t.epochs for t in sweep.trials] == [3, 3, 1, 3] and sweep.total_epochs == 10
    assert sweep.summary.selected in (0, 1, 3)


def test_max_certified_accuracy_selects_nothing_when_no_trial_certifies_and_says_why() -> None:
    uncertified = [TrialOutcome(i, 0.9 + i / 100, 50.0, (0.0, 0.1), (0.9, 0.0)) for i in range(3)]
    s = spec({"spline.knots": [5]}, selection=Selection("max_certified_accuracy", radius=0.1))
    summary = summarize(s, uncertified)
    assert summary.selected is None
    assert "no trial certifies a single validation point at radius 0.1" in summary.note
    assert summary.robust_front_note == "every trial certifies 0 % of its validation points at radius 0.1"
    # one trial certifying anything is selected, and the notes go away
    some = [*uncertified, TrialOutcome(3, 0.5, 1.0, (0.0, 0.1), (0.5, 0.01))]
    summary = summarize(s, some)
    assert (summary.selected, summary.note, summary.robust_front_note) == (3, None, None)


def test_every_trial_measures_its_curve_at_the_radii_the_sweep_reads() -> None:
    """The select and front radii go into each trial's ``robustness.extra_radii``, beside what the base
    asked for, so a trial's curve holds them exactly (read otherwise at the next larger listed radius)."""
    base = TrainingConfig.model_validate({"training": {"epochs": 9}, "robustness": {"extra_radii": [0.5]}})
    s = SweepSpec(base, parse_space({"objective.lambda": [1e-4, 1e-3]}, base), "grid", 4,
                  selection=Selection("max_certified_accuracy", radius=0.037), front_radius=0.11)
    configs = [s.trial_config(p) for p in planned_trials(s)]
    assert [c.objective.lambda_ for c in configs] == [1e-4, 1e-3]
    assert all(c.robustness.extra_radii == [0.037, 0.11, 0.5] for c in configs)
    assert all(c.robustness.radii is None for c in configs)  # the default curve is kept, the radii are added
    # a sweep that reads no radius leaves the trials as the base made them
    plain = SweepSpec(BASE, parse_space({"objective.lambda": [1e-4]}, BASE), "grid", 4)
    assert plain.trial_config({"objective.lambda": 1e-4}) == apply(BASE, {"objective.lambda": 1e-4})
    # the stored, spelled-out config validates to the same trial
    assert TrainingConfig.model_validate(configs[0].to_json()) == configs[0]
