"""Certificates on degenerate networks: LipSDP never takes a job down, affine nets, GroupSort after a conv.

* LipSDP on constant nets, tiny [2, 2] splines, dead units and extreme weight
  scales either certifies a value above every lower bound or records why it
  did not; the wall-clock limit holds even when the solve blocks.
* Networks without a hidden layer (an affine map) certify exactly the proven
  norm of their one folded matrix, globally and locally.
* After a convolution GroupSort pairs channels, not neighbouring entries; the
  local bounds must follow the same pairing as the forward pass.
* The first-layer intervals of the local bounds enclose the served map's
  pre-activations (the folded weight applied to ``x - mean``).
"""

from __future__ import annotations

import atexit
import math
import os
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_schemas import TrainingConfig
from lipspline.certificates import (
    _isolated,
    analyze,
    certificate_report,
    certify_global,
    empirical_lower_bound,
    exact_lipschitz_1d,
    jacobian_lower_bound,
    local_bounds,
    proven_spectral_norm,
)
from lipspline.certificates import lipsdp as lipsdp_module
from lipspline.certificates._isolated import DeadlineExceededError, IsolatedFailureError, run_with_deadline
from lipspline.certificates.lipsdp import NO_HIDDEN_REASON, lipsdp_neuron
from lipspline.certificates.local_bounds import preactivation_intervals
from lipspline.certificates.view import GroupSortView, build_view
from lipspline.nn.activations import ReLU
from lipspline.nn.networks import SplineNetwork
from tests.unit.lipspline.certificates.networks import NO_SCALING, RANDOM_SCALING, REDRAW, REL, random_network

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
#: this file's networks: the shared draw with every bias redrawn N(0, 0.3^2) ...
DRAW = replace(REDRAW, bias_std=0.3)
#: ... and, where scaled, the shared random scaling drawn in float64
SCALING = replace(RANDOM_SCALING, dtype=torch.float64, mean_first=True)
#: a small CNN after which GroupSort pairs channels: 2 channels of 3 x 3 pixels, one 3 x 3 convolution to 4 channels
CNN = {"kind": "cnn", "input_shape": (2, 3, 3), "conv_channels": [4], "kernel_size": 3, "conv_stride": 1}


def lower_bound(net: SplineNetwork, seed: int = 0, n: int = 48) -> float:
    gen = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.randn(n, int(net.n_features), generator=gen, dtype=torch.float64)
    return max(jacobian_lower_bound(net, x, ascent_steps=4), empirical_lower_bound(net, x))


# ---- the isolated runner ---------------------------------------------------------------------------------


def _write_pid_then_sleep(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


def _raise_linalg() -> None:
    raise np.linalg.LinAlgError("Singular matrix")


def test_run_with_deadline_returns_the_result_quickly() -> None:
    t0 = time.perf_counter()
    assert run_with_deadline(np.add, np.arange(3), 1, time_limit_s=10).tolist() == [1, 2, 3]
    assert run_with_deadline(sum, range(10**5), time_limit_s=10) == sum(range(10**5))
    assert time.perf_counter() - t0 < 2.0  # a fork costs milliseconds, not seconds


def test_run_with_deadline_kills_a_blocked_child_on_the_wall_clock(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    t0 = time.perf_counter()
    with pytest.raises(DeadlineExceededError, match="ran past 1 s wall clock"):
        run_with_deadline(_write_pid_then_sleep, str(marker), time_limit_s=1.0)
    elapsed = time.perf_counter() - t0
    assert 0.9 <= elapsed < 3.0
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):  # killed *and reaped*: not even a zombie is left
        os.kill(pid, 0)


def test_run_with_deadline_reports_failures_of_the_child() -> None:
    with pytest.raises(IsolatedFailureError, match="LinAlgError: Singular matrix") as info:
        run_with_deadline(_raise_linalg, time_limit_s=10)
    assert info.value.error_type == "LinAlgError"
    with pytest.raises(IsolatedFailureError, match="exited with status 3"):
        run_with_deadline(os._exit, 3, time_limit_s=10)


def test_child_never_runs_the_parents_exit_handlers(tmp_path: Path) -> None:
    marker = tmp_path / "atexit"
    parent = os.getpid()

    def handler() -> None:
        if os.getpid() != parent:
            marker.write_text("the child ran an atexit handler")

    atexit.register(handler)
    try:
        assert run_with_deadline(int, "7", time_limit_s=10) == 7
        with pytest.raises(IsolatedFailureError):
            run_with_deadline(_raise_linalg, time_limit_s=10)
    finally:
        atexit.unregister(handler)
    assert not marker.exists()


def test_without_fork_the_call_runs_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_isolated, "fork_available", lambda: False)
    assert run_with_deadline(os.getpid, time_limit_s=10) == os.getpid()
    with pytest.raises(IsolatedFailureError, match="Singular matrix"):
        run_with_deadline(_raise_linalg, time_limit_s=10)


