"""fit(): determinism, resume, stop, constraints, save/load, and the paper-000 circle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from api_schemas import TrainingConfig
from lipspline.data import from_arrays, make_circle
from lipspline.nn import serialization
from lipspline.training.loop import EpochReport, fit


def config(**overrides) -> TrainingConfig:
    base = {
        "architecture": {"hidden": [8, 8]},
        "spline": {"knots": 11, "range": 2.0},
        "objective": {"mode": "bv2", "lambda": 1e-3, "mu": 1e-4},
        "training": {"epochs": 4, "batch_size": 32, "lr": 5e-3, "seed": 3, "validation_split": 0.25},
        "device": "cpu",
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return TrainingConfig.model_validate(base)


def regression_data(n: int = 240):
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(n, 3))
    y = 100 + 30 * np.sin(x[:, 0]) + 10 * x[:, 1] * x[:, 2]
    return from_arrays(x.tolist(), y.tolist(), task="regression", name="wave")


def state(result) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result.model.network.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_weights_and_different_seed_differs():
    data = make_circle(300, seed=1)
    first = state(fit(data, config()))
    second = state(fit(data, config()))
    assert_same_state(first, second)
    other = state(fit(data, config(training={"seed": 4})))
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("mode", ["bv2", "maxnorm", "lipschitz_coupled"])
def test_resume_equals_uninterrupted(tmp_path, mode):
    data = make_circle(200, seed=2)
    cfg = config(objective={"mode": mode}, training={"epochs": 5})
    full = fit(data, cfg)
    path = tmp_path / "ckpt.safetensors"
    calls = []

    def stop_after_two() -> bool:
        return len(calls) >= 2

    interrupted = fit(data, cfg, checkpoint_path=path, callback=calls.append, should_stop=stop_after_two)
    assert interrupted.stopped and len(interrupted.history) == 2
    resumed = fit(data, cfg, checkpoint_path=path, resume=True)
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4, 5]
    assert_same_state(state(full), state(resumed))
    assert resumed.history[-1].losses == full.history[-1].losses


def test_callback_reports_every_term_and_metrics():
    reports: list[EpochReport] = []
    fit(make_circle(200, seed=3), config(objective={"auto_lambda": True}), callback=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3, 4]
    first = reports[0]
    assert set(first.losses) == {"data", "weight_decay", "bv2", "total"}
    assert first.losses["total"] == pytest.approx(sum(v for k, v in first.losses.items() if k != "total"), rel=1e-5)
    assert 0.0 <= first.train_metrics["accuracy"] <= 1.0 and "accuracy" in first.validation_metrics
    assert first.elapsed_s > 0 and len(first.lambdas) == 2


def test_cooperative_stop_inside_an_epoch():
    checks = []

    def stop() -> bool:
        checks.append(1)
        return True

    result = fit(make_circle(400, seed=4), config(training={"batch_size": 8, "stop_check_every": 3}), should_stop=stop)
    assert result.stopped and result.history == [] and len(checks) == 1


def test_regression_reports_target_units_and_uses_scaling():
    result = fit(regression_data(), config(training={"epochs": 30}))
    assert set(result.history[-1].train_metrics) == {"loss", "mse", "mae"}
    # targets are ~100 +- 40: predictions come back in target units, not standardised
    predictions = np.array(result.model.predict(regression_data().X[:50]))
    assert 50 < predictions.mean() < 150
    assert result.history[-1].train_metrics["mae"] < result.history[0].train_metrics["mae"]


def test_one_lipschitz_constraints_hold_after_training():
    cfg = config(
        objective={"mode": "one_lipschitz", "lambda": 1e-4},
        training={"epochs": 15, "lr": 5e-2},
        spline={"init": "abs"},
    )
    result = fit(regression_data(), cfg)
    network = result.model.network
    for weight in network.weights():
        assert float(torch.linalg.matrix_norm(weight.detach().double(), ord=2)) <= 1 + 1e-5
    for spline in network.splines():
        low, high = spline.slope_interval()
        assert float(low.min()) >= -1 - 1e-6 and float(high.max()) <= 1 + 1e-6
    # the raw weights were pushed past the bound: the constraint was active, not vacuous
    raw = [float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2)) for layer in network.layers]
    assert max(raw) > 1.0


@pytest.mark.parametrize("activation", ["deepspline", "groupsort"])
def test_one_lipschitz_served_map_is_1_lipschitz_and_can_fit_slope_one(activation):
    """One common scale for inputs and target: the raw-unit map keeps the network's constant.

    With per-feature standardisation a slope-1 target on [-1, 1] (sigma_y/sigma_x ~ 0.4 here)
    capped the served map's slope at ~0.4, so no 1-Lipschitz net could fit it.
    """
    from lipspline.certificates import certify_global, exact_lipschitz_1d

    x = np.linspace(-1, 1, 400)[:, None]
    y = np.abs(x[:, 0]) - 0.5  # slopes exactly +-1
    data = from_arrays(x, y, task="regression")
    cfg = config(
        architecture={"hidden": [10, 10], "activation": activation},
        objective={"mode": "one_lipschitz", "lambda": 1e-7},
        spline={"init": "abs"},
        training={"epochs": 60, "lr": 1e-2, "batch_size": 20, "validation_split": 0.0},
    )
    model = fit(data, cfg).model
    scale = model.network.input_scale.double()
    assert torch.allclose(scale, torch.full_like(scale, float(model.network.target_scale)))
    certified = certify_global(model.network).certified
    exact = exact_lipschitz_1d(model.network)
    assert exact <= certified <= 1 + 1e-5
    assert exact > 0.9, "the served map should use (nearly) all of its slope budget on a slope-1 target"
    error = np.asarray(model.predict(x)) - y
    assert float(np.mean(error**2)) < 2e-3


def test_save_load_reproduces_outputs_bit_for_bit(tmp_path):
    data = make_circle(200, seed=5)
    result = fit(data, config(architecture={"hidden": [6], "activation": "prelu"}))
    serialization.save(result.model, tmp_path / "m")
    loaded = serialization.load(tmp_path / "m")
    probe = np.random.default_rng(1).uniform(-3, 3, size=(100, 2))
    assert torch.equal(result.model.outputs(probe), loaded.outputs(probe))
    assert loaded.classes == [0, 1] and loaded.task == "classification"
    assert loaded.config == result.model.config


def test_tampered_weights_are_refused(tmp_path):
    result = fit(make_circle(100, seed=6), config(training={"epochs": 1}))
    document, weights = serialization.model_to_parts(result.model)
    tampered = bytearray(weights)
    tampered[-1] ^= 0x01
    with pytest.raises(serialization.ArtifactError, match="sha256"):
        serialization.model_from_parts(document, bytes(tampered))


def test_cnn_trains_on_image_shaped_inputs():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(120, 1, 6, 6))
    labels = (images[:, 0, :3].mean(axis=(1, 2)) > images[:, 0, 3:].mean(axis=(1, 2))).astype(int)
    data = from_arrays(images.reshape(120, -1).tolist(), labels.tolist(), task="classification")
    cfg = config(
        architecture={"kind": "cnn", "input_shape": [1, 6, 6], "conv_channels": [4], "hidden": [8]},
        training={"epochs": 20},
    )
    result = fit(data, cfg)
    assert result.history[-1].train_metrics["accuracy"] > 0.8


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="cuda"):
        fit(make_circle(50), config(device="cuda"))


@pytest.mark.slow
def test_circle_deep_spline_2_2_1_reaches_98_percent():
    """Paper 000's headline: a (2, 2, 1) deep-spline net with BV2 classifies the circle (98.54 %)."""
    train = make_circle(1000, seed=0)
    test = make_circle(10000, seed=123)
    cfg = TrainingConfig.model_validate(
        {
            "architecture": {"hidden": [2]},
            "spline": {"knots": 21, "range": 3.0, "init": "relu"},
            "objective": {"mode": "bv2", "lambda": 1e-4, "mu": 1e-4},
            "training": {"epochs": 300, "batch_size": 32, "lr": 1e-2, "validation_split": 0.0, "seed": 0},
            "device": "cpu",
        }
    )
    model = fit(train, cfg).model
    accuracy = float((np.array(model.predict(test.X)) == test.y).mean())
    assert accuracy >= 0.98, accuracy


