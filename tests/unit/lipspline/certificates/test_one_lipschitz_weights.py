"""The served weight of a 1-Lipschitz layer: proven norm <= 1 on the very floats applied, one value everywhere.

Why these tests: the certificate and the endpoint once read two different
float32 roundings of "V / ||V||" (grad-enabled vs no_grad SVD), and a served
1-Lipschitz network measured 1 + 3.9e-6 against a certificate of 1. The
served weight is computed once per weight version from a *proven* norm bound
and re-proven after rounding, so the checks below are exact comparisons with
the proven bound (``<= 1.0``, no tolerance) and bit-for-bit equalities.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import lipspline.nn.layers as layers_module
from api_schemas import TrainingConfig
from lipspline.certificates.spectral import conv_tap_sum_bound, proven_spectral_norm
from lipspline.certificates.view import build_view
from lipspline.nn.layers import OneLipschitzConv2d, OneLipschitzLinear, served_weight
from lipspline.nn.networks import SplineNetwork

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

#: target norms of V: tiny, well below, a hair below / at / a hair above 1 (in float32 and float64 terms), huge
NORMS = [1e-30, 1e-3, 0.5, 1 - 1e-6, 1 - 2.0**-24, 1.0, 1 + 2.0**-52, 1 + 1e-7, 1 + 1e-6, 2.0, 1e3, 1e30]
DTYPES = [torch.float32, torch.float64]


def proven_dense(w: torch.Tensor) -> float:
    return proven_spectral_norm(w.detach().to(torch.float64).cpu().numpy())


def exact_tap_sum(w64: np.ndarray) -> float:
    """Sum over taps of each tap's spectral norm, by float64 SVD (the 'ideal' divisor of a convolution)."""
    return float(sum(np.linalg.norm(w64[:, :, i, j], 2) for i in range(w64.shape[2]) for j in range(w64.shape[3])))


def random_matrix(seed: int, shape: tuple[int, ...], rank_one: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if rank_one:
        u = rng.standard_normal(shape[0])
        v = rng.standard_normal(int(np.prod(shape[1:])))
        return np.outer(u, v).reshape(shape)
    return rng.standard_normal(shape)


def check_served(layer: nn.Module, bound_of, ideal_norm: float) -> None:
    """Proven bound of the served floats <= 1; V itself when V's proven bound is <= 1; else ~ V / ||V||."""
    v = layer.weight.detach()
    w = served_weight(layer)
    assert w.dtype == v.dtype and w.device == v.device and w.shape == v.shape
    assert not w.requires_grad
    assert bound_of(w.to(torch.float64)) <= 1.0
    if bound_of(v.to(torch.float64)) <= 1.0:
        assert torch.equal(w, v)
    else:
        ideal = v.to(torch.float64) / max(ideal_norm, 1.0)
        err = float((w.to(torch.float64) - ideal).norm())
        assert err <= 1e-5 * float(ideal.norm())


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    rows=st.integers(1, 24),
    cols=st.integers(1, 24),
    norm=st.sampled_from(NORMS),
    rank_one=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_dense_served_weight_is_proven_unit_norm_and_close_to_ideal(seed, rows, cols, norm, rank_one, dtype):
    v64 = random_matrix(seed, (rows, cols), rank_one)
    v64 *= norm / np.linalg.norm(v64, 2)
    layer = OneLipschitzLinear(cols, rows).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(v64))
    stored = layer.weight.detach().to(torch.float64).numpy()  # the rounded V the layer really holds
    check_served(layer, proven_dense, float(np.linalg.norm(stored, 2)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "value",
    [
        np.eye(5),  # norm exactly 1
        np.diag([1.0, 0.5, 0.25]),
        np.array([[1.0 + 2.0**-23]]),  # one float32 ulp above 1
        np.array([[1.0 - 2.0**-24]]),  # one float32 ulp below 1
        np.array([[3.0, 4.0]]),  # norm exactly 5
        np.full((7, 3), 1e-30),
        np.full((4, 4), 1e30),
        np.zeros((3, 2)),
    ],
)
def test_dense_edge_cases(value, dtype):
    layer = OneLipschitzLinear(value.shape[1], value.shape[0]).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(value))
    stored = layer.weight.detach().to(torch.float64).numpy()
    check_served(layer, proven_dense, float(np.linalg.norm(stored, 2)))


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    out_ch=st.integers(1, 6),
    in_ch=st.integers(1, 6),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    norm=st.sampled_from(NORMS),
    rank_one=st.booleans(),
    dtype=st.sampled_from(DTYPES),
)
def test_conv_served_weight_has_proven_tap_sum_at_most_one(seed, out_ch, in_ch, kh, kw, norm, rank_one, dtype):
    v64 = random_matrix(seed, (out_ch, in_ch, kh, kw), rank_one)
    v64 *= norm / exact_tap_sum(v64)
    layer = OneLipschitzConv2d(in_ch, out_ch, (kh, kw)).to(dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(v64))
    stored = layer.weight.detach().to(torch.float64).numpy()
    check_served(layer, lambda w: conv_tap_sum_bound(w.numpy()), exact_tap_sum(stored))


