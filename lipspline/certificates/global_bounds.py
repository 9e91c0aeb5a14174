"""Global l2 Lipschitz upper bounds of the user-visible map, each proven.

Write the map as f = A_L o sigma_{L-1} o ... o sigma_1 o A_1 with A_l(x) = W_l x + b_l
(scaling folded in, see structure.py). f is continuous and piecewise linear,
so its l2 Lipschitz constant is the supremum of ||J_f(x)||_2 over the points
where it is differentiable, and there J_f = W_L D_{L-1} W_{L-1} ... D_1 W_1 with
D_l = diag of the activation slopes, each in the unit's slope interval
[a_n, b_n] (for GroupSort, D_l is a permutation matrix instead).

Why each bound holds:

- ``spectral_product`` = prod ||W_l||_2 * prod max_n Lip sigma_{n,l}: submultiplicativity,
  ||D_l||_2 = max |slope| <= max_n Lip (GroupSort: ||P||_2 = 1).
- ``per_neuron_scaled`` = ||W_L||_2 prod_{l<L} ||S_l W_l||_2 with S_l = diag(Lip sigma_{n,l}):
  D_l W_l = (D_l S_l^+)(S_l W_l) and ||D_l S_l^+||_2 <= 1 (rows with S = 0 are 0 in D too).
  GroupSort layers use S_l = I.
- ``liplt`` (loop transformation): write sigma_l(z) = M_l z + R_l psi_l(z) with
  M = diag((a+b)/2), R = diag((b-a)/2), so psi_l is 1-Lipschitz (its slopes lie in
  [-1, 1]; GroupSort: M = 0, R = I, psi = GroupSort). Unrolling z_k = W_k sigma(z_{k-1})
  gives z_k = W_k M_{k-1} ... M_1 W_1 x + sum_j W_k M_{k-1} ... W_{j+1} R_j psi_j(z_j),
  hence L_k <= ||W_k M_{k-1} ... W_1|| + sum_j ||W_k M_{k-1} ... W_{j+1} R_j|| L_j. Valid for
  non-monotone splines (negative slopes), unlike the slope-restricted LipSDP sectors.
- ``frobenius`` (paper 000, Prop. 3) = prod ||W_l||_F prod_{l<L} ||sigma_l||_{BV2,1}, from
  |sigma(s) - sigma(t)| <= ||sigma||_BV2 |s - t| (Prop. 1).
- ``bv2_mixed`` (paper 000, Thm. 1) = prod ||W_l||_{q,inf} prod_{l<L} ||sigma_l||_{BV2,p}
  * N_L^{1/p}: Hoelder per layer; the last affine layer has no activation, i.e. the
  identity, whose BV2 norm is 1 per output (hence N_L^{1/p}). It is an l_p -> l_p
  bound: it enters the certified l2 value only for p = 2.

Floating point: every spectral norm is ``proven_spectral_norm`` (a Cholesky proof,
see spectral.py) of a float64 matrix, plus a tracked bound on how far that float
matrix is from the exact product it stands for (|fl(AB) - AB| <= gamma_n |A||B|,
Higham Thm 3.5, so the spectral error is <= gamma_n ||A||_F ||B||_F, accumulated
through each chain). Scalars are combined with upward rounding (``_fp``).
The certified value is the minimum of the l2 bounds computed: each is an upper
bound, so the smallest is too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from lipspline.certificates._fp import U, add_up, frobenius_upper, gamma, mul_up, up
from lipspline.certificates.spectral import proven_spectral_norm
from lipspline.certificates.structure import ActivationView, NetworkView, network_view
from lipspline.networks import SplineNetwork

L2_BOUNDS = ("spectral_product", "per_neuron_scaled", "liplt", "frobenius", "bv2_mixed")


@dataclass
class Tracked:
    """A float64 matrix and a proven bound on its l2 distance to the exact matrix it represents."""

    value: np.ndarray
    error: float = 0.0

    def left_multiply(self, matrix: np.ndarray) -> Tracked:
        product = matrix @ self.value
        rounding = mul_up(gamma(matrix.shape[1]), frobenius_upper(matrix), frobenius_upper(self.value))
        carried = mul_up(frobenius_upper(matrix), self.error)
        return Tracked(product, add_up(rounding, carried))

    def scale_rows(self, factors: np.ndarray) -> Tracked:
        scaled = factors[:, None] * self.value
        rounding = mul_up(U, frobenius_upper(scaled))
        carried = mul_up(float(np.max(np.abs(factors))) if factors.size else 0.0, self.error)
        return Tracked(scaled, add_up(rounding, carried))

    def norm(self) -> float:
        return add_up(proven_spectral_norm(self.value), self.error)


def _slope_factors(view: ActivationView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S = Lip, M = midpoint, R = radius) per unit; GroupSort: (1, 0, 1)."""
    if not view.elementwise:
        ones = np.ones_like(view.slope_low)
        return ones, np.zeros_like(ones), ones
    low, high = view.slope_low, view.slope_high
    mid = (low + high) / 2
    radius = np.nextafter((high - low) / 2, np.inf)
    # |mid| + radius must cover every slope: widen by the rounding of the midpoint
    radius = np.nextafter(radius + 2 * U * np.abs(mid), np.inf)
    return view.lipschitz, mid, radius


def folded_weights(view: NetworkView) -> list[Tracked]:
    """The (scaling-folded) weights with the rounding error of the folding."""
    return [
        Tracked(w, mul_up(view.fold_error[i], frobenius_upper(w))) for i, w in enumerate(view.weights)
    ]


