"""Local l2 Lipschitz upper bounds of the user-visible map in a ball B(x0, eps).

Why they hold: the ball is convex, so for x, y in it the segment between them
stays inside and ``||f(x) - f(y)|| <= sup_{z in ball} ||J(z)|| ||x - y||``
(l2 distances, whatever the ball's own norm). Inside the ball each
pre-activation stays in an interval; a unit can then only use the pieces of
its activation that meet that interval, so its slope interval shrinks (a dead
ReLU has slope 0, a spline only the slopes of the cells it reaches), and the
per-neuron, LipLT and spectral-product bounds of ``global_bounds.py`` are
recomputed with these intervals. The LipLT recursion accepts *any* valid
bound for the inner L_j, so L_j = min(local, global) is used.

Pre-activation intervals (sound in floating point): interval arithmetic in
centre/radius form (``c' = W m + b``, ``r' = |W| rad``) with the exact range of
each activation over an interval (values at the ends and at every kink
inside), every rounding covered by an explicit gamma_n term; intersected with
``z(x0) +- ell_n eps2``, where ``ell_n`` is a proven per-row Lipschitz bound of
that pre-activation (row-wise LipLT) and ``eps2`` the l2 radius of the ball
(``eps sqrt(d)`` for an l-inf ball). Cells are selected with a margin, so no
reachable piece is missed. The first layer is that of the served map, the
folded first weight applied to ``x - input_mean`` (``_first_layer_centre``),
and GroupSort pairs follow the view's ``pairs()`` (channels after a conv).

Cost: products whose both sides exceed ``LOCAL_DIM_LIMIT`` are not recomputed
per input; their (valid, larger) global values are used instead. For a
784-1024-1024-10 MLP this keeps the last LipLT level (10-row products) local.
The result is capped by the global certificate, so it never exceeds it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from lipspline.certificates._blas import single_threaded_blas
from lipspline.certificates._fp import INF, U, gamma, mul_up, sqrt_up
from lipspline.certificates.analysis import Analysis, analyze, mid_radius
from lipspline.certificates.spectral import proven_spectral_norms_batched
from lipspline.certificates.view import ChainView, GroupSortView, PiecewiseView

#: products with min(rows, cols) above this are not recomputed per input
LOCAL_DIM_LIMIT = 256


@dataclass
class LocalCertificate:
    """l2 Lipschitz bound of ``network.forward`` restricted to the ball B(x0, eps) in ``norm``."""

    bound: float
    bounds: dict[str, float]
    eps: float
    norm: str
    global_bound: float
    timing_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "bound": self.bound,
            "bounds": dict(self.bounds),
            "eps": self.eps,
            "ball_norm": self.norm,
            "global_bound": self.global_bound,
            "timing_ms": self.timing_ms,
        }


# ---- interval propagation ---------------------------------------------------------------------------


def _outward(lo: np.ndarray, hi: np.ndarray, err: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    lo = np.nextafter(lo - err, -INF)
    hi = np.nextafter(hi + err, INF)
    lo = np.where(np.isnan(lo), -INF, lo)
    hi = np.where(np.isnan(hi), INF, hi)
    return lo, hi


def _row_l2_upper(x: np.ndarray) -> np.ndarray:
    """Upper bound of the l2 norm of every row of ``x`` (shape (B, 1)), safe from under- and overflow.

    Squaring the raw entries would flush entries below ~1e-154 to zero and
    under-estimate the norm of a tiny vector, so every row is first divided by
    its largest magnitude (exact to a relative u per entry): the scaled sum of
    squares is then >= 1, and underflow in it costs far less than the relative
    margin applied. A row with a non-finite entry gets +inf.
    """
    n = x.shape[1]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        s = np.abs(x).max(axis=1, keepdims=True) if n else np.zeros((x.shape[0], 1))
        safe = np.where((s > 0) & np.isfinite(s), s, 1.0)
        y = x / safe
        r = np.sqrt((y * y).sum(axis=1, keepdims=True)) * (1 + (n + 8) * U)
        out = np.nextafter(r * s, INF)
        return np.where(np.isfinite(s), out, INF)


def _affine_interval(
    lo: np.ndarray, hi: np.ndarray, w: np.ndarray, w_abs: np.ndarray, w_rows: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of W h + b over the box [lo, hi] (rows of the batch)."""
    with np.errstate(invalid="ignore", over="ignore"):
        mid = 0.5 * (lo + hi)
        rad = np.nextafter((0.5 * (hi - lo)) * (1 + 4 * U) + U * np.abs(mid), INF)
        bad = ~np.isfinite(mid) | ~np.isfinite(rad)
        mid = np.where(bad, 0.0, mid)
        rad = np.where(bad, INF, rad)
        center = mid @ w.T + b
        n = w.shape[1]
        g = gamma(n + 2)
        mnorm = _row_l2_upper(mid)
        err = g * (w_rows[None, :] * mnorm + np.abs(b)[None, :]) * (1 + 4 * U) + 2.0**-1000
        r = (rad @ w_abs.T) * (1 + g) * (1 + 2 * U) + 2.0**-1000
        r = np.where(np.isnan(r), INF, r)
        return _outward(center, center, err + r)