# ---- LipSDP on degenerate networks ---------------------------------------------------------------------


def _constant_net() -> SplineNetwork:
    net = random_network("deepspline", [4, 4], n_in=2, draw=DRAW)
    with torch.no_grad():
        for p in net.weight_parameters():
            p.zero_()
    return net


def _dead_units_net() -> SplineNetwork:
    net = random_network("relu", [6, 6], n_in=1, seed=1, draw=DRAW)
    with torch.no_grad():
        net.layers[0].weight[:3].zero_()  # three units with no input ...
        net.layers[1].weight[:, :3].zero_()  # ... and no output
        net.layers[1].weight[2:].zero_()  # four second-layer units with no input ...
        net.layers[2].weight[:, 2:].zero_()  # ... and no output
    return net


def _scaled_net(factor: float, seed: int = 2) -> SplineNetwork:
    net = random_network("deepspline", [4, 4], n_in=1, seed=seed, draw=DRAW)
    with torch.no_grad():
        for p in net.weight_parameters():
            p.mul_(factor)
    return net


def _mixed_scale_net() -> SplineNetwork:
    net = random_network("deepspline", [4, 4], n_in=1, seed=3, draw=DRAW)
    with torch.no_grad():
        net.layers[0].weight.mul_(1e15)
        net.layers[2].weight.mul_(1e-15)
    return net


DEGENERATE = {
    "constant": _constant_net,
    "deepspline_2_2_a": lambda: random_network("deepspline", [2, 2], n_in=2, seed=0, draw=DRAW),
    "deepspline_2_2_b": lambda: random_network("deepspline", [2, 2], n_in=1, seed=1, draw=DRAW),
    "deepspline_2": lambda: random_network("deepspline", [2], n_in=2, seed=2, draw=DRAW),
    "dead_units": _dead_units_net,
    "huge_weights": lambda: _scaled_net(1e12),
    "tiny_weights": lambda: _scaled_net(1e-12),
    "mixed_scales": _mixed_scale_net,
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_lipsdp_on_degenerate_nets_certifies_soundly_or_says_why(name: str) -> None:
    net = DEGENERATE[name]()
    t0 = time.perf_counter()
    cert = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=20, use_cache=False)
    assert time.perf_counter() - t0 < 20
    lower = lower_bound(net)
    if int(net.n_features) == 1:
        lower = max(lower, exact_lipschitz_1d(net))
    assert cert.certified >= lower * (1 - REL)
    if "lipsdp_neuron" in cert.bounds:
        assert math.isfinite(cert.bounds["lipsdp_neuron"])
        assert cert.bounds["lipsdp_neuron"] >= lower * (1 - REL)
        assert "lipsdp_neuron" not in cert.skipped
    else:
        reason = cert.skipped["lipsdp_neuron"]
        assert isinstance(reason, str) and len(reason) > 10
    if name == "constant":
        assert cert.certified == 0.0
        assert "constant" in cert.skipped["lipsdp_neuron"]


def test_barrier_on_a_constant_net_ends_with_a_reason_instead_of_hanging() -> None:
    """The iteration that used to hand NaN to ``lstsq`` (which can block forever) now stops with a reason.

    It runs under the isolated runner, so even a regression cannot hang the test suite.
    """
    view = analyze(_constant_net(), use_cache=False).view
    A, B, lo, hi, n0, dim = lipsdp_module.program_structure(view)
    lo, hi = lipsdp_module.snap_outwards(lo, hi)
    barrier = lipsdp_module._Barrier(A, B, lo, hi, view.weights[-1], n0, dim, lipsdp_module.layer_sizes(view))

    def solve() -> object:
        with np.errstate(all="ignore"):
            return barrier.solve(time.perf_counter() + 8.0)

    out = run_with_deadline(solve, time_limit_s=10.0)
    assert isinstance(out, str) and out


