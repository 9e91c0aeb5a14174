"""The ``bound_kinds`` recipe (paper 004) in quick mode, on small models kept here rather than by the recipes.

Keeping a few tiny models (a few epochs each) in the work directory under the
three source recipes' names makes the test fast and independent of those
recipes, and covers the kinds of network bound_kinds must handle: a deep
spline, a ReLU net, a regression net with several hidden layers, a
1-Lipschitz spline net with one input (where the exact constant is known) and
a GroupSort net (where the BV² bounds and LipSDP do not apply).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from api_schemas import TrainingConfig
from lipspline import experiments
from lipspline.data import Dataset, from_arrays, make_circle
from lipspline.experiments import bound_kinds, runner
from lipspline.experiments.context import ExperimentContext, KeptModel, RecipeResult
from lipspline.experiments.runner import run_recipe
from lipspline.experiments.trainers import LocalTrainer


def _config(hidden: list[int], activation: str, mode: str = "bv2", epochs: int = 3) -> TrainingConfig:
    return TrainingConfig.model_validate(
        {
            "architecture": {"hidden": hidden, "activation": activation},
            "spline": {"knots": 11, "range": 2.0},
            "objective": {"mode": mode, "lambda": 1e-4},
            "training": {"epochs": epochs, "batch_size": 32, "lr": 1e-2, "validation_split": 0.0, "seed": 0},
            "device": "cpu",
        }
    )


def _regression(n: int, features: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n, features))
    y = np.sin(2.0 * x[:, 0]) + 0.5 * x[:, -1] ** 2
    return from_arrays(x, y, task="regression")


#: (recipe, label, dataset, config): one entry per kind of network bound_kinds must handle
MODELS = [
    ("circle", "deepspline", lambda: make_circle(200, seed=0), _config([2], "deepspline")),
    ("circle", "relu", lambda: make_circle(200, seed=1), _config([6], "relu")),
    ("noise", "spline-3x8", lambda: _regression(150, 5, 2), _config([8, 8, 8], "deepspline")),
    ("one_lipschitz", "spline-1d", lambda: _regression(120, 1, 3), _config([6, 6], "deepspline", "one_lipschitz")),
    ("one_lipschitz", "groupsort-1d", lambda: _regression(120, 1, 4), _config([6, 6], "groupsort", "one_lipschitz")),
]


def _keep_all(ctx: ExperimentContext, only: set[str] | None = None) -> None:
    trainer = LocalTrainer()
    for recipe, label, data, config in MODELS:
        if only is None or recipe in only:
            dataset = data()
            ctx.keep_model(recipe, label, trainer.train(dataset, config).model, dataset.X, seed=0)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecipeResult, ExperimentContext]:
    root = tmp_path_factory.mktemp("bound_kinds")
    ctx = ExperimentContext(
        quick=True, trainer=LocalTrainer(), docs_dir=root / "docs", work_dir=root / "work", log=lambda _line: None
    )
    _keep_all(ctx)
    return run_recipe("bound_kinds", ctx), ctx


def _rows(result: RecipeResult) -> list[dict]:
    table = result.table("Table 1")
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]


def test_one_row_per_kept_model_with_every_bound_by_name(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, _ = quick
    table = result.table("Table 1")
    assert table.columns[:3] == ["recipe", "model", "hidden units"]
    assert table.columns[3:12] == list(bound_kinds.ANALYTICAL) == [
        "bv2_mixed", "frobenius", "spectral_product", "per_neuron_scaled", "liplt", "liplt_scaled", "partition",
        "lipsdp_layerwise", "lipsdp_neuron",
    ]
    assert [(r["recipe"], r["model"]) for r in _rows(result)] == sorted(
        [(recipe, label) for recipe, label, _, _ in MODELS], key=lambda x: (bound_kinds.SOURCES.index(x[0]), x[1])
    )
    hidden = {r["model"]: r["hidden units"] for r in _rows(result)}
    assert hidden == {"deepspline": 2, "relu": 6, "spline-3x8": 24, "spline-1d": 12, "groupsort-1d": 12}


def test_certified_is_the_smallest_bound_and_above_every_lower_bound(
    quick: tuple[RecipeResult, ExperimentContext],
) -> None:
    for row in _rows(quick[0]):
        bounds = {name: row[name] for name in bound_kinds.ANALYTICAL if row[name] is not None}
        lower = max(row["empirical (pairs)"], row["local (Jacobian)"])
        assert lower > 0
        assert row["certified"] == min(bounds.values()) and row["certified by"] in bounds
        assert all(value >= lower for value in bounds.values()), row
        assert row["certified"] >= row["empirical (pairs)"] and row["certified"] >= row["local (Jacobian)"]
        assert row["tightness"] == pytest.approx(row["certified"] / lower) and row["tightness"] >= 1.0


def test_exact_constant_lies_between_lower_and_certified(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, ctx = quick
    rows = {r["model"]: r for r in _rows(result)}
    for kept in ctx.kept_models("one_lipschitz"):
        row = rows[kept.label]
        lower = max(row["empirical (pairs)"], row["local (Jacobian)"])
        assert lower <= row["exact (1-D)"] * (1 + 1e-9) and row["exact (1-D)"] <= row["certified"]
        # 1-Lipschitz core; the served map adds the scaling: at most target_scale / input_scale
        network = kept.model.network
        budget = float(network.target_scale) / float(network.input_scale.min())
        assert row["certified"] <= budget * (1 + 1e-6)
    for name in ("deepspline", "relu", "spline-3x8"):
        assert rows[name]["exact (1-D)"] is None


def test_inapplicable_bounds_are_skipped_with_a_reason(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, _ = quick
    rows = {r["model"]: r for r in _rows(result)}
    groupsort = rows["groupsort-1d"]
    assert groupsort["bv2_mixed"] is None and groupsort["frobenius"] is None and groupsort["lipsdp_neuron"] is None
    assert groupsort["LipSDP s"] is not None  # attempted, refused
    # every missing bound has a note naming it and the model, and no note names a bound that is present
    missing = {
        (f"{r['recipe']}/{r['model']}", b) for r in rows.values() for b in bound_kinds.ANALYTICAL if r[b] is None
    }
    explained = set()
    for note in result.table("Table 1").notes:
        if note.startswith("skipped "):
            bound = note[len("skipped ") :].split(":", 1)[0]
            models = note[note.rindex("(") + 1 : -1].split(", ")
            explained |= {(model, bound) for model in models}
    assert missing == explained
    # the closed-form bounds apply to every element-wise network
    for name in ("deepspline", "relu", "spline-3x8", "spline-1d"):
        assert all(rows[name][b] is not None for b in bound_kinds.ANALYTICAL[:5])


def test_summary_table_and_results_md(quick: tuple[RecipeResult, ExperimentContext]) -> None:
    result, ctx = quick
    summary = result.table("Table 2")
    ratios = dict(zip(summary.column("kind"), summary.column("min ratio"), strict=True))
    assert ratios["certified (smallest analytical)"] >= 1.0
    assert all(v >= 1.0 for k, v in ratios.items() if k.startswith("analytical"))
    assert all(m <= 1.0 for m in summary.column("max ratio")[-2:])  # the lower bounds never exceed the best one
    assert summary.column("models")[-1] == len(MODELS)
    text = (ctx.docs_dir / "results.md").read_text()
    assert "<!-- experiment:bound_kinds:start -->" in text and bound_kinds.TITLE in text
    # the models were there, so no source recipe ran (they would have written their own sections)
    for name in bound_kinds.SOURCES:
        assert f"<!-- experiment:{name}:start -->" not in text
    assert not result.figures


def test_missing_models_make_the_source_recipe_run_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A source recipe without kept models is run (same mode) before measuring; here a stand-in keeps one model."""
    ctx = ExperimentContext(quick=True, trainer=LocalTrainer(), docs_dir=tmp_path / "docs", work_dir=tmp_path / "w",
                            log=lambda _line: None)
    _keep_all(ctx, only={"circle", "noise"})
    ran: list[tuple[str, bool]] = []

    def fake_run_recipe(name: str, context: ExperimentContext) -> None:
        ran.append((name, context.quick))
        _keep_all(context, only={name})

    monkeypatch.setattr(experiments, "recipe_module", lambda name: None)  # importable, whatever is committed
    monkeypatch.setattr(runner, "run_recipe", fake_run_recipe)
    result = bound_kinds.run(ctx)
    assert ran == [("one_lipschitz", True)]
    assert len(result.table("Table 1").rows) == len(MODELS)
    assert any("one_lipschitz: run by bound_kinds" in c for c in result.choices)


