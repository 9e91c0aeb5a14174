"""Certificates: soundness (upper >= exact >= lower), tightness of proven norms, local bounds, radii."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_schemas import TrainingConfig
from lipspline.certificates import (
    analyze,
    certificate_report,
    certified_radius,
    certify_global,
    empirical_lower_bound,
    exact_lipschitz_1d,
    jacobian_lower_bound,
    local_bounds,
    local_radius,
    output_deviation_bound,
    proven_spectral_norm,
)
from lipspline.certificates.served_map import ServedMap
from lipspline.certificates.spectral import proven_spectral_norms_batched
from lipspline.certificates.view import build_view
from lipspline.nn.networks import SplineNetwork
from tests.unit.lipspline.certificates.networks import ACTIVATIONS, RANDOM_SCALING, REDRAW, REL, Draw, random_network

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def f64(net: SplineNetwork):
    """The served map of ``net`` (the function every certificate bounds) on float64 tensors."""
    served = ServedMap(net)
    return lambda x: torch.from_numpy(served.outputs(x.numpy()))


nets_1d = st.builds(
    lambda seed, depth, width, act, mode: random_network(
        act, [width] * depth, n_in=1, n_out=2, seed=seed, mode=mode, scaling=RANDOM_SCALING
    ),
    st.integers(0, 10_000),
    st.integers(1, 3),
    st.integers(2, 6),
    st.sampled_from(ACTIVATIONS),
    st.sampled_from(["bv2", "one_lipschitz"]),
)
nets_nd = st.builds(
    lambda seed, d, depth, width, act, outs: random_network(
        act, [width] * depth, n_in=d, n_out=outs, seed=seed, scaling=RANDOM_SCALING
    ),
    st.integers(0, 10_000),
    st.integers(2, 5),
    st.integers(1, 3),
    st.integers(2, 8),
    st.sampled_from(ACTIVATIONS),
    st.integers(1, 3),
)


# ---- proven spectral norms ---------------------------------------------------------------------------


def _check_norm(a: np.ndarray) -> None:
    p = proven_spectral_norm(a)
    s = np.linalg.svd(a, compute_uv=False)[0] if a.size else 0.0
    assert p >= s * (1 - 1e-14)
    assert p <= s * (1 + 1e-6) + 1e-140


@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 1000), st.floats(-30, 30))
@settings(max_examples=40, deadline=None)
def test_proven_norm_random(m: int, n: int, seed: int, log_scale: float) -> None:
    rng = np.random.default_rng(seed)
    _check_norm(rng.standard_normal((m, n)) * 2.0**log_scale)


@pytest.mark.parametrize(
    "matrix",
    [
        np.eye(17),
        np.outer(np.arange(1.0, 31.0), np.linspace(-1, 2, 12)),  # rank one
        np.diag([3.0, 3.0, 3.0, 1.0, 0.0]),  # repeated top singular value
        np.ones((8, 8)),
        np.zeros((4, 6)),
        np.array([[1e-200, 0.0], [0.0, 2e-200]]),
        np.array([[1e150, 1e150], [0.0, 1.0]]),
        np.linalg.qr(np.random.default_rng(3).standard_normal((60, 60)))[0] * 7.0,  # all singular values equal
    ],
)
def test_proven_norm_adversarial(matrix: np.ndarray) -> None:
    _check_norm(matrix)


def test_proven_norm_large_uses_lanczos_and_stays_tight() -> None:
    a = np.random.default_rng(1).standard_normal((500, 450)).astype(np.float32).astype(np.float64)
    _check_norm(a)


def test_proven_norm_batched_matches() -> None:
    a = np.random.default_rng(2).standard_normal((20, 5, 9))
    batched = proven_spectral_norms_batched(a)
    exact = np.linalg.norm(a, 2, axis=(1, 2))
    assert np.all(batched >= exact) and np.all(batched <= exact * (1 + 1e-6))


def test_proven_norm_nonfinite_is_infinite() -> None:
    assert proven_spectral_norm(np.array([[np.inf, 1.0]])) == math.inf


# ---- soundness on random networks ------------------------------------------------------------------


@given(nets_1d)
@SETTINGS
def test_every_upper_bound_dominates_the_exact_constant(net: SplineNetwork) -> None:
    exact = exact_lipschitz_1d(net)
    cert = certify_global(net)
    for name, value in cert.bounds.items():
        assert value >= exact * (1 - REL), (name, value, exact)
    assert cert.certified == min(cert.bounds.values())
    x = torch.linspace(-3, 3, 9)[:, None]
    for lc in local_bounds(net, x, 0.5):
        assert lc.bound <= cert.certified


@given(nets_nd)
@SETTINGS
def test_upper_bounds_dominate_sampled_lower_bounds(net: SplineNetwork) -> None:
    x = torch.randn(40, net.n_features, generator=torch.Generator().manual_seed(0)) * 2
    cert = certify_global(net)
    lower = max(empirical_lower_bound(net, x), jacobian_lower_bound(net, x[:10], ascent_steps=4))
    for name, value in cert.bounds.items():
        assert value >= lower * (1 - REL), (name, value, lower)


@given(nets_nd, st.floats(1e-3, 3.0), st.sampled_from(["l2", "linf"]), st.integers(0, 100))
@SETTINGS
def test_local_bound_holds_inside_its_ball_and_never_exceeds_global(
    net: SplineNetwork, eps: float, norm: str, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, net.n_features, generator=gen, dtype=torch.float64)
    cert = certify_global(net)
    certs = local_bounds(net, centers, eps, norm)
    net64 = f64(net)
    for c, lc in zip(centers, certs, strict=True):
        assert lc.bound <= cert.certified
        for name, value in lc.bounds.items():
            assert value <= cert.bounds[name]
        d = torch.randn(64, 2, net.n_features, generator=gen, dtype=torch.float64)
        if norm == "l2":
            d = d / d.norm(dim=2, keepdim=True) * eps * torch.rand(64, 2, 1, generator=gen, dtype=torch.float64)
        else:
            d = (torch.rand(64, 2, net.n_features, generator=gen, dtype=torch.float64) * 2 - 1) * eps
        x, y = c + d[:, 0], c + d[:, 1]
        with torch.no_grad():
            fx, fy = net64(x), net64(y)
        ratio = (fx - fy).norm(dim=1) / (x - y).norm(dim=1)
        assert float(ratio.max()) <= lc.bound * (1 + 1e-7)
        # the Jacobian inside the ball is bounded as well (sharper than pairs)
        jn = np.linalg.norm(ServedMap(net).jacobians(x.numpy()), ord=2, axis=(1, 2))
        assert float(jn.max()) <= lc.bound * (1 + 1e-7)


def test_local_bound_tightens_for_small_balls_and_grows_to_global() -> None:
    net = random_network("deepspline", [16, 16], n_in=4, n_out=3, seed=5, scaling=RANDOM_SCALING)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    g = certify_global(net).certified
    small = [lc.bound for lc in local_bounds(net, x, 1e-4)]
    huge = [lc.bound for lc in local_bounds(net, x, 1e6)]
    assert max(small) < g
    assert all(h <= g for h in huge)
    # per input, the bound over a huge ball is at least the bound over a tiny one around it
    assert all(h >= s * (1 - 1e-12) for h, s in zip(huge, small, strict=True))


@pytest.mark.parametrize("activation", ["deepspline", "relu", "prelu", "abs", "groupsort"])
def test_one_lipschitz_networks_certify_at_most_one(activation: str) -> None:
    net = random_network(
        activation,
        [12, 12, 12],
        n_in=5,
        n_out=3,
        seed=7,
        mode="one_lipschitz",
        draw=Draw(weight_std=5.0, slope_std=1.0, activation_noise=3.0),
    )
    cert = certify_global(net)
    assert cert.certified <= 1 + 1e-5, cert.bounds


# ---- each bound equals a direct computation on a hand-built net ---------------------------------------


def test_bounds_match_direct_computation_on_tiny_relu_net() -> None:
    cfg = TrainingConfig(architecture={"hidden": [3], "activation": "leaky_relu"})
    net = SplineNetwork(cfg, 2, 2, input_scale=torch.tensor([2.0, 0.5]), target_scale=3.0)
    W1 = np.array([[1.0, -2.0], [0.5, 0.25], [-1.0, 1.0]])
    W2 = np.array([[2.0, 0.0, -1.0], [1.0, 1.0, 1.0]])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor(W1))
        net.layers[1].weight.copy_(torch.tensor(W2))
    A1 = W1 @ np.diag([0.5, 2.0])  # input standardisation folded in (exact: powers of two)
    A2 = 3.0 * W2
    a, b = 0.01, 1.0
    n2 = lambda m: np.linalg.norm(m, 2)  # noqa: E731
    expected = {
        "spectral_product": n2(A1) * n2(A2) * 1.0,
        "per_neuron_scaled": n2(A1) * n2(A2),  # S = I for leaky ReLU
        "liplt": n2(A2 * (a + b) / 2 @ A1) + n2(A2 * (b - a) / 2) * n2(A1),
        "frobenius": np.linalg.norm(A1) * np.linalg.norm(A2) * (3 * (1 + 0.99)) * 2,
        "bv2_mixed": np.linalg.norm(A1, axis=1).max()
        * np.linalg.norm(A2, axis=1).max()
        * math.sqrt(3 * 1.99**2)
        * math.sqrt(2),
    }
    cert = certify_global(net, use_cache=False)
    for name, value in expected.items():
        assert cert.bounds[name] == pytest.approx(value, rel=1e-8), name
        assert cert.bounds[name] >= value * (1 - 1e-15)
    # the scaled LipLT starts its search at LipLT and bounds every D in the slope box, vertices included
    vertices = max(n2(A2 @ np.diag(d) @ A1) for d in itertools.product((a, b), repeat=3))
    assert vertices <= cert.bounds["liplt_scaled"] <= expected["liplt"] * (1 + 1e-9)
    assert cert.certified == min(cert.bounds.values())
    assert cert.certified_by == min(cert.bounds, key=cert.bounds.get)
    other = certify_global(net, p=1.0, use_cache=False).other_norms["bv2_mixed_p1"]
    assert other == pytest.approx(np.abs(A1).max() * np.abs(A2).max() * 3 * 1.99 * 2, rel=1e-8)


def test_spline_views_are_sound() -> None:
    net = random_network(
        "deepspline", [4], n_in=2, seed=3, scaling=RANDOM_SCALING, draw=replace(REDRAW, activation_noise=1.0)
    )
    view = build_view(net)
    act = view.activations[0]
    spline = net.splines()[0]
    true_lip = spline.lipschitz().numpy()
    assert np.all(act.lipschitz() >= true_lip)
    assert np.all(act.lipschitz() <= true_lip * (1 + 1e-12) + 1e-290)
    assert np.all(act.bv2 >= spline.bv2_norm().numpy())


def test_cnn_dense_conversion_is_exact_and_bounds_sound() -> None:
    cfg = TrainingConfig(
        architecture={
            "kind": "cnn",
            "conv_channels": [3],
            "hidden": [6],
            "input_shape": (1, 6, 6),
            "activation": "relu",
        }
    )
    net = SplineNetwork(cfg, 36, 2)
    view = build_view(net)
    x = torch.randn(4, 36, dtype=torch.float64)
    conv = torch.nn.functional.conv2d(
        x.reshape(4, 1, 6, 6), net.layers[0].weight.detach().double(), None, net.layers[0].stride, net.layers[0].padding
    ).flatten(1)
    assert np.allclose(x.numpy() @ view.weights[0].T, conv.numpy(), atol=1e-12)
    cert = certify_global(net)
    lower = jacobian_lower_bound(net, torch.randn(20, 36), ascent_steps=3)
    assert cert.certified >= lower
    for lc in local_bounds(net, torch.randn(3, 36), 0.1):
        assert lc.bound <= cert.certified


def test_exact_oracle_matches_dense_sampling() -> None:
    net = random_network("deepspline", [5, 5], n_in=1, n_out=2, seed=11, scaling=RANDOM_SCALING)
    exact = exact_lipschitz_1d(net)
    xs = torch.linspace(-8, 8, 200001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        y = f64(net)(xs)
    quotients = (y[1:] - y[:-1]).norm(dim=1) / (xs[1:] - xs[:-1])[:, 0]
    assert float(quotients.max()) <= exact * (1 + 1e-9)
    assert float(quotients.max()) >= exact * 0.9


def test_certificate_json_and_report() -> None:
    net = random_network("deepspline", [8, 8], n_in=3, n_out=2, seed=2, scaling=RANDOM_SCALING)
    x = torch.randn(30, 3)
    report = certificate_report(net, x, ascent_steps=3)
    import json

    json.dumps(report.to_json())
    assert type(report).model_validate(report.to_json()) == report  # stored JSON reads back typed, unchanged
    assert report.tightness >= 1.0
    assert set(report.bounds) >= {"spectral_product", "per_neuron_scaled", "liplt", "bv2_mixed", "frobenius"}
    assert report.certified == min(v for v in report.bounds.values())
    gs = random_network("groupsort", [8], n_in=3, seed=2, scaling=RANDOM_SCALING)
    cert = certify_global(gs)
    assert "bv2_mixed" in cert.skipped and "frobenius" in cert.skipped
    json.dumps(cert.to_json())


def test_cache_invalidates_when_weights_change() -> None:
    net = random_network("relu", [8], n_in=3, seed=4, scaling=RANDOM_SCALING)
    first = certify_global(net).certified
    with torch.no_grad():
        net.layers[0].weight.mul_(2.0)
    assert certify_global(net).certified == pytest.approx(2 * first, rel=1e-6)
    assert analyze(net) is analyze(net)


# ---- robustness -------------------------------------------------------------------------------------


def test_certified_radius_formulas() -> None:
    z = np.array([[3.0, 1.0, 0.0], [0.0, 0.5, 0.4]])
    r = certified_radius(z, 2.0)
    assert r[0] == pytest.approx(2.0 / (math.sqrt(2) * 2.0))
    assert r[1] == pytest.approx(0.1 / (math.sqrt(2) * 2.0))
    assert np.all(r <= np.array([2.0, 0.1]) / (math.sqrt(2) * 2.0))
    single = certified_radius(np.array([[-0.6], [0.2]]), 0.5)
    assert single == pytest.approx([1.2, 0.4])
    assert local_radius(z, np.array([0.1, 0.1]), 0.05).max() <= 0.05
    assert output_deviation_bound(2.0, 0.1) >= 0.2


def _circle(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from lipspline.data import make_circle

        ds = make_circle(n, seed=seed)
        x, y = np.asarray(ds.X, dtype=np.float32), np.asarray(ds.y, dtype=np.float32)
    except Exception:  # the data module is optional here
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        y = ((x**2).sum(1) <= 2 / np.pi).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("activation,hidden", [("deepspline", [2]), ("relu", [10])])
def test_pgd_cannot_flip_predictions_inside_certified_radius(activation: str, hidden: list[int]) -> None:
    torch.manual_seed(0)
    x, y = _circle(400, 0)
    cfg = TrainingConfig(architecture={"hidden": hidden, "activation": activation}, spline={"init": "abs"})
    net = SplineNetwork(cfg, 2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y)
        loss.backward()
        opt.step()
    net.eval()
    L = certify_global(net).certified
    with torch.no_grad():
        logits = net(x)
    radius = torch.from_numpy(certified_radius(logits.numpy(), L))
    eps = 0.05
    local = torch.tensor([lc.bound for lc in local_bounds(net, x, eps)])
    radius = torch.maximum(radius, torch.from_numpy(local_radius(logits.numpy(), local.numpy(), eps)))
    sign = torch.sign(logits[:, 0])
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(30):
        out = net(x + delta)[:, 0]
        (g,) = torch.autograd.grad((out * sign).sum(), delta)
        with torch.no_grad():
            delta -= 0.02 * g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)
            norms = delta.norm(dim=1, keepdim=True)
            delta *= torch.clamp(radius[:, None].float() * 0.999 / norms.clamp(min=1e-12), max=1.0)
    with torch.no_grad():
        flipped = torch.sign(net(x + delta)[:, 0]) != sign
    assert not bool(flipped.any())
    assert float(radius.mean()) > 0


def test_lipsdp_refuses_politely_or_verifies() -> None:
    big = random_network("relu", [128, 128], n_in=4, seed=0, scaling=RANDOM_SCALING)
    cert = certify_global(big, include_lipsdp=True)
    assert "lipsdp_neuron" in cert.skipped
    pytest.importorskip("cvxpy")
    net = random_network("relu", [4, 4], n_in=1, seed=1)
    cert = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=20)
    exact = exact_lipschitz_1d(net)
    if "lipsdp_neuron" in cert.bounds:
        assert cert.bounds["lipsdp_neuron"] >= exact * (1 - REL)
    else:
        assert cert.skipped["lipsdp_neuron"]


def test_lipsdp_verifies_relu_nets_with_a_dead_neuron() -> None:
    """A dead neuron leaves its multiplier free; the solver drives it to ~1e29 and the first proof fails.

    Trained ReLU nets have such neurons (seen on the circle and 1-Lipschitz recipes); capping the runaway
    multipliers must recover a verified bound, which is still sound (>= the exact 1-D constant).
    """
    from lipspline.certificates import exact_lipschitz_1d
    from lipspline.certificates.global_bounds import analyze
    from lipspline.certificates.lipsdp import lipsdp_neuron

    torch.manual_seed(3)
    net = SplineNetwork(TrainingConfig(architecture={"hidden": [10, 10], "activation": "relu"}), 1, 1)
    with torch.no_grad():
        first, second = net.layers[0], net.layers[1]
        first.weight[4].zero_()
        first.bias[4] = -1.0  # never active, no incoming weight
        second.weight[:, 4] = 1e-30
    result = lipsdp_neuron(analyze(net, use_cache=False).view, time_limit_s=60)
    assert result.certified is not None, result.reason
    assert result.certified >= exact_lipschitz_1d(net) * (1 - 1e-9)
    assert result.certified <= certify_global(net, use_cache=False).bounds["liplt"] * (1 + 1e-9)