@pytest.mark.parametrize("isolate", [True, False])
def test_any_exception_inside_the_solve_becomes_a_reason(monkeypatch: pytest.MonkeyPatch, isolate: bool) -> None:
    def broken(self, deadline):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(lipsdp_module._Barrier, "solve", broken)
    view = analyze(random_network("relu", [3, 3], n_in=2, draw=DRAW), use_cache=False).view
    result = lipsdp_neuron(view, time_limit_s=10, isolate=isolate)
    assert result.certified is None
    assert "LinAlgError" in result.reason and "SVD did not converge" in result.reason


def test_non_finite_multipliers_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    view = analyze(random_network("relu", [3, 3], n_in=2, draw=DRAW), use_cache=False).view
    n = view.hidden_units
    monkeypatch.setattr(lipsdp_module._Barrier, "solve", lambda self, deadline: (1.0, np.full(n, np.nan), 3))
    result = lipsdp_neuron(view, time_limit_s=10)
    assert result.certified is None
    assert "non-finite" in result.reason


def test_a_solve_that_blocks_is_killed_at_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lipsdp_module._Barrier, "solve", lambda self, deadline: time.sleep(60))
    net = random_network("relu", [3, 3], n_in=2, draw=DRAW)
    t0 = time.perf_counter()
    cert = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=1.0, use_cache=False)
    assert time.perf_counter() - t0 < 3.0
    assert "lipsdp_neuron" not in cert.bounds
    assert "ran past 1 s wall clock" in cert.skipped["lipsdp_neuron"]
    assert cert.certified == min(cert.bounds.values())  # the closed-form bounds stand


def test_a_tiny_time_limit_records_a_reason_on_a_real_solve() -> None:
    net = random_network("deepspline", [8, 8], n_in=3, seed=4, draw=DRAW)
    t0 = time.perf_counter()
    cert = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=1e-6, use_cache=False)
    assert time.perf_counter() - t0 < 3.0
    assert "wall clock" in cert.skipped["lipsdp_neuron"]
    assert cert.certified >= lower_bound(net) * (1 - REL)


# ---- networks without a hidden layer -------------------------------------------------------------------