def test_a_source_recipe_that_does_not_exist_is_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ctx = ExperimentContext(quick=True, trainer=LocalTrainer(), docs_dir=tmp_path / "docs", work_dir=tmp_path / "w",
                            log=lambda _line: None)
    _keep_all(ctx, only={"circle"})

    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named 'lipspline.experiments.{name}'")

    monkeypatch.setattr(experiments, "recipe_module", missing)
    result = bound_kinds.run(ctx)
    assert {row[0] for row in result.table("Table 1").rows} == {"circle"}
    assert sum("cannot be imported" in c for c in result.choices) == 2


def test_an_unsound_bound_is_refused(tmp_path: Path) -> None:
    dataset = make_circle(100, seed=5)
    model = LocalTrainer().train(dataset, _config([2], "deepspline", epochs=1)).model
    kept = KeptModel("circle", "x", model, dataset.X, {})
    measured = bound_kinds.measure(
        kept, bound_kinds.settings_for(ExperimentContext(True, LocalTrainer(), tmp_path, tmp_path))
    )
    bound_kinds.check_invariants(measured)  # the real one passes
    measured.bounds["spectral_product"] = measured.best_lower * 0.5
    with pytest.raises(RuntimeError, match="unsound"):
        bound_kinds.check_invariants(measured)
    measured.bounds.pop("spectral_product")
    measured.certified = math.nextafter(measured.best_lower, 0.0)
    with pytest.raises(RuntimeError, match="unsound"):
        bound_kinds.check_invariants(measured)
