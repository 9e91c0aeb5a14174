"""AOL convolutions: the Schur-test bound is sound, the served kernel is proven <= 1, old models keep theirs.

A 1-Lipschitz convolution used to be divided by its tap sum (the sum of its taps' norms), which
is up to kh * kw times its true norm: a 3 x 3 layer could pass on a ninth of the signal, and a
one_lipschitz CNN on 8 x 8 digits reached 58 % clean accuracy. AOL rescales the input channels by
the kernel's autocorrelation instead; the weighted Schur test proves the norm <= 1 it promises.
Each test here attacks one of those statements against the exact dense matrix of the convolution.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from api_schemas import TrainingConfig
from lipspline.certificates import ServedMap, certify_global, served_radius
from lipspline.certificates import view as view_module
from lipspline.certificates.spectral import (
    SCHUR_FLOPS,
    conv_norm_bound,
    conv_schur_bound,
    conv_schur_flops,
    conv_tap_sum_bound,
)
from lipspline.certificates.view import build_view
from lipspline.nn.layers import OneLipschitzConv2d, aol_conv_rescale, served_weight
from lipspline.nn.model import TrainedModel
from lipspline.nn.networks import SplineNetwork
from lipspline.nn.serialization import model_from_parts, model_to_parts


def dense_norm(conv: nn.Conv2d, weight: torch.Tensor, side: int) -> float:
    """The exact operator norm of ``conv`` with ``weight`` on (in, side, side) images (its dense matrix)."""
    n_in = conv.in_channels * side * side
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, conv.in_channels, side, side)
    out = nn.functional.conv2d(basis, weight.to(torch.float64), None, conv.stride, conv.padding, conv.dilation)
    return float(np.linalg.norm(out.reshape(n_in, -1).numpy(), 2))


def random_kernel(
    rng: np.random.Generator, out_ch: int, in_ch: int, k: int, magnitude: float, rank_one: bool
) -> np.ndarray:
    if rank_one:
        kernel = np.einsum("o,i,h,w->oihw", *(rng.standard_normal(n) for n in (out_ch, in_ch, k, k)))
    else:
        kernel = rng.standard_normal((out_ch, in_ch, k, k))
    return kernel * magnitude


CASES = [
    # out, in, kernel, stride, padding, dilation, side, magnitude, rank one
    (3, 2, 3, 1, 1, 1, 7, 1.0, False),
    (4, 3, 3, 2, 1, 1, 8, 1e-3, False),
    (2, 5, 5, 1, 2, 1, 9, 1e3, True),
    (6, 1, 3, 3, 0, 1, 9, 1.0, False),
    (1, 4, 1, 1, 0, 1, 5, 1e-150, False),
    (5, 5, 3, 1, 2, 2, 8, 1e150, False),
    (2, 2, 2, 1, 1, 1, 6, 1.0, True),
    (8, 4, 3, 2, 1, 1, 6, 1.0, False),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seed", range(4))
def test_schur_and_tap_sum_bounds_are_above_the_exact_norm(case, seed) -> None:
    out_ch, in_ch, k, stride, padding, dilation, side, magnitude, rank_one = case
    kernel = random_kernel(np.random.default_rng(seed), out_ch, in_ch, k, magnitude, rank_one)
    conv = nn.Conv2d(in_ch, out_ch, k, stride, padding, dilation, bias=False)
    exact = dense_norm(conv, torch.from_numpy(kernel), side)
    schur, tap_sum = conv_schur_bound(kernel), conv_tap_sum_bound(kernel)
    assert exact <= schur and exact <= tap_sum
    assert conv_norm_bound(kernel) == min(schur, tap_sum)
    assert schur <= tap_sum * (1 + 1e-9)  # the Schur test never loses to the tap sum by more than rounding


def test_the_schur_test_is_skipped_beyond_its_flop_budget_and_the_tap_sum_stays() -> None:
    kernel = random_kernel(np.random.default_rng(0), 4, 3, 3, 1.0, False)
    assert conv_schur_flops(kernel) == 4.0 * 3 * 3 * 4 * 81
    assert conv_norm_bound(kernel, schur_flops=0.0) == conv_tap_sum_bound(kernel)
    assert conv_norm_bound(kernel, schur_flops=SCHUR_FLOPS) == min(conv_tap_sum_bound(kernel), conv_schur_bound(kernel))
    # a 512-channel 3 x 3 layer is past the certificate's budget (~20 Gflop): only an AOL layer pays it
    assert conv_schur_flops(np.zeros((512, 512, 3, 3))) > SCHUR_FLOPS


def test_schur_bound_of_edge_cases() -> None:
    assert conv_schur_bound(np.zeros((2, 3, 3, 3))) == 0.0
    assert conv_schur_bound(np.zeros((0, 3, 3, 3))) == 0.0
    assert math.isinf(conv_schur_bound(np.full((1, 1, 3, 3), np.nan)))
    assert math.isinf(conv_schur_bound(np.full((1, 1, 1, 1), np.inf)))
    one_tap = np.zeros((2, 2, 3, 3))
    one_tap[:, :, 1, 1] = np.array([[3.0, 0.0], [0.0, 4.0]])  # a 1 x 1 convolution, norm exactly 4
    assert 4.0 <= conv_schur_bound(one_tap) <= 4.0 * (1 + 1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(6))
def test_aol_served_kernel_is_proven_at_most_one_and_passes_far_more_than_the_tap_sum(dtype, seed) -> None:
    torch.manual_seed(seed)
    layer = OneLipschitzConv2d(4, 6, 3, 2, 1, parametrization="aol").to(dtype)
    served = served_weight(layer)
    stored = served.detach().to(torch.float64).numpy()
    assert conv_schur_bound(stored) <= 1.0  # the proof, on the very numbers that are multiplied
    assert dense_norm(layer, served, 8) <= 1.0
    # the served kernel is the AOL map of the parameter, up to the rounding the proof asked for
    expected = aol_conv_rescale(layer.weight.detach().to(torch.float64))
    np.testing.assert_allclose(stored, expected.numpy(), rtol=1e-5, atol=1e-7)
    # and the tap-sum rescaling of the same parameter keeps much less of the signal
    spectral = OneLipschitzConv2d(4, 6, 3, 2, 1).to(dtype)
    with torch.no_grad():
        spectral.weight.copy_(layer.weight)
    assert dense_norm(spectral, served_weight(spectral), 8) < 0.8 * dense_norm(layer, served, 8)


def test_aol_training_weight_is_the_differentiable_aol_map() -> None:
    torch.manual_seed(0)
    layer = OneLipschitzConv2d(3, 5, 3, padding=1, parametrization="aol").train()
    weight = layer.effective_weight()
    assert weight.requires_grad
    assert dense_norm(layer, weight.detach(), 6) <= 1.0 + 1e-5
    weight.sum().backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_a_one_lipschitz_convolution_refuses_other_paddings_and_kinds() -> None:
    with pytest.raises(ValueError, match="zero padding"):
        OneLipschitzConv2d(2, 2, 3, padding=1, padding_mode="reflect", parametrization="aol")
    with pytest.raises(ValueError, match="bjorck"):
        OneLipschitzConv2d(2, 2, 3, parametrization="bjorck")


def cnn_config(**objective: object) -> TrainingConfig:
    return TrainingConfig.model_validate({
        "architecture": {"kind": "cnn", "input_shape": [2, 6, 6], "conv_channels": [4, 6], "hidden": [8],
                         "activation": "groupsort"},
        "objective": {"mode": "one_lipschitz", **objective},
    })


def test_convolution_kind_follows_the_dense_kind_unless_set() -> None:
    assert cnn_config().objective.resolved_one_lipschitz_conv() == "aol"
    assert cnn_config(one_lipschitz_layer="aol").objective.resolved_one_lipschitz_conv() == "aol"
    assert cnn_config(one_lipschitz_layer="spectral").objective.resolved_one_lipschitz_conv() == "spectral"
    both = cnn_config(one_lipschitz_layer="spectral", one_lipschitz_conv="aol")
    assert both.objective.resolved_one_lipschitz_conv() == "aol"
    network = SplineNetwork(cnn_config(), 72, 3)
    assert [layer.parametrization for layer in network.layers[:2]] == ["aol", "aol"]


def _model(config: TrainingConfig) -> TrainedModel:
    torch.manual_seed(1)
    network = SplineNetwork(config, 72, 3).eval()
    return TrainedModel(network, config, "classification", [0, 1, 2], [f"p{i}" for i in range(72)])


def test_documents_saved_before_aol_convolutions_keep_their_tap_sum_kernels() -> None:
    """A model certified with tap-sum kernels must serve those kernels after the upgrade."""
    old = _model(cnn_config(one_lipschitz_conv="spectral"))
    document, weights = model_to_parts(old)
    del document["config"]["objective"]["one_lipschitz_conv"]  # as written before the field existed
    loaded = model_from_parts(document, weights)
    assert loaded.config.objective.one_lipschitz_conv == "spectral"
    for before, after in zip(old.network.layers[:2], loaded.network.layers[:2], strict=True):
        assert after.parametrization == "spectral"
        assert torch.equal(served_weight(before), served_weight(after))
    # a document that names the kind gets it
    new = _model(cnn_config())
    document, weights = model_to_parts(new)
    assert model_from_parts(document, weights).network.layers[0].parametrization == "aol"


def test_stored_configs_read_back_with_the_behaviour_of_their_time() -> None:
    """Job rows and model documents are stored spelled out: one without the field predates it."""
    stored = cnn_config().to_json()
    assert TrainingConfig.from_stored(stored).objective.one_lipschitz_conv == "auto"
    old = {**stored, "objective": {k: v for k, v in stored["objective"].items() if k != "one_lipschitz_conv"}}
    before = json.dumps(old, sort_keys=True)
    assert TrainingConfig.from_stored(old).objective.resolved_one_lipschitz_conv() == "spectral"
    assert json.dumps(old, sort_keys=True) == before  # the stored document is not edited
    # a request (not a stored document) without the field gets today's default
    request = TrainingConfig.model_validate({"objective": {"mode": "one_lipschitz"}})
    assert request.objective.one_lipschitz_conv == "auto"


def test_the_opaque_prefix_is_bounded_by_the_schur_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Convolutions too large to densify: AOL kernels count ~1 each, not their tap sums."""
    network = _model(cnn_config()).network
    monkeypatch.setattr(view_module, "DENSE_CONV_LIMIT", 0)
    view = build_view(network)
    fold = float(np.max(np.abs(view.input_fold)))
    assert view.prefix_factor <= fold * (1 + 1e-9) ** 2
    tap_sums = [conv_tap_sum_bound(served_weight(c).detach().double().numpy()) for c in network.layers[:2]]
    assert fold * tap_sums[0] * tap_sums[1] > 1.5 * view.prefix_factor