@SETTINGS
@given(
    n_features=st.integers(1, 5),
    n_outputs=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    scaled=st.booleans(),
)
def test_affine_network_certificate_is_the_proven_norm_of_its_folded_weight(
    n_features: int, n_outputs: int, seed: int, scaled: bool
) -> None:
    scaling = SCALING if scaled else NO_SCALING
    net = random_network("deepspline", [], n_in=n_features, n_out=n_outputs, seed=seed, scaling=scaling, draw=DRAW)
    view = build_view(net)
    assert len(view.weights) == 1 and not view.activations
    proven = proven_spectral_norm(view.weights[0])
    exact_norm = float(np.linalg.norm(view.weights[0], 2))
    cert = certify_global(net, include_lipsdp=True, use_cache=False)
    assert cert.bounds["spectral_product"] == proven
    # a single output row makes the Frobenius bound the same exact number with a smaller proof slack
    assert exact_norm * (1 - REL) <= cert.certified <= proven
    if n_outputs > 1:
        assert cert.certified == proven
    assert cert.skipped["lipsdp_neuron"] == NO_HIDDEN_REASON
    x = torch.randn(3, n_features, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for norm in ("l2", "linf"):
        for lc in local_bounds(net, x, 0.25, norm):
            assert lc.bound == cert.certified
    assert jacobian_lower_bound(net, x, ascent_steps=2) <= cert.certified * (1 + REL)


def test_affine_one_feature_network_matches_the_exact_oracle() -> None:
    for n_outputs in (1, 3):
        net = random_network("deepspline", [], n_in=1, n_out=n_outputs, seed=11, scaling=SCALING, draw=DRAW)
        exact = exact_lipschitz_1d(net)
        cert = certify_global(net, use_cache=False)
        assert exact * (1 - REL) <= cert.certified <= exact * (1 + 1e-8)
        assert local_bounds(net, np.array([[0.3]]), 0.1)[0].bound == cert.certified


def test_affine_network_report_and_training() -> None:
    from lipspline.data import from_arrays
    from lipspline.training.loop import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    cfg = TrainingConfig(architecture={"hidden": []}, training={"epochs": 2, "batch_size": 32}, device="cpu")
    model = fit(from_arrays(x.tolist(), y.tolist()), cfg).model
    report = certificate_report(model.network, x, include_lipsdp=True, max_pairs=256, jacobian_points=16)
    assert report.skipped["lipsdp_neuron"] == NO_HIDDEN_REASON
    assert report.best_lower_bound <= report.certified * (1 + REL)
    assert report.tightness is not None and report.tightness < 1 + 1e-6


# ---- GroupSort after a convolution ---------------------------------------------------------------------


def _channel_pairing_net() -> SplineNetwork:
    """A conv net whose true constant near x = (-1, 1) is 1 and which neighbour pairing gets wrong.

    Input: one channel, two pixels. The 1x1 convolution copies the image into
    channel 0 and puts -10 in channel 1; GroupSort sorts the channel pair at
    each pixel, giving (x0, x1, -10, -10) for x > -10. A ReLU unit reads
    ``-(entry 0)`` = -x0 (active near x0 = -1, slope 1) and the output is that
    unit: f(x) = relu(-x0), of constant 1. Pairing neighbouring entries would
    instead sort (x0, x1), put max(x0, x1) = 1 in entry 0 and kill the unit.
    """
    pixels = {"kind": "cnn", "input_shape": (1, 1, 2), "conv_channels": [2], "kernel_size": 1, "conv_stride": 1}
    net = random_network("groupsort", [2], n_in=2, architecture=pixels, draw=DRAW)
    net.activations[1] = ReLU(2)
    with torch.no_grad():
        conv, dense, out = net.layers
        conv.weight.copy_(torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -10.0]))
        dense.weight.zero_()
        dense.weight[0, 0] = -1.0
        dense.bias.zero_()
        out.weight.copy_(torch.tensor([[1.0, 0.0]]))
        out.bias.zero_()
    return net


def test_groupsort_view_pairs_channels_after_a_convolution() -> None:
    view = build_view(_channel_pairing_net())
    gs = view.activations[0]
    assert isinstance(gs, GroupSortView)
    first, second = gs.pairs()
    assert first.tolist() == [0, 1] and second.tolist() == [2, 3]


def test_local_bound_follows_the_channel_pairing_on_a_hand_built_net() -> None:
    net = _channel_pairing_net()
    x = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    assert jacobian_lower_bound(net, x, ascent_steps=0) == pytest.approx(1.0, rel=1e-12)
    cert = certify_global(net, use_cache=False)
    assert cert.certified >= 1.0
    for norm in ("l2", "linf"):
        (lc,) = local_bounds(net, x, 0.1, norm)
        assert lc.bound >= 1.0, lc.bounds
    # and where the unit is really dead (x0 > 0 in the whole ball) the local bound sees it
    (dead,) = local_bounds(net, torch.tensor([[1.0, -1.0]], dtype=torch.float64), 0.1)
    assert dead.bound < 1e-6


def _preactivations(net: SplineNetwork, x: torch.Tensor) -> list[np.ndarray]:
    """Float64 pre-activations of every hidden layer (outputs of layers[:-1], flattened channel-major)."""
    captured: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: captured.append(o)) for layer in net.layers[:-1]]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return [c.reshape(c.shape[0], -1).numpy() for c in captured]