def test_plain_layers_serve_their_stored_weight():
    dense, conv = nn.Linear(3, 2), nn.Conv2d(2, 3, 3)
    for layer in (dense, conv):
        w = served_weight(layer)
        assert torch.equal(w, layer.weight) and not w.requires_grad


def big_layer(kind: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(3)
    layer = OneLipschitzLinear(12, 9) if kind == "dense" else OneLipschitzConv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        layer.weight.mul_(20)  # well above norm 1: the rescaling is active
    return layer.to(dtype)


def apply_weight(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Conv2d):
        return layer._conv_forward(x, weight, layer.bias)
    return nn.functional.linear(x, weight, layer.bias)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_no_grad_eval_and_certificate_weights_are_bit_identical(kind):
    layer = big_layer(kind)
    x = torch.randn(5, 12) if kind == "dense" else torch.randn(2, 3, 6, 6)
    served = served_weight(layer).clone()
    layer.train()
    with torch.no_grad():
        out_no_grad = layer(x)
    layer.eval()
    xg = x.clone().requires_grad_(True)
    out_eval = layer(xg)
    out_eval.sum().backward()  # eval mode with grad: input gradients still flow
    assert xg.grad is not None
    assert layer.weight.grad is None  # the served weight is detached
    with torch.no_grad():
        expected = apply_weight(layer, x, served)
    assert torch.equal(out_no_grad, expected)
    assert torch.equal(out_eval.detach(), expected)
    assert torch.equal(served_weight(layer), served)
    # training with grad takes the differentiable path, which is within ~1e-6 of the served one
    layer.train()
    trained = layer(x)
    assert trained.requires_grad
    assert torch.allclose(trained.detach(), expected, rtol=1e-5, atol=1e-6)


def test_inference_mode_forward_then_grad_forward():
    layer = big_layer("dense").eval()
    with torch.inference_mode():
        first = layer(torch.ones(1, 12))
    x = torch.ones(1, 12, requires_grad=True)
    layer(x).sum().backward()  # the cached weight must not be an inference tensor
    assert torch.equal(layer(torch.ones(1, 12)).detach(), first)


def test_computed_once_per_weight_version(monkeypatch):
    layer = big_layer("dense")
    calls = []
    real = layers_module.proven_norm_bound
    monkeypatch.setattr(layers_module, "proven_norm_bound", lambda w: calls.append(1) or real(w))
    first = served_weight(layer)
    n = len(calls)
    assert n >= 2  # the bound of V, then at least one proof of the rounded result
    layer.eval()
    with torch.no_grad():
        for _ in range(3):
            layer(torch.randn(2, 12))
    assert served_weight(layer) is first and len(calls) == n


def fresh(layer: nn.Module) -> torch.Tensor:
    """The served weight recomputed from scratch for the layer's current V."""
    v = layer.weight.detach()
    return layers_module._unit_norm_rounded(v.to("cpu", torch.float64), v.dtype)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_cache_invalidated_by_optimizer_step(kind):
    layer = big_layer(kind)
    before = served_weight(layer).clone()
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    x = torch.randn(4, 12) if kind == "dense" else torch.randn(2, 3, 5, 5)
    layer.train()
    layer(x).square().sum().backward()
    opt.step()
    after = served_weight(layer)
    assert not torch.equal(after, before)
    assert torch.equal(after, fresh(layer))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_cache_invalidated_by_load_state_dict(kind):
    layer = big_layer(kind)
    other = copy.deepcopy(layer)
    with torch.no_grad():
        other.weight.mul_(-0.5).add_(0.25)
    served_weight(layer)
    layer.load_state_dict(other.state_dict())
    assert torch.equal(served_weight(layer), fresh(other))
    assert torch.equal(served_weight(layer), served_weight(other))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_cache_invalidated_by_to_float64_and_back(kind):
    layer = big_layer(kind)
    as32 = served_weight(layer).clone()
    layer.to(torch.float64)
    as64 = served_weight(layer)
    assert as64.dtype == torch.float64
    assert torch.equal(as64, fresh(layer))
    assert bool((as64 != as32.double()).any())  # really recomputed in float64, not an upcast
    layer.to(torch.float32)
    back = served_weight(layer)
    assert back.dtype == torch.float32 and torch.equal(back, fresh(layer))


def test_cache_invalidated_by_data_swap_and_in_place_edit():
    layer = big_layer("dense")
    served_weight(layer)
    layer.weight.data = layer.weight.data * 2 + 1  # new storage, version counter untouched
    assert torch.equal(served_weight(layer), fresh(layer))
    with torch.no_grad():
        layer.weight.mul_(-1)
    assert torch.equal(served_weight(layer), fresh(layer))


def test_deep_copy_does_not_share_a_stale_cache():
    layer = big_layer("dense")
    served_weight(layer)
    twin = copy.deepcopy(layer)
    with torch.no_grad():
        twin.weight.mul_(0.01)  # proven bound now <= 1: served weight is V itself
    assert torch.equal(served_weight(twin), twin.weight.detach())


def test_non_finite_weight_is_served_as_nan():
    layer = big_layer("dense")
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    assert bool(served_weight(layer).isnan().all())


# ---- a whole 1-Lipschitz network ----------------------------------------------------------------


def one_lipschitz_network(steps: int, width: int = 8) -> SplineNetwork:
    """Orthogonal weights scaled by 3 (so every layer rescales) and identity splines, then ``steps`` Adam steps.

    With no steps the served map is linear and orthogonal up to the rounding
    of its weights: every pair has ratio ~1, so a served weight whose norm
    were even 1e-6 above 1 would show (checked when this test was written:
    scaling each served weight by 1 + 1e-6 gives ratios of 1 + 2.8e-6).
    The Adam steps ("trained-ish") move weights and splines through the
    differentiable training path; the map then has ~2 % slack.
    """
    cfg = TrainingConfig(
        architecture={"hidden": [width, width], "activation": "deepspline"},
        objective={"mode": "one_lipschitz"},
        spline={"knots": 9, "range": 3.0, "init": "identity"},
    )
    gen = torch.Generator().manual_seed(11)
    net = SplineNetwork(cfg, width, width)
    with torch.no_grad():
        for layer in net.layers:
            q, _ = torch.linalg.qr(torch.randn(width, width, generator=gen, dtype=torch.float64))
            layer.weight.copy_(3.0 * q)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(64, width, generator=gen)
    y = torch.tanh(x.flip(1) * 2)
    net.train()
    for _ in range(steps):
        opt.zero_grad()
        (net(x) - y).square().mean().backward()
        opt.step()
    return net.eval()


@pytest.mark.parametrize(("steps", "sharpness"), [(0, 1 - 1e-6), (5, 0.9)])
def test_served_network_ratio_never_exceeds_one(steps, sharpness):
    """No pair moves apart by more than float32 evaluation rounding (1e-6) allows."""
    net = one_lipschitz_network(steps)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4000, net.n_features, generator=gen)
    y = torch.randn(4000, net.n_features, generator=gen)
    y[:1000] = -x[:1000]  # antipodal pairs: large distances, small relative rounding
    with torch.no_grad():
        fx, fy = net(x).double(), net(y).double()
    ratio = (fx - fy).norm(dim=1) / (x.double() - y.double()).norm(dim=1)
    assert float(ratio.max()) <= 1 + 1e-6
    assert float(ratio.max()) > sharpness  # the test can see an excess of the weight norms


def test_certificate_reads_the_served_weights():
    net = one_lipschitz_network(5)
    view = build_view(net)
    assert float(net.target_scale) == 1.0  # so the last weight is not rescaled by the folding
    raw = [view.first_raw, *view.weights[1:]]
    for layer, weight in zip(net.layers, raw, strict=True):
        assert np.array_equal(weight, served_weight(layer).to(torch.float64).numpy())