@pytest.mark.parametrize(("rows", "columns"), [(5000, 2), (140_001, 3), (70_000, 17), (3001, 1)])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_in_memory_data_standardises_by_chunks_exactly_as_the_whole_split_would(rows, columns, task):
    """The chunked moments and standardisation (no float64 copy of the split) change no bit of the run."""
    from lipspline.data import Dataset, fit_scaling
    from lipspline.training.data import InMemoryData

    rng = np.random.default_rng(rows + columns)
    X = rng.normal(size=(rows, columns)) * rng.uniform(0.1, 100, size=columns) + rng.normal(size=columns) * 40
    y = rng.integers(0, 3, rows) if task == "classification" else rng.normal(size=rows) * 7 + 3
    data = InMemoryData(from_arrays(X, y, task=task), validation_split=0.2, seed=1)
    index = data.train_index
    split = data.dataset
    reference = fit_scaling(
        Dataset(split.X[index], split.y[index], split.task, split.feature_names, split.classes), isotropic=False
    )
    scaling = data.fit_scaling(isotropic=False)
    np.testing.assert_array_equal(scaling.input_mean, reference.input_mean)
    np.testing.assert_array_equal(scaling.input_scale, reference.input_scale)
    assert (scaling.target_mean, scaling.target_scale) == (reference.target_mean, reference.target_scale)
    data.prepare(scaling, torch.device("cpu"))
    x_train, _ = data.train_sample()
    expected = (split.X[index] - scaling.input_mean) / scaling.input_scale
    assert torch.equal(x_train, torch.as_tensor(expected, dtype=torch.float32))
    raw = data.raw_rows("validation")
    assert raw.n_rows == data.n_validation
    np.testing.assert_array_equal(raw.chunk(0, 7), split.X[data.validation_index[:7]])
    np.testing.assert_array_equal(raw.all_rows(), split.X[data.validation_index])