def _cnn_with_relu_head(seed: int) -> SplineNetwork:
    net = random_network("groupsort", [6], n_in=2 * 3 * 3, n_out=2, seed=seed, architecture=CNN, draw=DRAW)
    net.activations[1] = ReLU(6)  # an element-wise head: its local slopes depend on the GroupSort intervals
    return net


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cnn_groupsort_intervals_enclose_sampled_preactivations(seed: int) -> None:
    net = _cnn_with_relu_head(seed).double()
    gen = torch.Generator().manual_seed(100 + seed)
    centres = torch.randn(4, 18, generator=gen, dtype=torch.float64)
    eps = 0.3
    intervals = preactivation_intervals(analyze(net, use_cache=False), centres.numpy(), eps, "l2")
    for row in range(centres.shape[0]):
        direction = torch.randn(64, 18, generator=gen, dtype=torch.float64)
        direction = direction / direction.norm(dim=1, keepdim=True)
        radius = eps * torch.rand(64, 1, generator=gen, dtype=torch.float64)
        points = centres[row] + radius * direction
        for (lo, hi), z in zip(intervals, _preactivations(net, points), strict=True):
            slack = 1e-12 * (1 + np.abs(z))
            assert np.all(z >= lo[row] - slack) and np.all(z <= hi[row] + slack)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cnn_groupsort_local_bound_dominates_jacobians_inside_the_ball(seed: int) -> None:
    for net in (
        _cnn_with_relu_head(seed),
        random_network("groupsort", [4], n_in=18, seed=seed, architecture=CNN, draw=DRAW),
    ):
        gen = torch.Generator().manual_seed(200 + seed)
        centres = torch.randn(3, 18, generator=gen, dtype=torch.float64)
        eps = 0.2
        bounds = local_bounds(net, centres, eps, "l2")
        for row, lc in enumerate(bounds):
            direction = torch.randn(32, 18, generator=gen, dtype=torch.float64)
            direction = direction / direction.norm(dim=1, keepdim=True)
            points = centres[row] + 0.9 * eps * torch.rand(32, 1, generator=gen, dtype=torch.float64) * direction
            assert lc.bound >= jacobian_lower_bound(net, points, ascent_steps=0) * (1 - REL)
            assert lc.bound <= lc.global_bound


# ---- first-layer intervals describe the served map -----------------------------------------------------


def _exact_first_preactivations(net: SplineNetwork, x: np.ndarray) -> list[list[Fraction]]:
    """F's first pre-activations in exact rational arithmetic: view.weights[0] (x - mean) + view.biases[0]."""
    view = build_view(net)
    w = [[Fraction(float(v)) for v in row] for row in view.weights[0]]
    b = [Fraction(float(v)) for v in view.biases[0]]
    m = [Fraction(float(v)) for v in view.input_mean]
    out = []
    for point in x:
        d = [Fraction(float(v)) - mj for v, mj in zip(point, m, strict=True)]
        out.append(
            [
                sum((wij * dj for wij, dj in zip(row, d, strict=True)), Fraction(0)) + bi
                for row, bi in zip(w, b, strict=True)
            ]
        )
    return out


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    offset=st.sampled_from([0.0, 1.0, 1e3, 1e5]),
    scale=st.sampled_from([3.0, 7.0, 0.1, 1e-3, 12345.678]),
)
def test_first_layer_intervals_enclose_the_served_map_exactly(seed: int, offset: float, scale: float) -> None:
    """At eps = 0 the interval is only rounding-wide, so it must contain F's value and not a neighbour's.

    The fold ``1/scale`` rounded up to 29 bits differs from ``1/scale`` by up to
    2^-29 relatively: an interval centred on ``((x - m)/scale) W + b`` misses F's
    value by far more than its width when ``x - m`` is large.
    """
    n = 3
    net = random_network("relu", [4], n_in=n, seed=seed, draw=DRAW)
    with torch.no_grad():
        net.input_scale.copy_(torch.full((n,), scale, dtype=torch.float64))
        net.input_mean.copy_(torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64))
    gen = np.random.default_rng(seed)
    x = net.input_mean.numpy() + offset * scale * gen.normal(size=(3, n)) + gen.normal(size=(3, n))
    analysis = analyze(net, use_cache=False)
    exact = _exact_first_preactivations(net, x)
    for eps in (0.0, 1e-3):
        ((lo, hi),) = preactivation_intervals(analysis, x, eps, "l2")
        for row in range(x.shape[0]):
            for unit, value in enumerate(exact[row]):
                assert Fraction(float(lo[row, unit])) <= value <= Fraction(float(hi[row, unit]))
    # and the interval at eps = 0 is tight: F is what it describes, to rounding
    ((lo, hi),) = preactivation_intervals(analysis, x, 0.0, "l2")
    view = analysis.view
    magnitude = np.abs(x - view.input_mean) @ np.abs(view.weights[0]).T + np.abs(view.biases[0])
    assert np.all(hi - lo <= 1e-12 * (1.0 + magnitude))
