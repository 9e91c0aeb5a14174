"""The layer-wise LipSDP bound: a feasible point of LipSDP-Neuron, certified only by the full proof.

* On random 16-64-64-64-4 spline networks it is never below LipSDP's own optimum (it is a point of
  the same program), never below a lower bound, and within 1.2x of LipSDP: the certificate takes it.
* Each stage returns a strictly feasible point of its own program.
* The proof really decides: multipliers paired with a rho below what they allow are refused, and a
  stage that returns garbage ends the attempt with a reason, not an exception.
* Networks it does not apply to (GroupSort, too many units, a zero weight) say why; extreme output
  scales stay sound. (The exact 1-D oracle of ``test_certificate_properties`` attacks it with every
  other bound of ``BOUND_NAMES``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from bench_certificates import random_spline_net as reference_net
from scipy.linalg.lapack import dpotrf

from lipspline.certificates import analyze, certify_global, empirical_lower_bound, jacobian_lower_bound, layerwise_sdp
from lipspline.certificates.layerwise_sdp import LAYERWISE_MAX_DIM, _Stage, layerwise_bound
from lipspline.nn.networks import SplineNetwork
from tests.unit.lipspline.certificates.networks import REL, random_network


def redrawn_net(seed: int) -> SplineNetwork:
    """The reference net's shape (``bench_certificates.random_spline_net``: initial weights, knot values moved
    by N(0, 0.1^2)) drawn by the certificate tests' factory instead (every weight and knot value redrawn)."""
    return random_network("deepspline", [64, 64, 64], n_in=16, n_out=4, seed=seed, knots=21)


def lower_bound(net: SplineNetwork, seed: int = 0) -> float:
    x = torch.randn(64, int(net.n_features), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return max(jacobian_lower_bound(net, x, ascent_steps=4), empirical_lower_bound(net, x))


@pytest.mark.parametrize("draw", [reference_net, redrawn_net])
def test_within_1_2x_of_lipsdp_and_never_below_its_optimum(draw: Callable[[int], SplineNetwork]) -> None:
    net = draw(0)
    cert = certify_global(net, include_lipsdp=True, lipsdp_time_limit_s=120, use_cache=False)
    layerwise = cert.bounds["lipsdp_layerwise"]
    optimum = cert.other_norms["lipsdp_neuron_solver_value"]  # (its proof may fail: only the solver's value)
    assert layerwise >= optimum * (1 - 1e-6)  # a feasible point cannot beat the program's optimum
    assert layerwise <= 1.2 * optimum
    assert layerwise < cert.bounds["liplt_scaled"]  # the closed-form bounds stop near 1.4x LipSDP
    assert layerwise >= lower_bound(net) * (1 - REL)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_default_certificate_takes_it_on_reference_nets(seed: int) -> None:
    net = redrawn_net(seed)
    cert = certify_global(net, use_cache=False)
    assert cert.certified_by == "lipsdp_layerwise"
    assert cert.certified >= lower_bound(net, seed) * (1 - REL)


def test_each_stage_returns_a_strictly_feasible_point() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 7))
    h = rng.standard_normal((12, 12))
    h = h @ h.T / 12
    lo, hi = -rng.random(12), 1 + rng.random(12)
    stage = _Stage(w, h, lo * hi, (lo + hi) / 2)
    s0, _ = stage.start()
    s, lam = stage.solve()
    assert np.all(lam > 0)
    assert s <= s0
    assert dpotrf(stage.matrix(s, lam), lower=1)[1] == 0
    # s bounds W^T G W, G the layer's outgoing matrix for these multipliers
    assert np.linalg.eigvalsh(w.T @ stage.outgoing(lam) @ w).max() <= s * (1 + 1e-9)


def test_the_proof_refuses_a_rho_the_multipliers_do_not_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    analysis = analyze(reference_net(0), use_cache=False)
    honest = layerwise_sdp.layerwise_multipliers

    def optimistic(weights: list[np.ndarray], slopes: list) -> tuple[float, list[np.ndarray]]:
        rho, multipliers = honest(weights, slopes)
        return 0.5 * rho, multipliers

    monkeypatch.setattr(layerwise_sdp, "layerwise_multipliers", optimistic)
    value, reason = layerwise_bound(analysis)
    assert value is None
    assert "could not be proven" in reason


def test_a_broken_stage_is_a_reason_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Stage, "solve", lambda self, steps=None: (1.0, np.full(self.units, np.nan)))
    cert = certify_global(redrawn_net(0), use_cache=False)
    assert "lipsdp_layerwise" not in cert.bounds
    assert cert.skipped["lipsdp_layerwise"]
    assert math.isfinite(cert.certified)


def test_networks_it_does_not_apply_to_say_why() -> None:
    groupsort = certify_global(random_network("groupsort", [8, 8], n_in=3, seed=0), use_cache=False)
    assert "GroupSort" in groupsort.skipped["lipsdp_layerwise"]
    wide = certify_global(random_network("relu", [LAYERWISE_MAX_DIM], n_in=4, seed=0), use_cache=False)
    assert "too large" in wide.skipped["lipsdp_layerwise"]
    net = random_network("deepspline", [6, 6], n_in=3, seed=0)
    with torch.no_grad():
        net.layers[1].weight.zero_()
    assert "zero" in certify_global(net, use_cache=False).skipped["lipsdp_layerwise"]


@pytest.mark.parametrize("factor", [1e-12, 3.0, 1e12])
def test_extreme_output_scales_stay_sound(factor: float) -> None:
    net = random_network("deepspline", [10, 10], n_in=5, n_out=3, seed=4, knots=21)
    with torch.no_grad():
        net.layers[-1].weight.mul_(factor)
    cert = certify_global(net, use_cache=False)
    assert "lipsdp_layerwise" in cert.bounds, cert.skipped.get("lipsdp_layerwise")
    assert cert.bounds["lipsdp_layerwise"] >= lower_bound(net) * (1 - REL)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_block_form_of_the_proof_matrix_is_the_dense_one(seed: int) -> None:
    """``lipsdp.program_matrix`` builds block by block what the dense ``[A; B]^T C [A; B]`` products give
    (the module docstring's formula): it skips only exact zero terms, both signs."""
    from lipspline.certificates import lipsdp
    from lipspline.certificates.view import build_view

    view = build_view(redrawn_net(seed))
    A, B, lo, hi, n0, dim = lipsdp.program_structure(view)
    wl = view.weights[-1]
    lam = np.random.default_rng(seed).random(A.shape[0])
    for absolute in (False, True):
        f = np.abs if absolute else (lambda x: x)
        dense = 2.0 * (f(A).T * f(lo * hi * lam)) @ f(A) + 2.0 * (B.T * lam) @ B
        cross = (f(A).T * f((lo + hi) * lam)) @ B
        dense = dense + cross + cross.T if absolute else dense - cross - cross.T
        dense[:n0, :n0] += 2.5 * np.eye(n0)
        dense[dim - wl.shape[1] :, dim - wl.shape[1] :] += (1 if absolute else -1) * (f(wl).T @ f(wl))
        blocks = lipsdp.program_matrix(A, lo, hi, wl, 2.5, lam, n0, dim, lipsdp.layer_sizes(view), absolute=absolute)
        np.testing.assert_allclose(blocks, dense, rtol=1e-13, atol=1e-13 * np.abs(dense).max())
