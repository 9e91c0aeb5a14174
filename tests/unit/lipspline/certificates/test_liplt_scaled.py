"""The scaled LipLT bound: sound for *any* scaling, equal to LipLT at T = I, and tighter after the search."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from bench_certificates import random_spline_net
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_schemas import TrainingConfig
from lipspline.certificates import analysis as analysis_module
from lipspline.certificates import certify_global, jacobian_lower_bound, liplt_scaled, local_bounds
from lipspline.certificates.global_bounds import analyze
from lipspline.nn.networks import SplineNetwork
from tests.unit.lipspline.certificates.networks import Draw, Scaling, Uniform, random_network

#: this file's networks (7 knots): scale U(0.3, 1.3) per feature, target scale 1.5 ...
SCALING = Scaling(input_scale=Uniform(0.3, 1.0), target_scale=1.5)
#: ... non-monotone splines: slope intervals straddle 0 (the initial weights are kept)
DRAW = Draw(one_stream=True, activation_noise=0.7)


def box_supremum(net: SplineNetwork) -> float:
    """max ||W_L D ... D W_1|| over every diagonal D with entries at the ends of the slope intervals.

    The norm is convex in each diagonal entry, so this vertex maximum is the supremum over the
    whole box of D's: every LipLT-type bound (which bounds the whole box) must be at least this.
    """
    view = analyze(net, use_cache=False).view
    ends = [np.stack(a.slope_interval(), axis=1) for a in view.activations]
    best = 0.0
    for choice in itertools.product(*[itertools.product(*[(lo, hi) for lo, hi in e]) for e in ends]):
        j = view.weights[0]
        for d, w in zip(choice, view.weights[1:], strict=True):
            j = w @ (np.asarray(d)[:, None] * j)
        best = max(best, float(np.linalg.norm(j, 2)))
    return best


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), activation=st.sampled_from(["deepspline", "prelu", "leaky_relu", "abs"]))
def test_any_scaling_bounds_every_jacobian_of_the_slope_box(seed: int, activation: str) -> None:
    net = random_network(activation, [3, 3], n_in=3, n_out=2, seed=seed, knots=7, scaling=SCALING, draw=DRAW)
    analysis = analyze(net, use_cache=False)
    (a, b), seg = analysis.view.segments[0], analysis.seg_liplt[0]
    exact_box = box_supremum(net)
    rng = np.random.default_rng(seed)
    for spread in (0.0, 0.5, 3.0):  # T = I, mild and wild scalings: each must stay sound
        logt = {j: spread * rng.standard_normal(analysis.W[j].shape[0]) for j in range(a, b)}
        value = liplt_scaled.proven_scaled_liplt(seg.terms, logt, b, analysis.norm)
        assert value >= exact_box * (1 - 1e-12), (spread, value, exact_box)
    assert analysis.bounds["liplt_scaled"] >= exact_box * (1 - 1e-12)


def test_identity_scaling_is_plain_liplt() -> None:
    net = random_network("deepspline", [4, 5], n_in=3, n_out=2, seed=1, knots=7, scaling=SCALING, draw=DRAW)
    analysis = analyze(net, use_cache=False)
    (a, b), seg = analysis.view.segments[0], analysis.seg_liplt[0]
    W = analysis.view.weights
    (m1, r1), (m2, r2) = (
        (0.5 * (lo + hi), 0.5 * (hi - lo)) for lo, hi in (act.slope_interval() for act in analysis.view.activations)
    )
    n2 = lambda x: np.linalg.norm(x, 2)  # noqa: E731
    L1 = n2(W[0])
    L2 = n2(W[1] * m1 @ W[0]) + n2(W[1] * r1) * L1
    L3 = n2(W[2] * m2 @ W[1] * m1 @ W[0]) + n2(W[2] * m2 @ W[1] * r1) * L1 + n2(W[2] * r2) * L2
    identity = {j: np.zeros(W[j].shape[0]) for j in range(a, b)}
    value = liplt_scaled.proven_scaled_liplt(seg.terms, identity, b, analysis.norm)
    assert value == pytest.approx(L3, rel=1e-7)
    assert value >= L3 * (1 - 1e-15)


def test_search_tightens_liplt_on_the_random_spline_net() -> None:
    """The reference 16-64-64-64-4 setting (docs/design.md#reference-network).

    The searched scalings gain > 20 % over LipLT, and stay sound (the layer-wise LipSDP bound,
    ``test_layerwise_sdp.py``, is lower still and certifies this net)."""
    net = random_spline_net(0)
    cert = certify_global(net, use_cache=False)
    assert cert.bounds["liplt_scaled"] < 0.8 * cert.bounds["liplt"]
    assert cert.certified_by == "lipsdp_layerwise"
    assert cert.certified < cert.bounds["liplt_scaled"]
    assert cert.bounds["spectral_product"] / cert.certified > 5.0
    x = torch.randn(256, 16)
    assert cert.certified >= jacobian_lower_bound(net, x, ascent_steps=10)


def test_scaled_never_reports_above_plain_liplt_on_one_lipschitz_nets() -> None:
    """Orthogonal weights fool the smooth stand-in (every singular value is 1): here the searched T
    proves 1.02 while T = I proves 1.0. T = I stays one of the choices, so the bound reported is <= liplt."""
    config = TrainingConfig.model_validate(
        {"architecture": {"hidden": [10, 10], "activation": "abs"}, "objective": {"mode": "one_lipschitz"}}
    )
    torch.manual_seed(0)
    net = SplineNetwork(config, 4, 1)
    with torch.no_grad():
        for layer in net.layers:
            side = max(layer.weight.shape)
            q, _ = torch.linalg.qr(torch.randn(side, side))
            layer.weight.copy_(q[: layer.weight.shape[0], : layer.weight.shape[1]])
    cert = certify_global(net, use_cache=False)
    assert cert.bounds["liplt_scaled"] <= cert.bounds["liplt"]
    assert cert.certified <= 1 + 1e-5


def test_search_is_skipped_above_its_flop_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    net = random_network("deepspline", [8, 8], n_in=3, n_out=2, seed=2, knots=7, scaling=SCALING, draw=DRAW)
    monkeypatch.setattr(liplt_scaled, "SEARCH_FLOPS", 10.0)
    cert = certify_global(net, use_cache=False)
    assert "liplt_scaled" not in cert.bounds
    assert "too large for the scaling search" in cert.skipped["liplt_scaled"]
    assert cert.certified == min(cert.bounds.values())


def test_a_stopped_search_resumes_to_the_scalings_of_an_uninterrupted_one() -> None:
    analysis = analyze(random_spline_net(1), use_cache=False)
    (a, b), seg = analysis.view.segments[0], analysis.seg_liplt[0]
    sizes = {j: analysis.W[j].shape[0] for j in range(a, b)}
    uninterrupted = liplt_scaled.ScalingSearch(seg.terms, sizes, b)
    uninterrupted.advance(liplt_scaled.ITERATIONS)
    whole = uninterrupted.result()
    split = liplt_scaled.ScalingSearch(seg.terms, sizes, b)
    split.advance(7)
    early = split.result()
    split.advance(liplt_scaled.ITERATIONS)
    resumed = split.result()
    assert split.steps == liplt_scaled.ITERATIONS
    assert all(np.array_equal(whole[j], resumed[j]) for j in whole)
    assert any(not np.array_equal(early[j], resumed[j]) for j in whole)  # the copy handed out earlier stays as it was


def test_the_search_stops_early_when_another_bound_is_far_below(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the reference net the layer-wise LipSDP bound is ~30 % below the scaled LipLT: the search stops
    after GIVE_UP_AFTER steps, the certified value is that of the full search, and the local bounds get the
    scalings of the full search (finished on first use)."""
    net = random_spline_net(0)
    stopped = analyze(net, use_cache=False)
    assert stopped.searches[0].steps == analysis_module.GIVE_UP_AFTER
    monkeypatch.setattr(analysis_module, "GIVE_UP_ABOVE", math.inf)
    full = analyze(net, use_cache=False)
    assert full.searches[0].steps == liplt_scaled.ITERATIONS
    assert min(stopped.bounds.values()) == min(full.bounds.values())
    assert stopped.bounds["lipsdp_layerwise"] == full.bounds["lipsdp_layerwise"]
    finished = stopped.segment_scalings(0)
    assert stopped.searches[0].steps == liplt_scaled.ITERATIONS
    assert all(np.array_equal(finished[j], full.segment_scalings(0)[j]) for j in finished)
    x = np.random.default_rng(0).normal(size=(4, 16))
    analysis_module.clear_cache()  # local_bounds analyses through the cache: first with the full search ...
    with_full_search = [c.bound for c in local_bounds(net, x, 0.05)]
    analysis_module.clear_cache()  # ... then with the search stopped early and finished on first use
    monkeypatch.setattr(analysis_module, "GIVE_UP_ABOVE", 1.25)
    assert [c.bound for c in local_bounds(net, x, 0.05)] == with_full_search