@pytest.mark.parametrize("opaque", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_labels_never_flip_inside_the_served_radius_of_an_aol_cnn(opaque: bool, seed: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradient attacks on the exact served map, to just inside each certified radius."""
    if opaque:
        monkeypatch.setattr(view_module, "DENSE_CONV_LIMIT", 0)
    network = _model(cnn_config()).network
    with torch.no_grad():  # spread the logits so that some points certify a radius worth attacking
        network.layers[-1].weight.mul_(4.0)
    lipschitz = certify_global(network, use_cache=False).certified
    assert lipschitz <= 1.0 + 1e-9
    served = ServedMap(network)
    assert (served.prefix_fold is not None) == opaque
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(24, 72))
    result = served.evaluate(x)
    radius = served_radius(result, lipschitz)
    labels = result.outputs.argmax(axis=1)
    attacked = 0
    for i in np.flatnonzero(radius > 0):
        point = x[i].copy()
        for _ in range(20):  # projected gradient descent on the margin, inside the ball of radius r_i
            out = served.outputs(point[None, :])[0]
            runner_up = int(np.argsort(out)[-2])
            jac = served.jacobians(point[None, :])[0]
            grad = jac[labels[i]] - jac[runner_up]
            point = point - grad / max(np.linalg.norm(grad), 1e-300) * radius[i] / 4
            offset = point - x[i]
            point = x[i] + offset * min(1.0, radius[i] * (1 - 1e-9) / max(np.linalg.norm(offset), 1e-300))
            assert served.outputs(point[None, :])[0].argmax() == labels[i]
        attacked += 1
    assert attacked > 0