def _eval_piecewise(view: PiecewiseView, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value of each unit's activation at p (B, n) and a bound of the evaluation error."""
    t, v, s = view.t, view.v, view.s
    n = v.shape[0]
    pc = np.where(np.isfinite(p), p, 0.0)
    j = np.searchsorted(t, pc, side="right")  # number of breakpoints <= p
    anchor = np.maximum(j - 1, 0)
    units = np.arange(n)[None, :]
    va = v[units, anchor]
    sj = s[units, j]
    dist = pc - t[anchor]
    value = va + sj * dist
    err = 32 * U * (np.abs(va) + np.abs(sj) * (np.abs(dist) + np.abs(pc) + np.abs(t).max())) + 2.0**-1000
    # at an infinite end the value is +-inf along a sloped ray (a flat ray's value is a breakpoint value,
    # which the image takes into account separately)
    with np.errstate(invalid="ignore"):
        value = np.where(np.isfinite(p), value, np.where(sj * p > 0, INF, -INF))
    return value, err


def _piecewise_image(view: PiecewiseView, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of sigma([lo, hi]) per unit: ends plus every breakpoint inside."""
    with np.errstate(invalid="ignore", over="ignore"):
        vlo, elo = _eval_piecewise(view, lo)
        vhi, ehi = _eval_piecewise(view, hi)
        margin = 8 * U * (np.abs(view.t).max() + 1.0)
        lo_w = lo - margin * (1 + np.abs(lo))
        hi_w = hi + margin * (1 + np.abs(hi))
        inside = (view.t[None, None, :] >= lo_w[..., None]) & (view.t[None, None, :] <= hi_w[..., None])
        knots_min = np.where(inside, view.v[None], INF).min(axis=2)
        knots_max = np.where(inside, view.v[None], -INF).max(axis=2)
        out_lo = np.minimum(np.minimum(vlo - elo, vhi - ehi), knots_min)
        out_hi = np.maximum(np.maximum(vlo + elo, vhi + ehi), knots_max)
        # unbounded input intervals: an unbounded ray reaches +-inf unless its slope is 0
        return _outward(out_lo, out_hi, 0.0)


def _groupsort_image(view: GroupSortView, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of GroupSort over a box: each pair gives (max, min) of its two members.

    The pairs are the view's (``GroupSortView.pairs``), not neighbouring
    entries: after a convolution the forward pass sorts pairs of *channels*,
    so unit j pairs with unit j + pixels-per-channel. max and min are monotone
    in each argument and exact in floating point, so the box maps to a box.
    """
    first, second = view.pairs()
    out_lo = np.empty_like(lo)
    out_hi = np.empty_like(hi)
    a_lo, b_lo, a_hi, b_hi = lo[:, first], lo[:, second], hi[:, first], hi[:, second]
    out_lo[:, first] = np.maximum(a_lo, b_lo)
    out_lo[:, second] = np.minimum(a_lo, b_lo)
    out_hi[:, first] = np.maximum(a_hi, b_hi)
    out_hi[:, second] = np.minimum(a_hi, b_hi)
    return out_lo, out_hi


def local_slopes(view: PiecewiseView, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope interval of each unit over the cells its pre-activation interval reaches."""
    margin = 8 * U * (np.abs(view.t).max() + 1.0)
    with np.errstate(invalid="ignore"):
        lo_w = np.where(np.isfinite(lo), lo - margin * (1 + np.abs(lo)), -INF)
        hi_w = np.where(np.isfinite(hi), hi + margin * (1 + np.abs(hi)), INF)
    j_lo = np.searchsorted(view.t, lo_w, side="left")  # first reachable cell
    j_hi = np.searchsorted(view.t, hi_w, side="right")  # last reachable cell
    cells = np.arange(view.s.shape[1])[None, None, :]
    mask = (cells >= j_lo[..., None]) & (cells <= j_hi[..., None])
    s_lo = np.where(mask, view.s_lo[None], INF).min(axis=2)
    s_hi = np.where(mask, view.s_hi[None], -INF).max(axis=2)
    return s_lo, s_hi


class _LocalData:
    """Per-network arrays the local bounds reuse (|W|, row norms), kept with the analysis."""

    def __init__(self, analysis: Analysis) -> None:
        v = analysis.view
        self.w_abs = [np.abs(w) for w in v.weights]
        self.w_rows = [np.sqrt((w * w).sum(axis=1)) * (1 + (w.shape[1] + 4) * U) for w in v.weights]
        self.row_l2_fold = self.w_rows[0]
        self.row_l1_fold = np.nextafter(self.w_abs[0].sum(axis=1) * (1 + (v.weights[0].shape[1] + 2) * U), INF)
        self.ell = [analysis.preactivation_lipschitz(k) for k in range(len(v.weights) - 1)]


def _local_data(analysis: Analysis) -> _LocalData:
    data = getattr(analysis, "_local_data", None)
    if data is None:
        data = _LocalData(analysis)
        analysis._local_data = data  # type: ignore[attr-defined]
    return data


def _first_layer_centre(v: ChainView, data: _LocalData, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enclosure of the served map's first pre-activations ``W1f (x - mean) + b1`` at the rows of ``x``.

    The served map F is defined by the view itself: ``d = x - input_mean``,
    then ``view.weights[0]`` (the first weight with the input fold already in
    it) and ``view.biases[0]``. The interval must hold F's value, so it is
    built from exactly those arrays (not from the raw weight divided by the
    input scale, a different function since the fold is ``1/scale`` rounded
    up). Roundings covered, row by row i:

    * ``d = fl(x - mean)`` has ``|d - (x - mean)| <= u |x - mean| <= 2u |d|``
      element-wise, so ``|W_i (x - mean) - W_i d| <= ||W_i||_2 2u ||d||_2``;
    * ``fl(W_i d + b_i)`` is off by at most ``gamma_{n+2} (||W_i||_2 ||d||_2 + |b_i|)``
      (any summation order);
    * the error bound itself is rounded upwards and padded by 2^-1000 (underflow).
    """
    w1 = v.weights[0]
    n = w1.shape[1]
    d = x - v.input_mean[None, :]
    center = d @ w1.T + v.biases[0]
    rows = data.w_rows[0][None, :]
    dnorm = _row_l2_upper(d)
    with np.errstate(invalid="ignore", over="ignore"):
        err = gamma(n + 2) * (rows * dnorm + np.abs(v.biases[0])[None, :]) + rows * (2 * U * dnorm)
        err = np.nextafter(err * (1 + 8 * U), INF) + 2.0**-1000
        err = np.where(np.isnan(err), INF, err)
    return _outward(center, center, err)


def preactivation_intervals(
    analysis: Analysis, x: np.ndarray, eps: float, norm: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sound intervals of every hidden pre-activation of the served map over the ball, per row of ``x``.

    Empty for a network without hidden layers (it has no pre-activation to bound).
    """
    v = analysis.view
    if not v.activations:
        return []
    data = _local_data(analysis)
    d = x.shape[1]
    eps2 = float(eps) if norm == "l2" else mul_up(float(eps), sqrt_up(d))
    lo0, hi0 = _first_layer_centre(v, data, x)
    # for y in the ball, z(y) = z(x) + W1f (y - x): row norms of W1f (l2 ball) or their l1 norms (l-inf ball)
    rows = data.row_l2_fold if norm == "l2" else data.row_l1_fold
    radius = np.nextafter(rows * float(eps) * (1 + 2 * U), INF)
    lo, hi = _outward(lo0, hi0, radius[None, :])
    out = [(lo, hi)]
    for k in range(1, len(v.weights) - 1):
        act = v.activations[k - 1]
        if act.elementwise:
            hl, hh = _piecewise_image(act, lo, hi)  # type: ignore[arg-type]
            hl0, hh0 = _piecewise_image(act, lo0, hi0)  # type: ignore[arg-type]
        else:
            hl, hh = _groupsort_image(act, lo, hi)  # type: ignore[arg-type]
            hl0, hh0 = _groupsort_image(act, lo0, hi0)  # type: ignore[arg-type]
        args = (v.weights[k], data.w_abs[k], data.w_rows[k], v.biases[k])
        lo, hi = _affine_interval(hl, hh, *args)
        lo0, hi0 = _affine_interval(hl0, hh0, *args)
        spread = np.nextafter(data.ell[k] * eps2 * (1 + 2 * U), INF)
        llo, lhi = _outward(lo0, hi0, spread[None, :])
        lo, hi = np.maximum(lo, llo), np.minimum(hi, lhi)
        out.append((lo, hi))
    return out


# ---- batched norm helpers -------------------------------------------------------------------------------


def _batched_errors_matmul(
    a: np.ndarray, ea: np.ndarray, b: np.ndarray, eb: np.ndarray | float, prod: np.ndarray
) -> np.ndarray:
    """Per-batch spectral error bound of fl(A B) with inherited errors (see spectral.matmul)."""
    k = a.shape[-1]
    fa = np.sqrt((a * a).sum(axis=(-2, -1))) * (1 + (a[0].size + 4) * U) + 2.0**-1000
    fb = np.sqrt((b * b).sum(axis=(-2, -1))) * (1 + (b[..., :, :].size + 4) * U) + 2.0**-1000
    err = gamma(k) * fa * fb + ea * fb + fa * eb + ea * eb
    return np.nextafter(err * (1 + 16 * U) + 2.0**-1000 * k * math.sqrt(max(prod[0].size, 1)), INF)


def _scale_cols_err(x: np.ndarray, ex: np.ndarray, d: np.ndarray, result: np.ndarray) -> np.ndarray:
    dmax = np.abs(d).max(axis=-1)
    fro = np.sqrt((result * result).sum(axis=(-2, -1))) * (1 + (result[0].size + 4) * U)
    return np.nextafter((ex * dmax + 2 * U * fro) * (1 + 8 * U) + 2.0**-1000 * math.sqrt(result[0].size), INF)


def _norms(x: np.ndarray, ex: np.ndarray) -> np.ndarray:
    return proven_spectral_norms_batched(x, ex)


def _scaled_norms(x: np.ndarray, ex: np.ndarray, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
    """Proven norms of ``diag(rows) X diag(cols)`` for a stack X known up to ``ex`` (either may be None)."""
    if rows is not None:
        y = rows[None, :, None] * x
        ex, x = _scale_cols_err(x, ex, rows, y), y
    if cols is not None:
        y = x * cols[None, None, :]
        ex, x = _scale_cols_err(x, ex, cols, y), y
    return _norms(x, ex)


def _mul_up_arr(*xs: np.ndarray | float) -> np.ndarray:
    out = np.asarray(1.0)
    for x in xs:
        out = np.nextafter(out * np.asarray(x, dtype=np.float64), INF)
    return out


def _add_up_arr(*xs: np.ndarray | float) -> np.ndarray:
    out = np.asarray(0.0)
    for x in xs:
        out = np.nextafter(out + np.asarray(x, dtype=np.float64), INF)
    return out


def _small(shape: tuple[int, ...]) -> bool:
    return min(shape[-2], shape[-1]) <= LOCAL_DIM_LIMIT


def _segment_local(
    analysis: Analysis, seg_index: int, slopes: list[tuple[np.ndarray, np.ndarray] | None], nb: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Local (per-neuron, LipLT, scaled LipLT or None) bounds of one segment for a batch: arrays (B,)."""
    v = analysis.view
    a, b = v.segments[seg_index]
    glob = analysis.seg_liplt[seg_index].L
    if a == b:
        n = np.full(nb, analysis.norms[a])
        return n, n, n
    S = [np.maximum(np.abs(slopes[j][0]), np.abs(slopes[j][1])) for j in range(a, b)]  # type: ignore[index]
    MR = [mid_radius(*slopes[j]) for j in range(a, b)]  # type: ignore[misc]
    zero = np.zeros(nb)
    # per-neuron, grouping B: prod_{l>a} ||W_l S_{l-1}|| * ||W_a||, local where cheap
    fac_b = [np.full(nb, analysis.norms[a])]
    for j in range(a + 1, b + 1):
        w = v.weights[j]
        if _small(w.shape):
            x = w[None] * S[j - 1 - a][:, None, :]
            fac_b.append(_norms(x, _scale_cols_err(w[None], zero, S[j - 1 - a], x)))
        else:
            fac_b.append(np.full(nb, analysis.norm(analysis._scaled(j - 1)[1])))
    per_neuron = _mul_up_arr(*fac_b)
    # LipLT with local M, R; levels whose products are all large keep their global L_k.
    # Where the global analysis searched scalings (small segments only), the scaled recursion
    # (liplt_scaled.py) runs beside it with those same T: any T is sound for any slope box.
    logt = analysis.segment_scalings(seg_index)
    if logt is not None and any(v.weights[k].shape[0] > LOCAL_DIM_LIMIT for k in range(a + 1, b + 1)):
        logt = None
    t = {j: np.exp(x) for j, x in logt.items()} if logt is not None else {}
    c = {j: 1.0 / x for j, x in t.items()}
    L: list[np.ndarray] = []
    lam: list[np.ndarray] = []
    for k in range(a, b + 1):
        wk = v.weights[k]
        if k == a:
            L.append(np.full(nb, analysis.norms[a]))
            if logt is not None:
                lam.append(_scaled_norms(wk[None], np.zeros(1), t.get(k), None))
            continue
        if wk.shape[0] > LOCAL_DIM_LIMIT:
            L.append(np.full(nb, glob[k - a]))
            continue
        x = np.broadcast_to(wk, (nb, *wk.shape))
        ex = np.zeros(nb)
        terms, scaled_terms = [], []
        for j in range(k - 1, a - 1, -1):
            m, r = MR[j - a]
            q = x * r[:, None, :]
            eq = _scale_cols_err(x, ex, r, q)
            terms.append(_mul_up_arr(_norms(q, eq), L[j - a]))
            if logt is not None:
                scaled_terms.append(_mul_up_arr(_scaled_norms(q, eq, t.get(k), c[j]), lam[j - a], 1.0 + 2.0 * U))
            xm = x * m[:, None, :]
            exm = _scale_cols_err(x, ex, m, xm)
            wj = v.weights[j]
            # one GEMM over the stacked batch, not one per input: each W_j is read from memory once
            x_new = (xm.reshape(-1, xm.shape[-1]) @ wj).reshape(nb, xm.shape[1], wj.shape[1])
            ex = _batched_errors_matmul(xm, exm, wj[None], 0.0, x_new)
            x = x_new
        terms.append(_norms(x, ex))
        L.append(np.minimum(_add_up_arr(*terms), glob[k - a]))
        if logt is not None:
            scaled_terms.append(_scaled_norms(x, ex, t.get(k), None))
            lam.append(_add_up_arr(*scaled_terms))
    return per_neuron, L[-1], (lam[-1] if logt is not None else None)


def _local_for_batch(analysis: Analysis, x: np.ndarray, eps: float, norm: str) -> dict[str, np.ndarray]:
    v = analysis.view
    nb = x.shape[0]
    intervals = preactivation_intervals(analysis, x, eps, norm)
    slopes: list[tuple[np.ndarray, np.ndarray] | None] = []
    lips: list[np.ndarray] = []
    for k, act in enumerate(v.activations):
        if act.elementwise:
            s = local_slopes(act, *intervals[k])  # type: ignore[arg-type]
            slopes.append(s)
            lips.append(np.maximum(np.abs(s[0]), np.abs(s[1])).max(axis=1) if act.n_units else np.zeros(nb))
        else:
            slopes.append(None)
            lips.append(np.ones(nb))
    spectral = _mul_up_arr(v.prefix_factor, *analysis.norms, *lips)
    per_neuron = np.full(nb, v.prefix_factor)
    liplt = np.full(nb, v.prefix_factor)
    scaled: np.ndarray | None = np.full(nb, v.prefix_factor)
    for index in range(len(v.segments)):
        pn, lt, sc = _segment_local(analysis, index, slopes, nb)
        per_neuron = _mul_up_arr(per_neuron, pn)
        liplt = _mul_up_arr(liplt, lt)
        scaled = None if sc is None or scaled is None else _mul_up_arr(scaled, sc)
    named = {"spectral_product": spectral, "per_neuron_scaled": per_neuron, "liplt": liplt}
    if scaled is not None and "liplt_scaled" in analysis.bounds:
        named["liplt_scaled"] = scaled
    # a product of scalars only (no hidden layer: no per-input slopes) comes out 0-d; one value per input
    return {name: np.broadcast_to(values, (nb,)) for name, values in named.items()}


def local_bounds(
    network: nn.Module,
    inputs: torch.Tensor | np.ndarray,
    eps: float,
    norm: Literal["l2", "linf"] = "l2",
    *,
    batch_size: int = 64,
) -> list[LocalCertificate]:
    """One :class:`LocalCertificate` per input row: the l2 Lipschitz bound of f on B(x, eps).

    Never larger than the global certificate (it is capped by it).
    """
    if norm not in ("l2", "linf"):
        raise ValueError("norm must be 'l2' or 'linf'")
    if not (eps >= 0):
        raise ValueError("eps must be non-negative")
    analysis = analyze(network)
    cert = analysis.certificate()
    x_all = np.asarray(inputs.detach().cpu() if isinstance(inputs, torch.Tensor) else inputs, dtype=np.float64)
    if x_all.ndim == 1:
        x_all = x_all[None, :]
    x_all = x_all.reshape(x_all.shape[0], -1)
    results: list[LocalCertificate] = []
    if not analysis.view.dense_input or not math.isfinite(eps):
        note = "no local refinement: " + (analysis.view.prefix_note or "infinite radius")
        for _ in range(x_all.shape[0]):
            results.append(LocalCertificate(cert.certified, dict(cert.bounds), eps, norm, cert.certified, 0.0, [note]))
        return results
    for start in range(0, x_all.shape[0], batch_size):
        x = x_all[start : start + batch_size]
        t0 = time.perf_counter()
        with single_threaded_blas():
            named = _local_for_batch(analysis, x, eps, norm)
        per_input_ms = (time.perf_counter() - t0) * 1e3 / x.shape[0]
        for i in range(x.shape[0]):
            bounds = {}
            for name, values in named.items():
                value = float(values[i])
                bounds[name] = min(value, cert.bounds.get(name, INF)) if not math.isnan(value) else cert.bounds[name]
            best = min(min(bounds.values()), cert.certified)
            results.append(LocalCertificate(best, bounds, float(eps), norm, cert.certified, per_input_ms))
    return results


#: the sound enclosures, under public names for the other bounds that reuse them (``partition.py``)
affine_interval = _affine_interval
first_layer_centre = _first_layer_centre
outward = _outward
piecewise_image = _piecewise_image
eval_piecewise = _eval_piecewise
row_l2_upper = _row_l2_upper

__all__ = [
    "LocalCertificate",
    "local_bounds",
    "preactivation_intervals",
    "local_slopes",
    "affine_interval",
    "first_layer_centre",
    "outward",
    "piecewise_image",
    "eval_piecewise",
    "row_l2_upper",
]

_ = (ChainView,)
