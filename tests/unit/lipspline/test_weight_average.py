"""training.ema_decay: the averaged weights are validated, monitored, served, checkpointed and certified."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from api_schemas import TrainingConfig
from lipspline.certificates import certify_global
from lipspline.data import make_circle
from lipspline.training.loop import fit
from lipspline.training.weight_average import WeightAverage


def config(**training) -> TrainingConfig:
    return TrainingConfig.model_validate({
        "architecture": {"hidden": [8, 8]},
        "spline": {"knots": 11, "range": 2.0},
        "objective": {"mode": "bv2", "lambda": 1e-3, "mu": 1e-4},
        "training": {"epochs": 5, "batch_size": 32, "lr": 5e-3, "seed": 3, "validation_split": 0.25, **training},
        "device": "cpu",
    })


def test_average_follows_the_warmed_up_decay_and_the_swap_restores_the_trained_weights():
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(0.0)
    average = WeightAverage(layer, decay=0.5)
    average.update()  # the first update copies
    expected = 1.0
    for t, value in enumerate([3.0, 5.0, 9.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
        weight = min(0.5, (1 + t) / (10 + t))
        expected = weight * expected + (1 - weight) * value
    assert average.shadow is not None
    assert torch.allclose(average.shadow[0], torch.full((1, 2), expected))
    version = layer.weight._version
    with average.applied():
        assert torch.allclose(layer.weight, torch.full((1, 2), expected))
        assert layer.weight._version > version  # caches keyed on the version see the swap
    assert torch.equal(layer.weight, torch.full((1, 2), 9.0))


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValidationError, match="ema_decay"):
        config(ema_decay=decay)
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(nn.Linear(1, 1), decay)


def test_the_served_weights_are_the_average_of_the_trained_ones():
    """Record the weights after every optimizer step (bv2 projects nothing), average them independently."""
    data = make_circle(240, seed=5)
    snapshots: list[list[torch.Tensor]] = []

    def record(optimizer, args, kwargs) -> None:
        snapshots.append([p.detach().clone() for group in optimizer.param_groups for p in group["params"]])

    handle = register_optimizer_step_post_hook(record)
    try:
        averaged = fit(data, config(restore_best=False, ema_decay=0.9))
    finally:
        handle.remove()
    expected = snapshots[0]
    for t, weights in enumerate(snapshots[1:], start=1):
        weight = min(0.9, (1 + t) / (10 + t))
        expected = [weight * e + (1 - weight) * w for e, w in zip(expected, weights, strict=True)]
    served = list(averaged.model.network.parameters())
    assert len(served) == len(expected)
    for value, reference in zip(served, expected, strict=True):
        assert torch.allclose(value, reference, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(v, w) for v, w in zip(served, snapshots[-1], strict=True))


def test_seeded_runs_repeat_and_resume_equals_uninterrupted(tmp_path):
    data = make_circle(200, seed=2)
    cfg = config(ema_decay=0.95)
    full = fit(data, cfg)
    again = fit(data, cfg)
    for key, value in full.model.network.state_dict().items():
        assert torch.equal(value, again.model.network.state_dict()[key]), key
    path = tmp_path / "ckpt.safetensors"
    calls = []
    interrupted = fit(data, cfg, checkpoint_path=path, callback=calls.append, should_stop=lambda: len(calls) >= 2)
    assert interrupted.stopped and len(interrupted.history) == 2
    resumed = fit(data, cfg, checkpoint_path=path, resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4, 5]
    for key, value in full.model.network.state_dict().items():
        assert torch.equal(value, resumed.model.network.state_dict()[key]), key
    assert resumed.history[-1].validation_metrics == full.history[-1].validation_metrics


def test_an_averaged_one_lipschitz_network_is_still_proven_one_lipschitz():
    data = make_circle(240, seed=6)
    cfg = TrainingConfig.model_validate({
        "robustness": {"target_radius": 0.1},
        "architecture": {"hidden": [16, 16]},
        "training": {"epochs": 6, "seed": 1, "ema_decay": 0.9},
        "device": "cpu",
    })
    result = fit(data, cfg)
    assert certify_global(result.model.network).certified <= 1.0 + 1e-9


def test_a_target_radius_fills_the_average_but_a_stored_config_without_the_field_keeps_its_weights():
    fresh = TrainingConfig.model_validate({"robustness": {"target_radius": 0.2}})
    assert fresh.training.ema_decay == 0.99
    assert TrainingConfig.model_validate({"training": {"ema_decay": 0.5}}).training.ema_decay == 0.5
    stored = fresh.to_json()
    assert TrainingConfig.from_stored(stored).training.ema_decay == 0.99  # spelled out: read back as written
    del stored["training"]["ema_decay"]  # a job queued before the field existed
    assert TrainingConfig.from_stored(stored).training.ema_decay is None
    explicit = TrainingConfig.model_validate({"robustness": {"target_radius": 0.2}, "training": {"ema_decay": None}})
    assert explicit.training.ema_decay is None  # a request's own null wins over the rule
