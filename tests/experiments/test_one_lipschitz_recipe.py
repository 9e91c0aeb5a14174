"""The ``one_lipschitz`` recipe (paper 003) in quick mode, its targets, and its invariant checks.

The recipe runs once per module (a few seconds). The invariants: every
certificate (served map and standardised core) is at most 1 + margin and at
least the exact Lipschitz constant of the same 1-D map.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lipspline.certificates import certify_global, exact_lipschitz_1d
from lipspline.experiments import one_lipschitz
from lipspline.experiments._onelip_targets import TARGETS, alternating_slopes, cosine, three_slopes
from lipspline.experiments.context import ExperimentContext, RecipeResult
from lipspline.experiments.runner import run_recipe
from lipspline.experiments.trainers import LocalTrainer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecipeResult, ExperimentContext]:
    root = tmp_path_factory.mktemp("one_lipschitz")
    ctx = ExperimentContext(
        quick=True, trainer=LocalTrainer(), docs_dir=root / "docs", work_dir=root / "work", log=lambda _line: None
    )
    return run_recipe("one_lipschitz", ctx), ctx


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_targets_are_the_papers_one_lipschitz_functions(seed: int) -> None:
    f1, f2 = alternating_slopes(seed), three_slopes(seed)
    assert len(f1.breakpoints) == len(f2.breakpoints) == 11  # 9 knots inside [-1, 1]
    np.testing.assert_allclose(f1.slopes, [(-1.0) ** i for i in range(10)], rtol=0, atol=1e-12)
    slopes = np.round(f2.slopes, 9)
    assert set(slopes) <= {-1.0, 0.0, 1.0} and slopes[0] == 1.0
    assert (np.diff(slopes) != 0).all()
    x = np.linspace(-1.0, 1.0, 400_001)
    for f in (f1, f2, cosine):
        y = f(x)
        assert abs(y.mean()) < 1e-5
        assert np.abs(np.diff(y) / np.diff(x)).max() <= 1.0 + 1e-6
    assert alternating_slopes(seed + 1).breakpoints[1] != f1.breakpoints[1]
    assert np.abs(np.diff(cosine(x)) / np.diff(x)).max() > 0.999


def test_tables_have_one_row_per_activation(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, _ = quick
    labels = [a.label for a in one_lipschitz.ACTIVATIONS]
    mse = result.table("Test MSE")
    assert mse.columns == ["activation", "f1", "f2", "f3"]
    assert mse.column("activation") == [*labels, "constant (training mean)"]
    assert all(math.isfinite(v) and v >= 0 for row in mse.rows for v in row[1:])
    assert result.table("Lipschitz constants").column("activation") == labels
    budget = result.table("Scaling budget")
    assert budget.column("target") == [t.key for t in TARGETS]


def test_every_certificate_is_at_most_one_and_at_least_exact(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    table = quick[0].table("Lipschitz constants")
    bound = 1.0 + one_lipschitz.MARGIN
    for row in table.rows:
        cell = dict(zip(table.columns, row, strict=True))
        assert cell[f"all certified ≤ 1 + {one_lipschitz.MARGIN:g}"] is True
        for part in ("served map", "standardised core"):
            assert 0 < cell[f"exact ({part})"] <= cell[f"certified ({part})"] <= bound, (cell["activation"], part)


def test_served_map_keeps_the_whole_budget(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    """one_lipschitz scales x and y by one common factor, so the served map's budget is exactly 1."""
    table = quick[0].table("Scaling budget")
    for row in table.rows:
        cell = dict(zip(table.columns, row, strict=True))
        assert cell["budget s_y/s_x"] == pytest.approx(cell["target scale s_y"] / cell["input scale s_x"], rel=1e-12)
        assert cell["budget s_y/s_x"] == pytest.approx(1.0, rel=1e-12)


def test_figure_and_results_section_are_written(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, ctx = quick
    assert [p.name for p in result.figures] == ["one_lipschitz-fits.png"]
    assert result.figures[0].read_bytes()[:8] == PNG
    text = (ctx.docs_dir / "results.md").read_text()
    start, end = "<!-- experiment:one_lipschitz:start -->", "<!-- experiment:one_lipschitz:end -->"
    section = text[text.index(start) : text.index(end)]
    assert f"## {one_lipschitz.TITLE}" in section and "figures/one_lipschitz-fits.png" in section
    assert "Test MSE" in section and all(choice in section for choice in result.choices)
    # a "|" inside a header or cell would split a Markdown table column
    for table in result.tables:
        assert not any("|" in str(cell) for cell in [*table.columns, *(c for row in table.rows for c in row)])


def test_kept_models_are_one_lipschitz_and_certified(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    _, ctx = quick
    kept = {k.label: k for k in ctx.kept_models("one_lipschitz")}
    assert sorted(kept) == sorted(a.key for a in one_lipschitz.ACTIVATIONS)
    for key, item in kept.items():
        assert item.info["target"] == "f1" and item.info["seed"] == 0
        assert item.inputs.shape == (200, 1)
        assert item.model.config.objective.mode == "one_lipschitz"
        assert item.model.config.architecture.activation == key
        certified = certify_global(item.model.network).certified
        assert certified == pytest.approx(item.info["certified"], rel=1e-12)
        assert exact_lipschitz_1d(item.model.network) <= certified <= 1.0 + one_lipschitz.MARGIN


def test_a_broken_invariant_is_reported() -> None:
    good = one_lipschitz.Measured(0.1, 0.5, 0.9, 0.4, 0.8, 0.6, 0.6, 0.36)
    assert one_lipschitz.violations_of("ok", good) == []
    over = one_lipschitz.Measured(0.1, 0.5, 1.001, 0.4, 0.8, 0.6, 0.6, 0.36)
    assert any("standardised core" in v and "> 1" in v for v in one_lipschitz.violations_of("x", over))
    under = one_lipschitz.Measured(0.1, 0.3, 0.9, 0.4, 0.8, 0.6, 0.6, 0.36)
    assert any("below the exact" in v for v in one_lipschitz.violations_of("y", under))


def test_settings_meet_the_protocol_minimums(tmp_path: Path) -> None:
    ctx = ExperimentContext(quick=False, trainer=LocalTrainer(), docs_dir=tmp_path, work_dir=tmp_path)
    full = one_lipschitz.settings(ctx)
    assert len(full.seeds) >= 5 and full.n_train == 1000 and full.n_test == 10000
    config = one_lipschitz.training_config(one_lipschitz.ACTIVATIONS[-1], full, 0)
    assert config.architecture.hidden == [10, 10, 10] and config.objective.mode == "one_lipschitz"
