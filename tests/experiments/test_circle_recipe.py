"""The ``circle`` recipe (paper 000) in quick mode: tables, figures, results.md, kept models, invariants.

The recipe runs once per module (about 25 s on 2 cores) through a trainer
that counts its calls, so the tests can also check that every model came
from ``ctx.trainer`` and that runs shared between tables were trained once.
The invariants are the ones that must hold whatever the numbers: certified
bounds above lower bounds, accuracies that are percentages and better than
chance, active-knot counts that are whole numbers within the grid.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from api_schemas import TrainingConfig
from lipspline.certificates import certify_global, empirical_lower_bound, jacobian_lower_bound
from lipspline.data import Dataset, make_circle
from lipspline.experiments import circle
from lipspline.experiments.context import ExperimentContext, RecipeResult
from lipspline.experiments.runner import run_recipe
from lipspline.experiments.trainers import LocalTrainer, Trained

PNG = b"\x89PNG\r\n\x1a\n"


class CountingTrainer:
    """LocalTrainer that records what it was asked to train."""

    where = "core (in-process, counted)"

    def __init__(self) -> None:
        self.inner = LocalTrainer()
        self.calls: list[TrainingConfig] = []

    def train(self, dataset: Dataset, config: TrainingConfig) -> Trained:
        self.calls.append(config)
        return self.inner.train(dataset, config)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecipeResult, ExperimentContext, CountingTrainer]:
    root = tmp_path_factory.mktemp("circle")
    trainer = CountingTrainer()
    ctx = ExperimentContext(
        quick=True, trainer=trainer, docs_dir=root / "docs", work_dir=root / "work", log=lambda _line: None
    )
    return run_recipe("circle", ctx), ctx, trainer


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_tables_have_the_expected_shape(quick: tuple[RecipeResult, ExperimentContext, CountingTrainer]) -> None:
    result, ctx, _ = quick
    settings = circle.settings_for(ctx)
    assert result.name == "circle" and result.quick
    main = result.table("Table 1")
    assert main.column("model") == ["ReLU", "LeakyReLU", "PReLU", "deep spline (BV²)"]
    assert main.column("paper (%)") == [98.15, 98.12, 98.19, 98.54]
    assert all(len(row) == len(main.columns) for row in main.rows)
    assert main.column("seeds") == [len(settings.seeds)] * 4
    assert result.table("Table 2").column("λ") == settings.lambdas
    assert result.table("Table 3").column("K") == settings.knots
    assert result.table("Table 4").column("outer norm") == ["ℓ1", "ℓ2"]
    for table in result.tables[1:4]:
        assert table.column("seeds") == [len(settings.sweep_seeds)] * len(table.rows)
    assert result.table("Table 5").column("λ") == settings.lambdas


def test_every_model_came_from_the_trainer_once(quick: tuple[RecipeResult, ExperimentContext, CountingTrainer]) -> None:
    result, ctx, trainer = quick
    s = circle.settings_for(ctx)
    # the λ = 1e-4, K = 21 and ℓ1 rows reuse the main table's deep-spline runs
    expected = 4 * len(s.seeds) + (len(s.lambdas) - 1 + len(s.knots) - 1 + 1) * len(s.sweep_seeds)
    assert len(trainer.calls) == expected
    keys = {(c.architecture.activation, c.spline.knots, c.objective.lambda_, c.objective.outer_norm, c.training.seed)
            for c in trainer.calls}
    assert len(keys) == expected, "a configuration was trained twice"
    assert all(c.training.validation_split == 0.0 and c.training.epochs == s.epochs for c in trainer.calls)
    assert any(f"{expected} models trained" in choice for choice in result.choices)


def test_parameter_counts(quick: tuple[RecipeResult, ExperimentContext, CountingTrainer]) -> None:
    main = quick[0].table("Table 1")
    # (2,10,1): 2*10 + 10 + 10 + 1 = 41, PReLU adds one slope per neuron; (2,2,1): 9 weights + 2 * 21 knot values
    assert main.column("stored params") == [41, 41, 51, 51]
    effective = main.column("effective params")
    assert effective[:3] == [41, 41, 51]
    assert isinstance(effective[3], int) and 9 <= effective[3] <= 9 + 2 * 19


def test_accuracies_are_percentages_above_chance(
    quick: tuple[RecipeResult, ExperimentContext, CountingTrainer],
) -> None:
    result = quick[0]
    main = result.table("Table 1")
    for median, low, high in zip(main.column("accuracy median (%)"), main.column("min (%)"), main.column("max (%)"),
                                 strict=True):
        assert 50.0 < low <= median <= high <= 100.0  # balanced classes: chance is 50 %
    # even the quick deep spline must have learned the circle, not just a half-plane
    assert main.column("accuracy median (%)")[3] > 85.0
    for table in result.tables[1:4]:
        for median, low, high in zip(table.column("accuracy median (%)"), table.column("min (%)"),
                                     table.column("max (%)"), strict=True):
            assert 0.0 <= low <= median <= high <= 100.0
    for accuracy in result.table("Table 2").column("pruned accuracy median (%)"):
        assert 0.0 <= accuracy <= 100.0


def test_certified_bounds_are_above_lower_bounds(
    quick: tuple[RecipeResult, ExperimentContext, CountingTrainer],
) -> None:
    main = quick[0].table("Table 1")
    for certified, lower, ratio in zip(main.column("certified L (median)"), main.column("lower L (median)"),
                                       main.column("certified / lower (median)"), strict=True):
        assert lower > 0 and certified >= lower and ratio >= 1.0


def test_active_knots_are_counts_within_the_grid(
    quick: tuple[RecipeResult, ExperimentContext, CountingTrainer],
) -> None:
    result = quick[0]
    for title in ("Table 2", "Table 3", "Table 4"):
        table = result.table(title)
        for active, total in zip(table.column("active knots (median)"), table.column("interior knots"), strict=True):
            assert isinstance(active, int) and isinstance(total, int)
            assert 0 <= active <= total
    knots = result.table("Table 3")
    assert knots.column("interior knots") == [2 * (k - 2) for k in knots.column("K")]


def test_figures_are_pngs_in_the_docs_dir(quick: tuple[RecipeResult, ExperimentContext, CountingTrainer]) -> None:
    result, ctx, _ = quick
    names = sorted(p.name for p in result.figures)
    assert names == ["circle-activations.png", "circle-decision-boundary.png", "circle-pareto-front.png",
                     "circle-sparsity-vs-lambda.png"]
    for path in result.figures:
        assert path.parent == ctx.docs_dir / "figures"
        width, height = _png_size(path)
        assert width > 200 and height > 200


def test_results_md_has_the_section(quick: tuple[RecipeResult, ExperimentContext, CountingTrainer]) -> None:
    result, ctx, _ = quick
    text = (ctx.docs_dir / "results.md").read_text()
    start, end = text.index("<!-- experiment:circle:start -->"), text.index("<!-- experiment:circle:end -->")
    section = text[start:end]
    assert circle.TITLE in section and "quick mode" in section
    for table in result.tables:
        assert table.title in section
    assert "](figures/circle-activations.png)" in section
    assert "| deep spline (BV²) | (2,2,1) | 51 |" in section


def test_kept_models_reproduce_their_numbers(quick: tuple[RecipeResult, ExperimentContext, CountingTrainer]) -> None:
    """One model per architecture is kept; reloaded, it gives the accuracy it was kept with and certifies soundly."""
    _, ctx, _ = quick
    kept = ctx.kept_models("circle")
    assert sorted(k.label for k in kept) == ["deepspline-2-2-1", "leaky_relu-2-10-1", "prelu-2-10-1", "relu-2-10-1"]
    test = make_circle(circle.TEST_SIZE, seed=circle.TEST_SEED)
    for k in kept:
        assert k.inputs.shape == (circle.TRAIN_SIZE, 2)
        np.testing.assert_array_equal(k.inputs, make_circle(circle.TRAIN_SIZE, seed=k.info["seed"]).X)
        assert circle.accuracy_percent(k.model, test) == pytest.approx(k.info["test_accuracy_percent"], abs=1e-9)
        certified = certify_global(k.model.network).certified
        assert certified == pytest.approx(k.info["certified"], rel=1e-12)
        lower = max(
            empirical_lower_bound(k.model.network, k.inputs), jacobian_lower_bound(k.model.network, k.inputs[:64])
        )
        assert certified >= lower > 0


def test_an_unsound_certificate_stops_the_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The recipe checks certified >= lower itself, so a broken certificate cannot reach results.md."""

    class TooSmall:
        certified = 1e-6
        certified_by = "broken"

    monkeypatch.setattr(circle, "certify_global", lambda network: TooSmall())
    ctx = ExperimentContext(quick=True, trainer=LocalTrainer(), docs_dir=tmp_path, work_dir=tmp_path,
                            log=lambda _line: None)
    settings = circle.Settings([0], [0], epochs=1, lambdas=[1e-4], knots=[21])
    runs = circle.Runs(ctx, settings, make_circle(300, seed=1))
    with pytest.raises(RuntimeError, match="unsound"):
        runs.get(circle.Spec("relu", 10), 0)