def spectral_product(view: NetworkView, weight_norms: list[float]) -> float:
    lips = [float(np.max(a.lipschitz)) if a.elementwise else 1.0 for a in view.activations]
    return mul_up(*weight_norms, *lips)


def per_neuron_scaled(view: NetworkView, weight_norms: list[float]) -> float:
    folded = folded_weights(view)
    factors = [weight_norms[-1]]
    for index, activation in enumerate(view.activations):
        if activation.elementwise:
            factors.append(folded[index].scale_rows(activation.lipschitz).norm())
        else:
            factors.append(weight_norms[index])
    return mul_up(*factors)


def liplt(view: NetworkView, weight_norms: list[float]) -> float:
    """Loop-transformation bound (the view may carry local, narrower slope intervals)."""
    acts = view.activations
    folded = folded_weights(view)
    lipschitz = [weight_norms[0]]  # L_1: the first pre-activation
    direct = folded[0]  # W_k M_{k-1} ... M_1 W_1
    through: list[Tracked] = []  # Q_{k,j} = W_k M_{k-1} ... W_{j+1} R_j, j < k
    for k in range(1, len(folded)):
        _, mid, radius = _slope_factors(acts[k - 1])
        weight = folded[k].value
        direct = direct.scale_rows(mid).left_multiply(weight)
        through = [q.scale_rows(mid).left_multiply(weight) for q in through]
        through.append(Tracked(weight * radius[None, :], mul_up(U, frobenius_upper(weight * radius[None, :]))))
        terms = [direct.norm()] + [mul_up(q.norm(), lipschitz[j]) for j, q in enumerate(through)]
        lipschitz.append(add_up(*terms))
    return lipschitz[-1]


def frobenius(view: NetworkView) -> float | None:
    if any(a.bv2 is None for a in view.activations):
        return None
    norms = [frobenius_upper(w) for w in view.weights]
    return mul_up(*norms, *(add_up(*a.bv2.tolist()) for a in view.activations))


def _q_inf_norm(weight: np.ndarray, q: float) -> float:
    """max_n ||w_n||_q, rounded up."""
    if math.isinf(q):
        rows = np.max(np.abs(weight), axis=1)
    elif q == 1.0:
        rows = np.sum(np.abs(weight), axis=1)
    else:
        rows = np.sum(np.abs(weight) ** q, axis=1) ** (1.0 / q)
    ops = weight.shape[1] + 8
    return up(float(np.max(rows)) * (1 + 4 * ops * U))


def _p_norm(values: np.ndarray, p: float) -> float:
    if math.isinf(p):
        return up(float(np.max(values)))
    return up(float(np.sum(values**p) ** (1.0 / p)) * (1 + 4 * (values.size + 8) * U))


def bv2_mixed(view: NetworkView, p: float = 2.0) -> float | None:
    if any(a.bv2 is None for a in view.activations):
        return None
    q = math.inf if p == 1.0 else (1.0 if math.isinf(p) else p / (p - 1.0))
    weights = [_q_inf_norm(w, q) for w in view.weights]
    layers = [_p_norm(a.bv2, p) for a in view.activations]
    n_out = view.weights[-1].shape[0]
    identity = 1.0 if math.isinf(p) else up(n_out ** (1.0 / p) * (1 + 4 * U))
    return mul_up(*weights, *layers, identity)


@dataclass
class GlobalCertificate:
    bounds: dict[str, float]
    certified: float
    certified_by: str
    p: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "certified": self.certified,
            "certified_by": self.certified_by,
            "norm": "l2",
            "bounds": dict(self.bounds),
            "bv2_mixed_p": self.p,
            "timings_ms": dict(self.timings_ms),
            "skipped": dict(self.skipped),
        }


def certify_global(network: SplineNetwork, *, p: float = 2.0, include_lipsdp: bool = False) -> GlobalCertificate:
    """Every global bound by name and the certified (smallest sound l2) value."""
    timings: dict[str, float] = {}
    skipped: dict[str, str] = {}
    began = time.perf_counter()
    view = network_view(network)
    folded = folded_weights(view)
    weight_norms = [t.norm() for t in folded]
    timings["weight_norms"] = (time.perf_counter() - began) * 1e3
    bounds: dict[str, float] = {}

    def timed(name: str, compute) -> None:
        start = time.perf_counter()
        value = compute()
        timings[name] = (time.perf_counter() - start) * 1e3
        if value is None:
            skipped[name] = "needs BV2 norms of every activation (GroupSort is not an elementwise function)"
        else:
            bounds[name] = float(value)

    timed("spectral_product", lambda: spectral_product(view, weight_norms))
    timed("per_neuron_scaled", lambda: per_neuron_scaled(view, weight_norms))
    timed("liplt", lambda: liplt(view, weight_norms))
    timed("frobenius", lambda: frobenius(view))
    timed("bv2_mixed", lambda: bv2_mixed(view, p))
    if include_lipsdp:
        skipped["lipsdp_neuron"] = "LipSDP-Neuron is not implemented yet"
    candidates = {k: v for k, v in bounds.items() if k != "bv2_mixed" or p == 2.0}
    name = min(candidates, key=candidates.get)
    timings["total"] = (time.perf_counter() - began) * 1e3
    return GlobalCertificate(bounds, candidates[name], name, p, timings, skipped)
