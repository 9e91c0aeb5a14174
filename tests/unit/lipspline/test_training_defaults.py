"""The training defaults of issue 14: early stopping, restore-best, stop reasons, the step budget,
the spline range rule, and that configs written before them still mean what they meant."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from api_schemas import TrainingConfig
from lipspline.data import fit_scaling, from_arrays, make_circle, train_validation_split
from lipspline.nn import serialization
from lipspline.nn.networks import SplineNetwork
from lipspline.nn.spline_range import COVERING_QUANTILE, covering_ranges, out_of_grid_fractions
from lipspline.objectives import resolve_loss
from lipspline.training.convergence import MIN_LR_SCALE, ConvergenceMonitor
from lipspline.training.loop import evaluate, fit
from lipspline.training.lr_schedule import lr_factor
from lipspline.training.plan import (
    MAX_EPOCHS,
    MIN_EPOCHS,
    STEP_BUDGET,
    automatic_epochs,
    automatic_patience,
    plan_training,
)
from tests.unit.lipspline.test_training import assert_same_state, state


def config(**overrides) -> TrainingConfig:
    base = {
        "architecture": {"hidden": [8]},
        "spline": {"knots": 11},
        "training": {"epochs": 60, "batch_size": 32, "lr": 2e-2, "seed": 1, "validation_split": 0.3, "patience": 3},
        "device": "cpu",
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainingConfig.model_validate(base)


def noisy_circle(n: int = 200, seed: int = 0):
    """The circle with 20 % of labels flipped: the validation loss bottoms out early, then rises."""
    data = make_circle(n, seed=seed)
    flip = np.random.default_rng(seed).uniform(size=n) < 0.2
    return from_arrays(data.X, np.where(flip, 1 - data.y, data.y), task="classification")


# ---- early stopping and restore-best ---------------------------------------------------------
def test_early_stopping_serves_the_best_epochs_weights():
    data = noisy_circle()
    cfg = config(training={"min_improvement": 0.0})  # every decrease is progress: stops `patience` after the best
    result = fit(data, cfg)
    outcome = result.outcome
    assert outcome.stop_reason == "converged" and outcome.epochs_run < 60
    losses = [r.validation_metrics["loss"] for r in result.history]
    assert outcome.best_epoch == 1 + int(np.argmin(losses)) == outcome.served_epoch
    # stopped exactly `patience` epochs after the best one, and the history marks the best
    assert outcome.epochs_run == outcome.best_epoch + 3
    assert [r.epoch for r in result.history if r.improved][-1] == outcome.best_epoch
    # the served weights are the best epoch's: a run that ends at that epoch has the same state
    truncated = fit(
        data,
        config(
            training={
                "epochs": outcome.best_epoch, "early_stopping": False, "restore_best": False, "min_improvement": 0.0
            }
        ),
    )
    assert truncated.outcome.stop_reason == "max_epochs"
    assert_same_state(state(result), state(truncated))
    assert result.model.metrics["training"]["served_epoch"] == outcome.best_epoch
    # ... and the served model's validation loss is the lowest of the history
    network = result.model.network
    _, val_idx = train_validation_split(data.n_samples, 0.3, 1)
    z = network.standardize(torch.as_tensor(data.X[val_idx]))
    y = torch.as_tensor(data.encoded_targets()[val_idx])
    loss_name = resolve_loss("auto", "classification", 1)
    served_loss = evaluate(network, z, y, "classification", loss_name, 1.0)["loss"]
    assert served_loss == pytest.approx(min(losses), rel=1e-5)


def test_without_restore_best_the_last_epoch_is_served():
    result = fit(noisy_circle(), config(training={"restore_best": False}))
    assert result.outcome.stop_reason == "converged"
    assert result.outcome.served_epoch == result.outcome.epochs_run != result.outcome.best_epoch


def test_resume_equals_uninterrupted_across_early_stopping(tmp_path):
    data = noisy_circle(seed=2)
    cfg = config(training={"seed": 2})
    full = fit(data, cfg)
    assert full.outcome.stop_reason == "converged"
    path = tmp_path / "ckpt.safetensors"
    calls = []
    interrupted = fit(data, cfg, checkpoint_path=path, callback=calls.append, should_stop=lambda: len(calls) >= 2)
    assert interrupted.stopped and interrupted.outcome.stop_reason == "cancelled"
    resumed = fit(data, cfg, checkpoint_path=path, resume=True)
    assert resumed.outcome == full.outcome
    assert_same_state(state(full), state(resumed))
    assert [r.lr for r in resumed.history] == [r.lr for r in full.history]


# ---- stop reasons ----------------------------------------------------------------------------
def test_stop_reasons_max_epochs_time_limit_and_cancelled():
    data = make_circle(150, seed=3)
    ran_out = fit(data, config(training={"epochs": 4, "early_stopping": False}))
    assert ran_out.outcome.stop_reason == "max_epochs" and ran_out.outcome.epochs_run == 4 and not ran_out.stopped

    began = time.perf_counter()
    timed = fit(data, config(training={"epochs": 100_000, "time_limit_s": 0.3, "early_stopping": False}))
    assert timed.outcome.stop_reason == "time_limit" and not timed.stopped
    assert 1 <= timed.outcome.epochs_run < 100_000 and time.perf_counter() - began < 30
    assert sum(r.elapsed_s for r in timed.history) >= 0.3
    assert timed.model.metrics["training"]["stop_reason"] == "time_limit"

    cancelled = fit(data, config(), should_stop=lambda: True)
    assert cancelled.stopped and cancelled.outcome.stop_reason == "cancelled"


def test_without_validation_there_is_no_early_stopping_by_default():
    result = fit(noisy_circle(), config(training={"validation_split": 0.0, "epochs": 12}))
    assert result.outcome.stop_reason == "max_epochs" and result.outcome.epochs_run == 12
    assert result.outcome.monitor == "training" and result.outcome.served_epoch == 12


def test_plateau_halves_the_lr_and_patience_ends_the_run():
    monitor = ConvergenceMonitor(patience=5, plateau_patience=2)
    assert monitor.record(1, 1.0, plateau=True)
    for epoch in (2, 3):
        assert not monitor.record(epoch, 1.0, plateau=True)
    assert monitor.lr_scale == 0.5 and not monitor.converged
    assert monitor.record(4, 0.5, plateau=True) and monitor.best_epoch == 4
    for epoch in range(5, 10):
        monitor.record(epoch, math.nan, plateau=True)  # a non-finite loss never improves
    assert monitor.converged and monitor.best_epoch == 4 and monitor.lr_scale == 0.125
    restored = ConvergenceMonitor.from_json(monitor.to_json())
    assert restored == monitor
    for epoch in range(10, 40):
        monitor.record(epoch, 1.0, plateau=True)
    assert monitor.lr_scale == MIN_LR_SCALE


def test_a_creeping_loss_is_not_progress_but_is_still_served():
    monitor = ConvergenceMonitor(patience=5, plateau_patience=100, min_improvement=0.01)
    bests = [monitor.record(epoch, 1.0 - 0.001 * epoch, plateau=True) for epoch in range(1, 7)]
    assert all(bests) and monitor.best_epoch == 6  # every epoch is the lowest loss so far ...
    assert monitor.converged  # ... but none in 5 epochs was 1 % below epoch 1's: converged


def test_tied_certified_levels_serve_the_latest_epoch_without_prolonging_the_run():
    strict = ConvergenceMonitor(patience=3, plateau_patience=100)
    latest = ConvergenceMonitor(patience=3, plateau_patience=100)
    errors = [0.5, 0.2, 0.2, 0.2, 0.2]  # 1 - certified accuracy: a level reached at epoch 2, then held
    strict_bests = [strict.record(e, v, plateau=False) for e, v in enumerate(errors, start=1)]
    latest_bests = [latest.record(e, v, plateau=False, ties_win=True) for e, v in enumerate(errors, start=1)]
    assert strict_bests == [True, True, False, False, False] and strict.best_epoch == 2
    assert latest_bests == [True, True, True, True, True] and latest.best_epoch == 5
    assert strict.converged and latest.converged  # a tie is not progress: both stop after epoch 5
    assert not latest.record(6, 0.25, plateau=False, ties_win=True) and latest.best_epoch == 5


def test_lr_schedules():
    assert lr_factor("none", 5, 10, 0, 0.25) == 1.0
    assert lr_factor("plateau", 5, 10, 0, 0.25) == 0.25
    assert [lr_factor("cosine", e, 10, 0, 1.0) for e in (0, 5)] == [1.0, pytest.approx(0.5)]
    assert [lr_factor("plateau", e, 10, 4, 1.0) for e in range(5)] == pytest.approx([0.1, 0.325, 0.55, 0.775, 1.0])


# ---- the step budget -------------------------------------------------------------------------
def test_step_budget_rule_scales_with_the_data():
    # the circle's 800 training rows at batch 32: 25 steps per epoch, the whole budget
    assert automatic_epochs(800, 32) == STEP_BUDGET // 25
    # a large table gets the minimum number of passes, not the budget
    assert automatic_epochs(10_000_000, 32) == MIN_EPOCHS
    # a handful of rows gets the epoch cap, not 10,000 one-step epochs
    assert automatic_epochs(5, 32) == MAX_EPOCHS
    assert automatic_patience(800, 32) >= automatic_patience(100_000, 32)
    loop = TrainingConfig().training
    plan = plan_training(loop, 800, 200)
    assert plan.epochs_automatic and plan.early_stopping and plan.restore_best and plan.monitor == "validation"
    assert not plan_training(loop, 800, 0).early_stopping
    assert plan_training(loop, 800, 200, epoch_cap=50).epochs == 50  # a deployment's cap on automatic epochs
    explicit = plan_training(TrainingConfig.model_validate({"training": {"epochs": 7}}).training, 800, 200)
    assert explicit.epochs == 7 and not explicit.epochs_automatic


def test_fit_without_epochs_plans_them_from_the_budget():
    data = make_circle(40, seed=1)
    cfg = config(training={"epochs": None, "batch_size": 8, "validation_split": 0.25, "patience": 2})
    result = fit(data, cfg)
    assert result.outcome.epochs_planned == automatic_epochs(30, 8) == result.history[0].epochs
    assert result.outcome.stop_reason == "converged"


# ---- the spline range rule -------------------------------------------------------------------
@pytest.mark.parametrize("init", ["relu", "identity"])
def test_range_rule_covers_initial_pre_activations_on_shifted_scaled_data(init):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)) * np.array([1e-3, 1.0, 50.0, 1e3, 1e5, 3.0]) + np.array([1e4, -7, 0, 3e5, 1, 2])
    data = from_arrays(x, x[:, 1] + x[:, 2] / 50, task="regression")
    cfg = config(architecture={"hidden": [64, 64, 64]}, spline={"init": init}, training={"epochs": 1})
    scaling = fit_scaling(data)
    z = torch.as_tensor(scaling.transform_inputs(data.X), dtype=torch.float32)
    torch.manual_seed(0)
    fresh = SplineNetwork(cfg, 6, 1)
    ranges = covering_ranges(fresh, z)
    assert len(ranges) == 3 and all(r >= 1.0 for r in ranges)
    resolved = cfg.model_copy(update={"spline": cfg.spline.model_copy(update={"layer_ranges": ranges})})
    torch.manual_seed(0)
    network = SplineNetwork(resolved, 6, 1)
    inside = [1 - f for f in out_of_grid_fractions(network, z)]
    assert all(share >= COVERING_QUANTILE for share in inside), inside
    # the same data with the old fixed range is not covered in every layer under the identity init
    # (pre-activations grow with depth); the rule does not depend on that luck
    torch.manual_seed(0)
    narrow = SplineNetwork(config(architecture={"hidden": [64, 64, 64]}, spline={"range": 0.2, "init": init}), 6, 1)
    assert max(out_of_grid_fractions(narrow, z)) > 0.1


def test_fit_reports_ranges_out_of_grid_and_warns_when_the_grid_misses():
    data = make_circle(200, seed=4)
    auto = fit(data, config(training={"epochs": 3}))
    assert auto.model.config.spline.layer_ranges == auto.outcome.spline_ranges
    assert len(auto.outcome.out_of_grid_fraction) == 1 and auto.outcome.warnings == []
    narrow = fit(data, config(spline={"range": 0.01}, training={"epochs": 3}))
    assert narrow.outcome.spline_ranges == [0.01] and narrow.outcome.out_of_grid_fraction[0] > 0.5
    assert narrow.model.metrics["warnings"] and "spline layer 0" in narrow.outcome.warnings[0]


def test_resolved_ranges_survive_save_and_load(tmp_path):
    result = fit(make_circle(150, seed=5), config(architecture={"hidden": [6, 5]}, training={"epochs": 2}))
    assert result.model.config.spline.range is None and len(result.model.config.spline.layer_ranges) == 2
    serialization.save(result.model, tmp_path / "m")
    loaded = serialization.load(tmp_path / "m")
    probe = np.random.default_rng(0).uniform(-3, 3, size=(64, 2))
    assert torch.equal(result.model.outputs(probe), loaded.outputs(probe))


def test_layer_ranges_must_match_the_activation_layers():
    with pytest.raises(ValueError, match="layer_ranges"):
        SplineNetwork(config(architecture={"hidden": [4, 4]}, spline={"layer_ranges": [1.0]}), 2, 1)


# ---- backwards compatibility -----------------------------------------------------------------
OLD_DEFAULTS_WRITTEN_OUT = {
    "architecture": {"kind": "mlp", "hidden": [16, 16], "activation": "deepspline"},
    "spline": {"knots": 21, "range": 2.0, "init": "relu", "lr": None},
    "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4, "auto_lambda": False, "outer_norm": "l1"},
    "training": {"epochs": 100, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9, "seed": 0,
                 "validation_split": 0.2, "stop_check_every": 10},
    "device": "auto",
}


def test_configs_written_before_the_new_defaults_validate_and_keep_their_settings():
    cfg = TrainingConfig.model_validate(OLD_DEFAULTS_WRITTEN_OUT)
    assert cfg.training.epochs == 100 and cfg.training.batch_size == 64 and cfg.training.lr == 1e-3
    assert cfg.spline.range == 2.0 and cfg.architecture.hidden == [16, 16]
    assert TrainingConfig.model_validate(cfg.to_json()) == cfg


def test_explicit_settings_reproduce_the_old_loop_exactly():
    """With no schedule and no early stopping, an explicit config trains as it did before the defaults:
    the same weights as a hand-written Adam loop over the same batches."""
    data = make_circle(120, seed=6)
    cfg = config(
        spline={"range": 2.0},
        training={"epochs": 3, "lr": 1e-2, "lr_schedule": "none", "early_stopping": False, "validation_split": 0.0},
        objective={"mode": "none"},
    )
    result = fit(data, cfg)
    assert result.outcome.stop_reason == "max_epochs" and result.outcome.spline_ranges == [2.0]
    assert [r.lr for r in result.history] == [1e-2] * 3
    # the reference: the pre-issue loop, written out
    from lipspline.objectives import data_loss
    from lipspline.training.loop import build_network

    scaling = fit_scaling(data)
    network = build_network(cfg, data, scaling)
    optimizer = torch.optim.Adam(
        [{"params": network.weight_parameters(), "lr": 1e-2}, {"params": network.spline_parameters(), "lr": 1e-2}]
    )
    z = torch.as_tensor(scaling.transform_inputs(data.X), dtype=torch.float32)
    y = torch.as_tensor(data.encoded_targets())
    shuffle = torch.Generator().manual_seed(cfg.training.seed)
    for _ in range(3):
        order = torch.randperm(len(y), generator=shuffle)
        for begin in range(0, len(y), 32):
            batch = order[begin : begin + 32]
            loss = data_loss("bce", network.forward_standardized(z[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    assert_same_state(state(result), {k: v.clone() for k, v in network.state_dict().items()})
