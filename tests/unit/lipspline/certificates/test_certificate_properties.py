"""Certificate properties, written independently of the implementation as a cross-check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_schemas import TrainingConfig
from lipspline.certificates import (
    certificate_report,
    certified_radius,
    certify_global,
    empirical_lower_bound,
    exact_lipschitz_1d,
    jacobian_lower_bound,
    local_bounds,
    proven_spectral_norm,
)
from lipspline.certificates.global_bounds import BOUND_NAMES as L2_BOUNDS
from lipspline.certificates.robustness import served_radius
from lipspline.certificates.served_map import ServedMap
from lipspline.data import make_circle
from lipspline.nn.networks import SplineNetwork
from lipspline.training.loop import fit
from tests.unit.lipspline.certificates.networks import ACTIVATIONS, Scaling, Uniform, random_network, stretched

MODES = ["bv2", "one_lipschitz", "none"]
#: this file's networks: input scale U(0.2, 2.2) and mean N(0, 1) per feature, fixed target mean and scale ...
SCALING = Scaling(input_scale=Uniform(0.2, 2.0), input_mean=True, target_mean=0.5, target_scale=1.7)
#: ... their initialised weights stretched and activation parameters shifted with a strength of 0.5
DRAW = stretched(0.5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    hidden=st.lists(st.sampled_from([2, 4, 6]), min_size=1, max_size=3),
    activation=st.sampled_from(ACTIVATIONS),
    mode=st.sampled_from(MODES),
    n_out=st.integers(1, 3),
)
def test_every_upper_bound_dominates_the_exact_constant_in_1d(seed, hidden, activation, mode, n_out):
    net = random_network(activation, hidden, n_in=1, n_out=n_out, seed=seed, mode=mode, scaling=SCALING, draw=DRAW)
    exact = exact_lipschitz_1d(net)
    certificate = certify_global(net)
    for name, value in certificate.bounds.items():
        if name in L2_BOUNDS:
            assert value >= exact * (1 - 1e-9), (name, value, exact)
    assert certificate.certified == min(certificate.bounds.values())
    # the oracle itself is a valid lower bound: sampled pairs never exceed it
    xs = np.random.default_rng(seed).uniform(-6, 6, size=(300, 1))
    assert empirical_lower_bound(net, xs) <= exact * (1 + 1e-9)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    hidden=st.lists(st.sampled_from([4, 8, 16]), min_size=1, max_size=3),
    activation=st.sampled_from(ACTIVATIONS),
    n_in=st.integers(2, 6),
)
def test_upper_bounds_dominate_sampled_lower_bounds(seed, hidden, activation, n_in):
    net = random_network(activation, hidden, n_in=n_in, n_out=3, seed=seed, scaling=SCALING, draw=DRAW)
    x = np.random.default_rng(seed).normal(size=(200, n_in)) * 2
    certificate = certify_global(net)
    lower = max(empirical_lower_bound(net, x), jacobian_lower_bound(net, x[:50], ascent_steps=5))
    assert lower > 0
    for name in ("spectral_product", "per_neuron_scaled", "liplt", "liplt_scaled"):
        if name in certificate.bounds:
            assert certificate.bounds[name] >= lower * (1 - 1e-9), name
    assert "liplt_scaled" in certificate.bounds or "liplt_scaled" in certificate.skipped


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    activation=st.sampled_from(ACTIVATIONS),
    epsilon=st.sampled_from([1e-3, 0.05, 0.3, 2.0, 50.0]),
    norm=st.sampled_from(["l2", "linf"]),
)
def test_local_bound_is_below_global_and_holds_inside_its_ball(seed, activation, epsilon, norm):
    net = random_network(activation, [8, 8], n_in=3, n_out=2, seed=seed, scaling=SCALING, draw=DRAW)
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, 3))
    certificate = certify_global(net)
    locals_ = local_bounds(net, centers, epsilon, norm)
    served = ServedMap(net)

    def net64(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(served.outputs(x.numpy()))

    for center, local in zip(centers, locals_, strict=True):
        assert local.bound <= certificate.certified
        # random pairs inside the ball never beat the local bound
        direction = rng.normal(size=(400, 2, 3))
        if norm == "l2":
            direction /= np.linalg.norm(direction, axis=2, keepdims=True)
            points = center + direction * epsilon * rng.uniform(0, 1, size=(400, 2, 1))
        else:
            points = center + epsilon * rng.uniform(-1, 1, size=(400, 2, 3))
        with torch.no_grad():
            a = net64(torch.as_tensor(points[:, 0]))
            b = net64(torch.as_tensor(points[:, 1]))
        ratio = (
            torch.linalg.vector_norm(a - b, dim=1)
            / torch.linalg.vector_norm(torch.as_tensor(points[:, 0] - points[:, 1]), dim=1)
        ).max()
        assert float(ratio) <= local.bound * (1 + 1e-9)


def test_local_bound_grows_with_epsilon_and_shrinks_to_the_jacobian():
    net = random_network("deepspline", [16, 16], n_in=2, seed=3, scaling=SCALING, draw=DRAW)
    x = np.array([[0.3, -0.2]])
    values = [local_bounds(net, x, eps)[0].bound for eps in (1e-6, 1e-2, 0.5, 100.0)]
    assert values == sorted(values)
    assert values[-1] <= certify_global(net).certified
    jac = jacobian_lower_bound(net, x, ascent_steps=0)
    assert values[0] >= jac * (1 - 1e-9)
    assert values[0] <= 1.5 * jac  # a tiny ball sees (almost) one linear piece


@pytest.mark.parametrize("activation", ["deepspline", "prelu", "relu", "groupsort", "abs"])
def test_one_lipschitz_network_certifies_at_most_one(activation):
    net = random_network(
        activation, [16, 16, 16], n_in=5, seed=11, mode="one_lipschitz", scaling=SCALING, draw=stretched(3.0)
    )
    with torch.no_grad():
        net.input_scale.fill_(1.0)
        net.target_scale.fill_(1.0)
    certificate = certify_global(net)
    assert certificate.certified <= 1 + 1e-5
    # and the constraint was binding: the raw weights are far from 1-Lipschitz
    assert max(float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2)) for layer in net.layers) > 1.5


def test_proven_spectral_norm_is_sound_and_tight():
    rng = np.random.default_rng(0)
    cases = [
        rng.normal(size=(30, 20)),
        rng.normal(size=(5, 200)),
        np.outer(rng.normal(size=40), rng.normal(size=25)),  # rank one
        np.eye(17),
        np.diag([3.0, 3.0, 3.0, 1.0]),  # repeated top singular value
        rng.normal(size=(500, 400)).astype(np.float32).astype(np.float64),  # Lanczos path
        np.zeros((3, 3)),
    ]
    for matrix in cases:
        exact = np.linalg.svd(matrix, compute_uv=False)[0] if matrix.any() else 0.0
        bound = proven_spectral_norm(matrix)
        assert bound >= exact
        assert bound <= exact * (1 + 1e-6) + 1e-100  # zero matrix: an underflow-sized margin


def hand_net() -> SplineNetwork:
    """2 -> 2 -> 1 with hand-set weights and ReLU, identity scaling."""
    config = TrainingConfig.model_validate({"architecture": {"hidden": [2], "activation": "relu"}})
    net = SplineNetwork(config, 2, 1)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
        net.layers[1].weight.copy_(torch.tensor([[1.0, 2.0]]))
    return net


def test_bounds_equal_hand_computation_on_a_tiny_net():
    bounds = certify_global(hand_net()).bounds
    # rel 1e-7: the certificate rounds the folded scaling up (sound, ~5e-9 looser than exact)
    # spectral: ||W1|| = 3, ||W2|| = sqrt(5), ReLU Lip 1
    assert bounds["spectral_product"] == pytest.approx(3 * np.sqrt(5), rel=1e-7)
    # per-neuron: ||W2|| * ||S W1|| with S = I
    assert bounds["per_neuron_scaled"] == pytest.approx(3 * np.sqrt(5), rel=1e-7)
    # LipLT: M = R = I/2: L2 = ||W2 M W1|| + ||W2 R|| ||W1|| = ||[1.5, 1]|| + sqrt(5)/2 * 3
    assert bounds["liplt"] == pytest.approx(np.sqrt(1.5**2 + 1) + 1.5 * np.sqrt(5), rel=1e-7)
    # Frobenius: ||W1||_F ||W2||_F * sum BV2 (ReLU: 2 each)
    assert bounds["frobenius"] == pytest.approx(np.sqrt(10) * np.sqrt(5) * 4, rel=1e-7)
    # BV2 mixed, p = 2: max row l2 norms (3, sqrt 5) * ||(2, 2)||_2 * 1 output
    assert bounds["bv2_mixed"] == pytest.approx(3 * np.sqrt(5) * np.sqrt(8), rel=1e-7)
    # the exact constant: max over activation patterns of ||W2 D W1|| = ||[3, 2]||
    assert max(bounds.values()) >= min(bounds.values()) >= np.sqrt(13)


def test_scaling_is_part_of_the_certified_map():
    net = hand_net()
    base = certify_global(net).certified
    with torch.no_grad():
        net.input_scale.copy_(torch.tensor([2.0, 2.0]))
        net.target_scale.fill_(5.0)
    # f_raw(x) = 5 * f(x / 2): the constant scales by 5 / 2 exactly
    assert certify_global(net).certified == pytest.approx(base * 2.5, rel=1e-9)


def test_cnn_certificate_dominates_lower_bounds():
    config = TrainingConfig.model_validate(
        {
            "architecture": {"kind": "cnn", "input_shape": [2, 5, 5], "conv_channels": [3], "hidden": [6]},
        }
    )
    torch.manual_seed(0)
    net = SplineNetwork(config, 50, 3)
    x = np.random.default_rng(0).normal(size=(100, 50))
    certificate = certify_global(net)
    assert certificate.certified >= max(empirical_lower_bound(net, x), jacobian_lower_bound(net, x, ascent_steps=3))


def test_radius_formulas():
    radius = certified_radius(np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 1.0]]), 1.5)
    assert radius[0] == pytest.approx(1.5 / (np.sqrt(2) * 1.5))
    assert radius[1] == pytest.approx(1.0 / (np.sqrt(2) * 1.5))
    assert certified_radius(np.array([[-3.0]]), 2.0)[0] == pytest.approx(1.5)


@pytest.fixture(scope="module")
def circle_model():
    config = TrainingConfig.model_validate(
        {
            "architecture": {"hidden": [2]},
            "spline": {"knots": 21, "range": 3.0},
            "objective": {"mode": "bv2", "lambda": 1e-3, "mu": 1e-3},
            "training": {"epochs": 60, "batch_size": 32, "lr": 1e-2, "validation_split": 0.0},
            "device": "cpu",
        }
    )
    return fit(make_circle(1000, seed=0), config).model


def test_no_prediction_flips_inside_the_certified_radius(circle_model):
    """A projected-gradient attack inside each certified l2 ball never changes the prediction."""
    net = circle_model.network.double()  # only steers the attack; predictions come from the served map
    lipschitz = certify_global(circle_model.network).certified
    x = torch.tensor(make_circle(200, seed=9).X)
    served = circle_model.served(x.numpy())
    logits = torch.from_numpy(served.outputs)
    radius = torch.as_tensor(served_radius(served, lipschitz))
    sign = torch.sign(logits[:, 0])
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(50):
        margin = (sign * net(x + delta)[:, 0]).sum()
        (grad,) = torch.autograd.grad(margin, delta)
        with torch.no_grad():
            step = grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-12)
            delta -= 0.1 * radius[:, None] * step
            norms = delta.norm(dim=1, keepdim=True)
            delta *= torch.clamp(radius[:, None] / norms.clamp(min=1e-30), max=1.0)
    attacked = torch.from_numpy(circle_model.served_map().outputs((x + delta).detach().numpy()))[:, 0]
    assert bool((torch.sign(attacked) == sign).all())
    # the attack did move the logits toward the boundary: the test is not vacuous
    assert float((sign * attacked).min()) < float((sign * logits[:, 0]).min()) or float(radius.max()) == 0


def test_report_has_tightness(circle_model):
    x = make_circle(300, seed=2).X
    report = certificate_report(circle_model.network, x)
    lower = report.lower_bounds
    assert report.certified >= lower.empirical and report.certified >= lower.jacobian
    assert report.tightness >= 1.0
    assert set(report.bounds) >= {"spectral_product", "per_neuron_scaled", "liplt", "frobenius", "bv2_mixed"}