def test_the_pareto_table_comes_from_the_sweep_engine_and_reuses_table_2(
    quick: tuple[RecipeResult, ExperimentContext, CountingTrainer],
) -> None:
    """Table 5's rows are Table 2's models (no extra training) and its front is non-dominated."""
    result = quick[0]
    front = result.table("Table 5")
    lambda_rows = result.table("Table 2")
    # one sweep seed in quick mode: Table 2's median accuracy is that seed's accuracy
    assert front.column("test accuracy (%)") == pytest.approx(lambda_rows.column("accuracy median (%)"))
    points = list(zip(front.column("test accuracy (%)"), [-b for b in front.column("certified L")], strict=True))
    for point, on_front in zip(points, front.column("on L front"), strict=True):
        beaten = any(q[0] >= point[0] and q[1] >= point[1] and q != point for q in points)
        assert on_front == ("no" if beaten else "yes")
    chosen = [i for i, mark in enumerate(front.column("selected (knee)")) if mark == "yes"]
    assert len(chosen) == 1 and front.column("on L front")[chosen[0]] == "yes"


def test_median_of_counts_is_an_observed_value() -> None:
    assert circle._median_count([3, 8]) == 3
    assert circle._median_count([5, 1, 9]) == 5
    assert circle._median_count([None, None]) is None
