"""The ``noise`` recipe (paper 002) in quick mode: table shapes, figure, results.md, kept models, invariants.

The recipe runs once per module (about 15 s on 2 cores); each test reads what
it produced. Invariants checked are the ones that must hold whatever the
numbers: certified bounds above observed slopes and at most the spectral
product they are the minimum over, trained models better than the mean.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lipspline.certificates import certify_global
from lipspline.experiments import noise
from lipspline.experiments._noise_boston import load_boston, noise_directions, noisy, split
from lipspline.experiments.context import ExperimentContext, RecipeResult
from lipspline.experiments.runner import run_recipe
from lipspline.experiments.trainers import LocalTrainer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecipeResult, ExperimentContext]:
    root = tmp_path_factory.mktemp("noise")
    ctx = ExperimentContext(
        quick=True, trainer=LocalTrainer(), docs_dir=root / "docs", work_dir=root / "work", log=lambda _line: None
    )
    return run_recipe("noise", ctx), ctx


def test_boston_csv_is_parsed_without_importing_the_package() -> None:
    boston = load_boston()
    assert boston.X.shape == (506, 13) and boston.y.shape == (506,)
    assert (
        boston.feature_names[0] == "CRIM" and boston.feature_names[-1] == "LSTAT" and "MEDV" not in boston.feature_names
    )
    assert 22.4 < boston.y.mean() < 22.7 and boston.y.max() == 50.0


def test_scikit_learn_style_two_line_header_is_accepted(tmp_path: Path) -> None:
    boston = load_boston()
    lines = ["506,13,,,", ",".join([*boston.feature_names, "MEDV"])]
    lines += [",".join(repr(float(v)) for v in [*row, t]) for row, t in zip(boston.X, boston.y, strict=True)]
    path = tmp_path / "two_line.csv"
    path.write_text("\n".join(lines) + "\n")
    again = load_boston(path)
    np.testing.assert_array_equal(again.X, boston.X)
    np.testing.assert_array_equal(again.y, boston.y)
    path.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(ValueError, match="506"):
        load_boston(path)


def test_split_and_noise_follow_the_protocol() -> None:
    train, held = split(506, 3)
    assert len(train) == 405 and len(held) == 101 and not set(train) & set(held)
    np.testing.assert_array_equal(split(506, 3)[1], held)
    x = np.random.default_rng(0).normal(size=(101, 13))
    spread = np.arange(1.0, 14.0)
    u = noise_directions(101, 13, 3)
    np.testing.assert_array_equal(noisy(x, 0.0, spread, u), x)
    delta = noisy(x, 0.4, spread, u) - x
    assert (delta >= 0).all() and (delta <= 0.4 * spread).all()


def test_tables_have_the_protocols_shape(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, _ = quick
    maes = result.table("Held-out MAE")
    assert maes.columns == ["scheme", "weight per seed", "η=0", "η=0.2", "η=0.4", "η=0.6"]
    assert maes.column("scheme") == [s.label for s in noise.SCHEMES] + ["predict the training mean"]
    bounds = result.table("Spectral norms")
    assert bounds.column("scheme") == [s.label for s in noise.SCHEMES]
    assert [c for c in bounds.columns if c.startswith("‖W")] == ["‖W1‖₂", "‖W2‖₂", "‖W3‖₂", "‖W4‖₂"]
    sweep = result.table("Regularisation-weight sweeps")
    grid = noise.settings(ExperimentContext(quick=True, trainer=LocalTrainer(), docs_dir=Path(), work_dir=Path())).grid
    assert len(sweep.rows) == len(grid) * len(noise.TUNED)
    for column in ("chosen", "on scheme's front", "on pooled front"):
        assert set(sweep.column(column)) <= {"1/1", "0/1"}, column


def _sweep_rows(result: RecipeResult) -> list[dict]:
    sweep = result.table("Regularisation-weight sweeps")
    return [dict(zip(sweep.columns, row, strict=True)) for row in sweep.rows]


def _dominated(row: dict, others: list[dict]) -> bool:
    """Checked here from the table alone: another row with an inner MAE and a certified L at least as good,
    one strictly better."""
    mine = (row["inner val MAE (clean)"], row["certified L (raw map)"])
    for other in others:
        theirs = (other["inner val MAE (clean)"], other["certified L (raw map)"])
        if other is not row and all(t <= m for t, m in zip(theirs, mine, strict=True)) and theirs != mine:
            return True
    return False


def test_sweep_fronts_are_exactly_the_non_dominated_trials(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    """One seed in quick mode, so each row is one trial: the fronts and the choice are recomputed independently."""
    rows = _sweep_rows(quick[0])
    assert all(r["certified L (raw map)"] > 0 and math.isfinite(r["certified L (raw map)"]) for r in rows)
    for row in rows:
        assert (row["on pooled front"] == "1/1") == (not _dominated(row, rows)), row
        same_scheme = [r for r in rows if r["scheme"] == row["scheme"]]
        assert (row["on scheme's front"] == "1/1") == (not _dominated(row, same_scheme)), row
    assert any(r["on pooled front"] == "1/1" for r in rows)


def test_the_chosen_weight_is_the_sweeps_lowest_validation_mae(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, _ = quick
    rows = _sweep_rows(result)
    maes = result.table("Held-out MAE")
    chosen_weight = dict(zip(maes.column("scheme"), maes.column("weight per seed"), strict=True))
    for scheme in noise.TUNED:
        mine = [r for r in rows if r["scheme"] == scheme.label]
        chosen = [r for r in mine if r["chosen"] == "1/1"]
        assert len(chosen) == 1, scheme.label
        assert chosen[0]["inner val MAE (clean)"] == min(r["inner val MAE (clean)"] for r in mine)
        # the model trained on the whole training part used the weight the sweep chose
        assert float(chosen_weight[scheme.label]) == pytest.approx(chosen[0]["weight"], rel=1e-2)
        assert chosen[0]["on scheme's front"] == "1/1"  # the most accurate point is always on its front


def test_every_scheme_beats_the_training_mean_on_clean_inputs(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    maes = quick[0].table("Held-out MAE")
    clean = maes.column("η=0")
    *schemes, mean_predictor = clean
    for label, value in zip(maes.column("scheme"), schemes, strict=False):
        assert math.isfinite(value) and value < mean_predictor, label
    for eta in ("η=0.2", "η=0.4", "η=0.6"):
        assert all(math.isfinite(v) for v in maes.column(eta))


def test_certificates_lie_between_observed_slopes_and_the_spectral_product(
    quick: tuple[RecipeResult, ExperimentContext],
) -> None:
    bounds = quick[0].table("Spectral norms")
    for row in bounds.rows:
        cell = dict(zip(bounds.columns, row, strict=True))
        assert cell["lower bound (raw map)"] > 0
        assert cell["certified (raw map)"] >= cell["lower bound (raw map)"], cell["scheme"]
        assert cell["certified (standardised core)"] <= cell["spectral product"] * (1 + 1e-6), cell["scheme"]
        product = np.prod([cell[f"‖W{i}‖₂"] for i in range(1, 5)])
        assert cell["Π‖W_l‖₂"] == pytest.approx(product, rel=1e-12)
        if cell["scheme"].startswith("ReLU"):
            assert cell["Π max Lip σ_l"] == 1.0
            assert cell["spectral product"] == pytest.approx(cell["Π‖W_l‖₂"], rel=1e-12)


def test_figure_and_results_section_are_written(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, ctx = quick
    assert [p.name for p in result.figures] == ["noise-mae_vs_eta.png", "noise-pareto-front.png"]
    assert all(figure.read_bytes()[:8] == PNG for figure in result.figures)
    text = (ctx.docs_dir / "results.md").read_text()
    section = text[text.index("<!-- experiment:noise:start -->") : text.index("<!-- experiment:noise:end -->")]
    assert f"## {noise.TITLE}" in section and "quick mode" in section
    assert "figures/noise-mae_vs_eta.png" in section and "Held-out MAE" in section
    assert "figures/noise-pareto-front.png" in section and "Regularisation-weight sweeps" in section
    assert result.choices and all(choice in section for choice in result.choices)
    # a "|" inside a header or cell would split a Markdown table column
    for table in result.tables:
        assert not any("|" in str(cell) for cell in [*table.columns, *(c for row in table.rows for c in row)])


def test_kept_models_are_the_measured_ones(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, ctx = quick
    kept = {k.label: k for k in ctx.kept_models("noise")}
    assert sorted(kept) == sorted(s.key for s in noise.SCHEMES)
    bounds = result.table("Spectral norms")
    certified = dict(zip(bounds.column("scheme"), bounds.column("certified (raw map)"), strict=True))
    for scheme in noise.SCHEMES:
        model = kept[scheme.key]
        assert model.inputs.shape == (405, 13) and model.info["seed"] == 0
        assert model.model.config.objective.mode == scheme.mode
        assert model.model.config.architecture.activation == scheme.activation
        # quick mode has one seed, so the table's median is this model's certificate
        assert certify_global(model.model.network).certified == pytest.approx(certified[scheme.label], rel=1e-12)
