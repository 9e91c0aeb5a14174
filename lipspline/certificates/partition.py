"""Lipschitz bounds from a partition of the input space, sound in floating point.

Two bounds are built here, both as the maximum over the pieces of a partition
of a proven bound of the Jacobian norm on each piece:

* ``partition_global`` (global, networks with one or two input features;
  ``partition_1d`` for one): the pieces cover the whole input space, so it is a
  *global* bound and joins the others in ``certified`` (``global_bounds.py``,
  name ``partition``). The bounds there treat every neuron's slope as free in
  its whole slope interval; here each piece knows which cells of each spline it
  can reach, and for trained low-dimensional nets the result is within a
  percent of the true constant (1-D: of ``exact_1d``'s).
* ``domain_bound`` (a box ``[lo, hi]``, up to ``DOMAIN_MAX_DIM`` features): the
  pieces are sub-boxes of the given box; the bound holds for pairs of points
  *inside the box only* (``DomainCertificate`` states the box): it is reported
  beside the global certificate, never in its place (the service's radii and
  output tolerances are about balls that may leave the data's box).

Why each piece's bound holds. The map is ``F(x) = W_L s(... s(W_1 (x - m) +
b_1) ...) + b_L`` (``view.py``; real arithmetic on the float64 arrays). On a
piece P, each pre-activation z_i ranges over an interval Z_i proven by
interval arithmetic with every rounding covered (the enclosures of
``local_bounds.py``: ``_first_layer_centre``, ``_affine_interval``,
``_piecewise_image``), so the neuron uses only the cells of its spline that
meet Z_i (found with the same outward margin as ``local_slopes``), and its
slope is in the set S_i of those cells' slopes. F is piecewise linear, so for
x, y in a convex piece ``||F(x) - F(y)|| <= sup ||J|| ||x - y||`` with J =
``W_L D_{L-1} ... D_1 W_1`` and ``D = diag(d)``, d_i in S_i. J is affine in
each d_i separately and the spectral norm is convex, so the supremum over the
box ``prod_i [min S_i, max S_i]`` is attained at a vertex: only the neurons
whose S_i holds two different slopes ("ambiguous": usually those whose
pre-activation meets a knot inside P) need both ends; every other neuron has
one float slope ``d^_i`` with its exact slope within ``Omega_i`` (the
outward widening of ``view.py``). For one vertex, with ``G^`` the float64
product of the chain at ``d^``, ``A_0 = |W_L||D^|...|W_1|`` and ``A_Om =
|W_L|(|D^| + Omega)...|W_1|`` (exact, non-negative):

    |J(d) - G^| <= |J(d) - J(d^)| + |J(d^) - G^| <= (A_Om - A_0) + gamma_m A_0,

(the first term expands the product of ``D^ + Delta``, every term with a
Delta bounded by its absolute version; the second is Higham's bound for a
chain of products, m = sum of (inner dimension + 1) over the products). The
float64 values of A_Om and A_0 are within gamma_m relative (non-negative
entries), hence ``E := fl(A_Om)(1 + 2 gamma_m) - fl(A_0)(1 - 2 gamma_m) >=
|J(d) - G^|`` entry-wise (evaluated with upward rounding), and ``||J(d)|| <=
||G^|| + ||E||_F``, every norm an upper bound (a vector's l2 norm with its
rounding margin; a matrix's by ``proven_spectral_norms_batched``). A piece
with more than ``MAX_AMBIGUOUS`` ambiguous neurons keeps the interval-Jacobian
bound (below) until splitting makes it less ambiguous.

Which pieces. ``Pieces`` are sets ``{b + s q : b in B, q in Q, s in [0, len]}``
for boxes B, Q: a box of the input is ``len = 0``; the exterior of a box ``c +-
h`` is covered by ``exterior_rays``: every x outside has ``t = max_j |x_j -
c_j| / h_j >= 1`` and ``x = c + t v`` with ``v = (x - c) / t`` on a face of
``+-h``, i.e. ``b = c + (1 + s0) v``, ``q = v``, ``s = t - 1 - s0`` (base and
direction enclosed as independent boxes: a superset, still sound; the base box
rounded outwards, ``_ray_base``). Over a piece, each pre-activation is ``z(b) +
int_0^s z'``: its value over B is enclosed as above, its derivative by the
interval chain rule (``W_1 q`` over Q; ``(s(z))' in [min S, max S] z'``, which
also covers the a.e. derivative 0 where z sits at a knot; then ``W z'``), so
the range is ``value + [0, len] z'`` (``_reach``): far out along a ray every
pre-activation moves away from all knots and keeps one cell. The 1-D pieces
start at the breakpoints a float forward pass finds (``breakpoints_1d``, like
``exact_1d``: a heuristic, which only decides how tight the result is); the
2-D ones at a box of 8 input standard deviations around the input mean and the
rays outside it. Branch and bound (``partition_bound``): a piece whose bound is
above 1 % (1-D: 0.1 %) over the largest float Jacobian norm seen so far is
halved (boxes along their longest side; rays first radially, ``s0 -> 2 s0 +
1``, then along their face box) at a float midpoint, so the halves cover it
exactly; it stops when no piece is left to split or a piece count (not a clock:
the same network gets the same certificate on a loaded machine) or a safety
time limit is reached, and returns the max over the current pieces, which
cover the whole space: stopping early makes it looser, never unsound. Each
piece's bound is the interval-Jacobian bound (``interval_jacobian_bounds``:
``J``'s enclosure over the slope box by interval arithmetic, any number of
ambiguous neurons) and, where that one is above the splitting threshold, the
smaller of it and the vertex bound (at most ``MAX_AMBIGUOUS`` ambiguous neurons).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lipspline.certificates._fp import INF, U, gamma, mul_up
from lipspline.certificates.analysis import EXTRA_BOUNDS, Analysis, analyze
from lipspline.certificates.local_bounds import (
    affine_interval,
    eval_piecewise,
    first_layer_centre,
    outward,
    piecewise_image,
    row_l2_upper,
)
from lipspline.certificates.spectral import proven_spectral_norms_batched
from lipspline.certificates.view import ChainView, PiecewiseView

#: a piece with more ambiguous neurons than this is split (boxes) or keeps its interval bound (1-D)
MAX_AMBIGUOUS = 8
#: the 1-D bound is skipped when the forward pass finds more breakpoints than this
MAX_PIECES_1D = 200_000
#: sub-boxes of a domain box: at most this many in all (the rest keep the interval bound)
MAX_BOXES = 20_000
#: the domain search stops splitting after this many seconds (the bound stays sound, only looser)
DOMAIN_TIME_S = 2.0
#: the domain bound partitions boxes of at most this many input features (above: the global bound)
DOMAIN_MAX_DIM = 16


# ---- slope sets ------------------------------------------------------------------------------------


@dataclass
class SlopeSets:
    """Per piece and neuron of one layer: the float slope, its exact-slope radius, ambiguity and ends."""

    s_hat: np.ndarray  # (B, n) float slope used for non-ambiguous neurons
    omega: np.ndarray  # (B, n) |exact slope - s_hat| <= omega (0 for ambiguous: their ends are exact)
    amb: np.ndarray  # (B, n) bool: two different slopes reachable
    lo: np.ndarray  # (B, n) min over reachable cells of the (outward) slope
    hi: np.ndarray  # (B, n) max ...


def slope_sets(view: PiecewiseView, lo: np.ndarray, hi: np.ndarray) -> SlopeSets:
    """The slopes each unit can take while its pre-activation stays in ``[lo, hi]`` (same margin as local_slopes)."""
    margin = 8 * U * (np.abs(view.t).max() + 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        lo_w = np.where(np.isfinite(lo), lo - margin * (1 + np.abs(lo)), -INF)
        hi_w = np.where(np.isfinite(hi), hi + margin * (1 + np.abs(hi)), INF)
        lo_w = np.where(np.isnan(lo), -INF, lo_w)
        hi_w = np.where(np.isnan(hi), INF, hi_w)
    j_lo = np.searchsorted(view.t, lo_w, side="left")
    j_hi = np.searchsorted(view.t, hi_w, side="right")
    cells = np.arange(view.s.shape[1])[None, None, :]
    mask = (cells >= j_lo[..., None]) & (cells <= j_hi[..., None])
    s_lo = np.where(mask, view.s_lo[None], INF).min(axis=2)
    s_hi = np.where(mask, view.s_hi[None], -INF).max(axis=2)
    f_lo = np.where(mask, view.s[None], INF).min(axis=2)
    f_hi = np.where(mask, view.s[None], -INF).max(axis=2)
    amb = f_lo != f_hi
    s_hat = np.where(amb, 0.0, f_lo)
    with np.errstate(invalid="ignore"):
        omega = np.nextafter(np.maximum(s_hi - s_hat, s_hat - s_lo), INF)
    omega = np.where(amb, 0.0, omega)
    return SlopeSets(s_hat, omega, amb, s_lo, s_hi)


# ---- the vertex bound of one batch of pieces -----------------------------------------------------------


def _vector_norm_up(x: np.ndarray) -> np.ndarray:
    """Upper bound of the l2 norm of each row of ``x`` (V, n)."""
    return row_l2_upper(x)[:, 0]


def vertex_bounds(view: ChainView, sets: list[SlopeSets], max_ambiguous: int = MAX_AMBIGUOUS) -> np.ndarray:
    """Per piece: a proven bound of sup ||J|| over its slope box (module docstring); inf where too ambiguous."""
    nb = sets[0].s_hat.shape[0]
    amb = np.concatenate([s.amb for s in sets], axis=1)
    k = amb.sum(axis=1)
    ok = k <= max_ambiguous
    out = np.full(nb, INF)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return out
    counts = np.left_shift(1, k[idx])
    rep = np.repeat(idx, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    vid = np.arange(rep.size) - np.repeat(offsets, counts)
    rank = np.cumsum(amb, axis=1) - 1  # rank of each ambiguous neuron within its piece
    ws = view.weights
    d = ws[0].shape[1]
    g = np.broadcast_to(ws[0], (rep.size, *ws[0].shape)).copy()
    a0 = np.broadcast_to(np.abs(ws[0]), g.shape).copy()
    aom = a0.copy()
    start = 0
    m = 0
    for layer, s in enumerate(sets):
        n = s.s_hat.shape[1]
        r = rank[rep, start : start + n]
        bit = (vid[:, None] >> np.maximum(r, 0)) & 1
        a = s.amb[rep]
        dv = np.where(a, np.where(bit == 1, s.hi[rep], s.lo[rep]), s.s_hat[rep])
        om = s.omega[rep]
        start += n
        g = dv[:, :, None] * g
        ad = np.abs(dv)
        a0 = ad[:, :, None] * a0
        aom = (ad + om)[:, :, None] * aom
        w = ws[layer + 1]
        g = np.matmul(w, g)
        wa = np.abs(w)
        a0 = np.matmul(wa, a0)
        aom = np.matmul(wa, aom)
        m += w.shape[1] + 2
    gm = gamma(m + 2)
    with np.errstate(invalid="ignore", over="ignore"):
        x_up = np.nextafter(aom * (1 + 2 * gm) * (1 + 4 * U), INF)
        y_dn = np.nextafter(a0 * (1 - 2 * gm) * (1 - 4 * U), -INF)
        e = np.nextafter(np.maximum(x_up - y_dn, 0.0) * (1 + 4 * U), INF)
        e_norm = _vector_norm_up(e.reshape(rep.size, -1))
        if d == 1 or g.shape[1] == 1:
            g_norm = _vector_norm_up(g.reshape(rep.size, -1))
        else:
            g_norm = proven_spectral_norms_batched(g)
        total = np.nextafter(g_norm + e_norm, INF)
    total = np.where(np.isnan(total), INF, total)
    best = np.full(nb, -INF)
    np.maximum.at(best, rep, total)
    out[idx] = best[idx]
    return out


# ---- 1-D: the pieces of the real line ------------------------------------------------------------------


def _float_preactivations(view: ChainView, x: np.ndarray) -> list[np.ndarray]:
    """Float64 pre-activations (P, n) of every hidden layer at points x (P,) or (P, d): a heuristic, never a proof."""
    x = x[:, None] if x.ndim == 1 else x
    h = (x - view.input_mean[None, :]) @ view.weights[0].T + view.biases[0]
    out = [h]
    for k, act in enumerate(view.activations[:-1]):
        value, _ = eval_piecewise(act, h)  # type: ignore[arg-type]
        h = value @ view.weights[k + 1].T + view.biases[k + 1]
        out.append(h)
    return out


def breakpoints_1d(view: ChainView, limit: int = MAX_PIECES_1D) -> np.ndarray | None:
    """Sorted points where some pre-activation meets a knot (float64 estimate), or None past ``limit``.

    Layer by layer: between consecutive points found so far, and beyond the outer ones, every
    pre-activation of the next layer is affine (up to rounding), so its knot crossings are
    solved in closed form, as ``exact_1d`` does on the served map.
    """
    centre = float(view.input_mean[0])
    xs = np.array([centre - 1.0, centre + 1.0])
    for depth, act in enumerate(view.activations):
        probe = np.concatenate([[xs[0] - 2.0, xs[0] - 1.0], xs, [xs[-1] + 1.0, xs[-1] + 2.0]])
        with np.errstate(all="ignore"):
            z = _float_preactivations(view, probe)[depth]  # (P, n)
            t = act.t  # type: ignore[union-attr]
            za, zb = z[:-1, :, None], z[1:, :, None]
            hit = (np.minimum(za, zb) < t) & (np.maximum(za, zb) > t)
            frac = (t - za) / (zb - za)
            xa, xb = probe[:-1, None, None], probe[1:, None, None]
            found = [xs, np.broadcast_to(xa + frac * (xb - xa), hit.shape)[hit]]
            for end, (i0, i1) in (("left", (0, 1)), ("right", (-2, -1))):
                slope = (z[i1] - z[i0]) / (probe[i1] - probe[i0])  # (n,)
                anchor = probe[0] if end == "left" else probe[-1]
                zanchor = z[0] if end == "left" else z[-1]
                cross = anchor + (t[None, :] - zanchor[:, None]) / slope[:, None]
                keep = np.isfinite(cross) & ((cross < anchor) if end == "left" else (cross > anchor))
                found.append(cross[keep])
        xs = np.unique(np.concatenate(found))
        xs = xs[np.isfinite(xs)]
        if xs.size > limit:
            return None
        if xs.size < 2:
            xs = np.array([xs[0] - 1.0, xs[0] + 1.0]) if xs.size else np.array([centre - 1.0, centre + 1.0])
    return xs


def _interval_mul(alo: np.ndarray, ahi: np.ndarray, blo: np.ndarray, bhi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward enclosure of {a b : a in [alo, ahi], b in [blo, bhi]} (finite ends; 0 * inf read as 0)."""
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.stack([alo * blo, alo * bhi, ahi * blo, ahi * bhi])
        p = np.where(np.isnan(p), 0.0, p)
        return np.nextafter(p.min(axis=0), -INF), np.nextafter(p.max(axis=0), INF)


def _reach(c_lo: np.ndarray, c_hi: np.ndarray, a_lo: np.ndarray, a_hi: np.ndarray, length: np.ndarray):
    """Enclosure of z(p) + int_0^s z' over s in [0, length]: the value range along the piece."""
    ln = length[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        down = np.where(a_lo < 0, np.nextafter(ln * a_lo, -INF), 0.0)
        up = np.where(a_hi > 0, np.nextafter(ln * a_hi, INF), 0.0)
        down = np.where(np.isnan(down), -INF, down)
        up = np.where(np.isnan(up), INF, up)
        return np.nextafter(c_lo + down, -INF), np.nextafter(c_hi + up, INF)


def _local_data_for(view: ChainView) -> Any:
    """|W| and row norms of the view (the part of ``local_bounds._LocalData`` the enclosures read)."""

    class _Data:
        pass

    data = _Data()
    data.w_abs = [np.abs(w) for w in view.weights]  # type: ignore[attr-defined]
    data.w_rows = [np.sqrt((w * w).sum(axis=1)) * (1 + (w.shape[1] + 4) * U) for w in view.weights]  # type: ignore[attr-defined]
    return data


# ---- a box of the input: the domain bound ------------------------------------------------------------


@dataclass
class DomainCertificate:
    """An l2 Lipschitz bound of the served map valid for pairs of points in the box ``[lo, hi]`` only.

    ``certified`` = min(``global_certified``, the partition bound on the box): never above
    the global certificate, which holds everywhere. Serving uses the global one; this is
    what the data's region actually needs (a radius from it holds only for balls inside the box).
    """

    lo: list[float]
    hi: list[float]
    certified: float
    partition: float
    global_certified: float
    boxes: int
    timing_ms: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        clean = lambda x: float(x) if math.isfinite(x) else None  # noqa: E731
        return {
            "domain": {"lo": list(self.lo), "hi": list(self.hi), "norm": "box"},
            "certified": clean(self.certified),
            "partition": clean(self.partition),
            "global_certified": clean(self.global_certified),
            "boxes": self.boxes,
            "timing_ms": round(self.timing_ms, 3),
            "notes": list(self.notes),
        }


def interval_jacobian_bounds(view: ChainView, sets: list[SlopeSets]) -> np.ndarray:
    """Per piece: ||J|| <= || max(|G_lo|, |G_hi|) ||_F for the interval enclosure G of J over the slope box.

    ``G = W_1`` (exact), then ``W_{k+1} ([lo_k, hi_k] G)`` by interval arithmetic with outward
    rounding (``_interval_mul``, then ``_affine_interval`` per input column): sound for any
    number of ambiguous neurons, looser than the vertex bound where that one applies.
    """
    w0 = view.weights[0]
    nb = sets[0].lo.shape[0]
    g_lo = np.broadcast_to(w0.T[:, None, :], (w0.shape[1], nb, w0.shape[0]))  # (d, B, n)
    g_hi = g_lo
    data = _local_data_for(view)
    for k, s in enumerate(sets):
        dl, dh = _interval_mul(s.lo[None], s.hi[None], g_lo, g_hi)
        w = view.weights[k + 1]
        zero = np.zeros(w.shape[0])
        wa, rows = data.w_abs[k + 1], data.w_rows[k + 1]
        pairs = [affine_interval(dl[c], dh[c], w, wa, rows, zero) for c in range(dl.shape[0])]
        g_lo = np.stack([pl for pl, _ in pairs])
        g_hi = np.stack([ph for _, ph in pairs])
    mag = np.maximum(np.abs(g_lo), np.abs(g_hi)).transpose(1, 0, 2).reshape(nb, -1)
    out = _vector_norm_up(mag)
    return np.where(np.isnan(out), INF, out)


def _float_jacobian_norms(view: ChainView, x: np.ndarray) -> np.ndarray:
    """||J(x)|| in float64 at points x (P, d): a search heuristic (the target of the splitting)."""
    zs = _float_preactivations(view, x)
    g = np.broadcast_to(view.weights[0], (x.shape[0], *view.weights[0].shape))
    for k, (act, z) in enumerate(zip(view.activations, zs, strict=True)):
        cell = np.searchsorted(act.t, z, side="right")  # type: ignore[union-attr]
        slope = act.s[np.arange(act.n_units)[None, :], cell]  # type: ignore[union-attr]
        g = np.matmul(view.weights[k + 1], slope[:, :, None] * g)
    return np.linalg.norm(g, ord=2, axis=(1, 2))


@dataclass
class Pieces:
    """Pieces ``{b + s q : b in [base_lo, base_hi], q in [dir_lo, dir_hi], s in [0, length]}`` (rows).

    A box is a piece with ``length`` 0 and ``ray`` False (split along its base box). A piece
    with ``ray`` True is part of the exterior of a box ``c +- h`` (``exterior_rays``): the
    points ``c + (1 + s) v``, v in the face box ``[dir_lo, dir_hi]``, s in ``[s0, s0 + length]``,
    its base box being the outward enclosure of ``c + (1 + s0) [dir_lo, dir_hi]``; it is split
    radially while it reaches infinity (``s0`` below ``RADIAL_LIMIT``), else along its face box.
    """

    base_lo: np.ndarray
    base_hi: np.ndarray
    dir_lo: np.ndarray
    dir_hi: np.ndarray
    length: np.ndarray
    ray: np.ndarray
    s0: np.ndarray

    def __len__(self) -> int:
        return self.base_lo.shape[0]

    def take(self, index: np.ndarray) -> Pieces:
        return Pieces(*(getattr(self, f)[index] for f in _PIECE_FIELDS))

    @staticmethod
    def concat(parts: list[Pieces]) -> Pieces:
        return Pieces(*(np.concatenate([getattr(p, f) for p in parts]) for f in _PIECE_FIELDS))


_PIECE_FIELDS = ("base_lo", "base_hi", "dir_lo", "dir_hi", "length", "ray", "s0")
#: exterior pieces reaching infinity are split radially (s0 -> 2 s0 + 1) until s0 passes this
RADIAL_LIMIT = 64.0


def boxes(lo: np.ndarray, hi: np.ndarray) -> Pieces:
    """Boxes ``[lo, hi]`` (rows) as pieces of length 0."""
    n, d = lo.shape
    zero = np.zeros((n, d))
    return Pieces(lo, hi, zero, zero, np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n))


def _ray_base(centre: np.ndarray, q_lo: np.ndarray, q_hi: np.ndarray, s0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward enclosure of ``c + (1 + s0) [q_lo, q_hi]`` (rows).

    ``fl(1 + s0)`` is within half an ulp of ``1 + s0``, so its two float neighbours bracket it; the
    product with the face box is enclosed by ``_interval_mul`` (outward) and ``c`` added outwards.
    """
    f = 1.0 + s0[:, None]
    lo, hi = _interval_mul(np.nextafter(f, -INF), np.nextafter(f, INF), q_lo, q_hi)
    return np.nextafter(lo + centre, -INF), np.nextafter(hi + centre, INF)


def piece_sets(view: ChainView, data: Any, pieces: Pieces) -> list[SlopeSets]:
    """Slope sets of every hidden layer over each piece (module docstring: value and derivative enclosures).

    The value of a pre-activation over the base box is enclosed as ``z(c) +- |W_1| h`` (first
    layer; ``c = fl((lo + hi) / 2)``, ``h`` rounded up to cover both ends), then by
    ``_piecewise_image``/``_affine_interval``; its derivative along the piece starts as
    ``W_1 q`` over the direction box (centre-radius enclosure, no bias), then
    ``[min S, max S] z'`` and ``W z'`` by interval arithmetic; the range over the piece is
    ``value + [0, length] z'`` (``_reach``).
    """
    centre = 0.5 * (pieces.base_lo + pieces.base_hi)
    half = np.nextafter(np.maximum(pieces.base_hi - centre, centre - pieces.base_lo) * (1 + 2 * U), INF)
    d = centre.shape[1]
    w0a = data.w_abs[0]
    c_lo, c_hi = first_layer_centre(view, data, centre)
    rad = np.nextafter((half @ w0a.T) * (1 + gamma(d + 2)) * (1 + 2 * U), INF)
    c_lo, c_hi = outward(c_lo, c_hi, rad)
    moving = pieces.length > 0
    length = np.where(moving, pieces.length, 0.0)
    zero0 = np.zeros(view.weights[0].shape[0])
    a_lo, a_hi = affine_interval(pieces.dir_lo, pieces.dir_hi, view.weights[0], w0a, data.w_rows[0], zero0)
    sets = []
    for k, act in enumerate(view.activations):
        z_lo, z_hi = _reach(c_lo, c_hi, a_lo, a_hi, length)
        s = slope_sets(act, z_lo, z_hi)  # type: ignore[arg-type]
        sets.append(s)
        if k + 1 < len(view.activations):
            w = view.weights[k + 1]
            wa, rows = data.w_abs[k + 1], data.w_rows[k + 1]
            hl, hh = piecewise_image(act, c_lo, c_hi)  # type: ignore[arg-type]
            c_lo, c_hi = affine_interval(hl, hh, w, wa, rows, view.biases[k + 1])
            dl, dh = _interval_mul(s.lo, s.hi, a_lo, a_hi)
            a_lo, a_hi = affine_interval(dl, dh, w, wa, rows, np.zeros(w.shape[0]))
    return sets


def _split(pieces: Pieces, span: np.ndarray, centre: np.ndarray | None) -> Pieces:
    """Halve each piece (boxes along their longest side; exterior pieces radially, then along their face box).

    A side is cut at ``m = fl((a + b) / 2)`` into ``[a, m]`` and ``[m, b]``: float ends, so the
    two halves cover the piece exactly whatever the rounding of m. A radial cut of ``s >= s0``
    makes the segment ``[s0, s1]`` (its length rounded up past ``s1 - s0``) and the ray
    ``s >= s1`` with ``s1 = fl(2 s0 + 1)``; base boxes are recomputed by ``_ray_base``.
    """
    radial = pieces.ray & np.isinf(pieces.length) & (pieces.s0 < RADIAL_LIMIT)
    parts = []
    if radial.any():
        r = pieces.take(np.flatnonzero(radial))
        s1 = 2.0 * r.s0 + 1.0
        seg_len = np.nextafter(np.nextafter((s1 - r.s0) * (1 + 2 * U), INF), INF)
        segment = Pieces(r.base_lo, r.base_hi, r.dir_lo, r.dir_hi, seg_len, r.ray, r.s0)
        b_lo, b_hi = _ray_base(centre, r.dir_lo, r.dir_hi, s1)  # type: ignore[arg-type]
        parts += [segment, Pieces(b_lo, b_hi, r.dir_lo, r.dir_hi, r.length, r.ray, s1)]
    pieces = pieces.take(np.flatnonzero(~radial))
    if len(pieces):
        ray = pieces.ray
        lo = np.where(ray[:, None], pieces.dir_lo, pieces.base_lo)
        hi = np.where(ray[:, None], pieces.dir_hi, pieces.base_hi)
        side = np.argmax((hi - lo) / span[None, :], axis=1)
        rows = np.arange(len(pieces))
        mid = 0.5 * (lo[rows, side] + hi[rows, side])
        left, right = pieces.take(rows), pieces.take(rows)
        for kind, use in (("base", ~ray), ("dir", ray)):
            arr = getattr(left, f"{kind}_hi").copy()
            arr[rows[use], side[use]] = mid[use]
            setattr(left, f"{kind}_hi", arr)
            arr = getattr(right, f"{kind}_lo").copy()
            arr[rows[use], side[use]] = mid[use]
            setattr(right, f"{kind}_lo", arr)
        for part in (left, right):
            if ray.any():
                b_lo, b_hi = _ray_base(centre, part.dir_lo[ray], part.dir_hi[ray], part.s0[ray])  # type: ignore[arg-type]
                part.base_lo = part.base_lo.copy()
                part.base_hi = part.base_hi.copy()
                part.base_lo[ray], part.base_hi[ray] = b_lo, b_hi
        parts += [left, right]
    return Pieces.concat(parts)


def _splittable(pieces: Pieces) -> np.ndarray:
    """Pieces ``_split`` makes smaller: rays still split radially, or a side of positive width."""
    lo = np.where(pieces.ray[:, None], pieces.dir_lo, pieces.base_lo)
    hi = np.where(pieces.ray[:, None], pieces.dir_hi, pieces.base_hi)
    radial = pieces.ray & np.isinf(pieces.length) & (pieces.s0 < RADIAL_LIMIT)
    return radial | np.any(hi > lo, axis=1)


def partition_bound(
    view: ChainView,
    pieces: Pieces,
    *,
    max_pieces: int = MAX_BOXES,
    time_s: float = DOMAIN_TIME_S,
    tolerance: float = 0.01,
    probes: np.ndarray | None = None,
    centre: np.ndarray | None = None,
) -> tuple[float, int]:
    """Branch and bound: the max over a partition of proven per-piece bounds of ||J||.

    Each piece gets the interval-Jacobian bound over its slope sets and, where that is above
    the splitting threshold, the smaller of it and the vertex bound (both sound). The pieces
    whose bound exceeds (1 + ``tolerance``) times the largest float Jacobian norm seen so far
    (at piece centres and ``probes``: a lower estimate that only steers the splitting) are
    halved (``_split``), until none is left or the piece or time budget is spent. Every point
    of the union of the initial pieces lies in one final piece, so the max over the final
    pieces bounds ||J|| there. Returns (bound, pieces evaluated); inf if a piece has no bound.
    """
    data = _local_data_for(view)
    t_end = time.perf_counter() + time_s
    ext = np.concatenate([pieces.base_lo, pieces.base_hi, pieces.dir_lo, pieces.dir_hi])
    span = np.maximum(ext.max(axis=0) - ext.min(axis=0), 1e-300)
    settled = 0.0
    target = 0.0
    if probes is not None and probes.size:
        with np.errstate(all="ignore"):
            target = float(np.nanmax(_float_jacobian_norms(view, probes)))
    used = 0
    per_piece = 0.0  # seconds per piece of the last round: a round predicted to end past the budget is not run
    while True:
        used += len(pieces)
        t_round = time.perf_counter()
        sets = piece_sets(view, data, pieces)
        with np.errstate(all="ignore"):
            centres = _float_jacobian_norms(view, 0.5 * (pieces.base_lo + pieces.base_hi))
        target = max(target, float(np.nanmax(centres)) if centres.size else 0.0)
        bounds = interval_jacobian_bounds(view, sets)
        # the vertex bound (the costly one) only where the interval bound is not already good enough
        open_ = np.flatnonzero(bounds > target * (1 + tolerance))
        if open_.size:
            sub = [SlopeSets(s.s_hat[open_], s.omega[open_], s.amb[open_], s.lo[open_], s.hi[open_]) for s in sets]
            bounds[open_] = np.minimum(bounds[open_], vertex_bounds(view, sub))
        split = (bounds > target * (1 + tolerance)) & _splittable(pieces)
        now = time.perf_counter()
        per_piece = (now - t_round) / max(len(pieces), 1)
        n_next = 2 * int(split.sum())
        if not split.any() or used + n_next > max_pieces or now + per_piece * n_next > t_end:
            return max(settled, float(bounds.max())), used
        settled = max(settled, float(bounds[~split].max()) if (~split).any() else 0.0)
        pieces = _split(pieces.take(np.flatnonzero(split)), span, centre)


def partition_1d(
    view: ChainView, *, max_pieces: int = MAX_PIECES_1D, time_s: float = DOMAIN_TIME_S, tolerance: float = 0.001
) -> tuple[float | None, str]:
    """Global bound of a one-input chain: pieces between the breakpoints and the two rays beyond.

    The bounded pieces ``[x_i, x_{i+1}]`` between ``c - h`` and ``c + h`` (the breakpoints'
    midpoint c, half their span plus 1, both ends rounded outwards) and the ``exterior_rays``
    beyond ``c +- h`` cover the real line; ``partition_bound`` refines them (rays radially).
    Returns (bound, how) or (None, why not).
    """
    if view.weights[0].shape[1] != 1 or not view.dense_input:
        return None, "needs a dense chain with one input feature"
    if not view.activations or not view.elementwise_only:
        return None, "needs element-wise activations (the affine case is already exact)"
    with np.errstate(all="ignore"):
        xs = breakpoints_1d(view, max_pieces)
    if xs is None:
        return None, f"more than {max_pieces} breakpoints"
    centre = np.array([0.5 * (xs[0] + xs[-1])])
    half = np.array([np.nextafter(0.5 * (xs[-1] - xs[0]) + 1.0, INF)])
    ends = np.concatenate([np.nextafter(centre - half, -INF), xs, np.nextafter(centre + half, INF)])
    inner = boxes(ends[:-1, None], ends[1:, None])
    probes = np.concatenate([centre - 2 * half, centre + 2 * half, centre - 16 * half, centre + 16 * half])[:, None]
    value, used = partition_bound(
        view, Pieces.concat([inner, exterior_rays(centre, half)]), max_pieces=max_pieces, time_s=time_s,
        tolerance=tolerance, probes=probes, centre=centre,
    )
    if not math.isfinite(value):
        return None, "a piece could not be bounded"
    return mul_up(view.prefix_factor, value), f"{used} pieces"


def exterior_rays(centre: np.ndarray, half: np.ndarray) -> Pieces:
    """Pieces covering everything outside the box ``centre +- half`` (d >= 1).

    A point x outside has ``t = max_j |x_j - c_j| / h_j >= 1``; with ``v = (x - c) / t`` on the
    box's boundary, ``x = c + t v = (c + v) + (t - 1) v``: base ``c + v``, direction ``v``,
    ``s = t - 1 >= 0``. One piece per face (``v_j = +-h_j``, the other coordinates in
    ``[-h, h]``); bases and directions are enclosed as independent boxes (a superset of the
    true piece: still sound), the base boxes rounded outwards (``_ray_base``).
    """
    d = centre.size
    q_lo, q_hi = [], []
    for j in range(d):
        for sign in (-1.0, 1.0):
            lo, hi = -half.copy(), half.copy()
            lo[j] = hi[j] = sign * half[j]
            q_lo.append(lo)
            q_hi.append(hi)
    q_lo_a, q_hi_a = np.array(q_lo), np.array(q_hi)
    n = q_lo_a.shape[0]
    s0 = np.zeros(n)
    b_lo, b_hi = _ray_base(centre, q_lo_a, q_hi_a, s0)
    return Pieces(b_lo, b_hi, q_lo_a, q_hi_a, np.full(n, INF), np.ones(n, dtype=bool), s0)


def partition_global(
    view: ChainView,
    *,
    max_dim: int = 2,
    half_width: float = 8.0,
    max_pieces: int = MAX_BOXES,
    time_s: float = DOMAIN_TIME_S,
    tolerance: float = 0.01,
) -> tuple[float | None, str]:
    """Global bound of a chain with at most ``max_dim`` inputs: a box around the data's centre and rays outside.

    The box is ``input_mean +- half_width * input_scale`` (standardised units), split by
    ``partition_bound`` together with the ``exterior_rays`` (their face boxes are split too).
    One input: ``partition_1d``.
    """
    d = view.weights[0].shape[1]
    if d > max_dim or not view.dense_input:
        return None, f"input dimension {d} > {max_dim}" if d > max_dim else "needs a dense chain"
    if not view.activations or not view.elementwise_only:
        return None, "needs element-wise activations"
    if d == 1:
        return partition_1d(view, max_pieces=max(max_pieces, MAX_PIECES_1D // 4), time_s=time_s)
    half = np.nextafter(half_width * np.abs(view.input_scale), INF)
    if not np.all(np.isfinite(half)) or not np.all(half > 0):
        return None, "input scale not finite and positive"
    centre = view.input_mean.astype(np.float64)
    inner = boxes(np.nextafter(centre - half, -INF)[None], np.nextafter(centre + half, INF)[None])
    probes = centre[None] + half[None] * np.random.default_rng(0).uniform(-1, 1, (256, d))
    value, used = partition_bound(
        view, Pieces.concat([inner, exterior_rays(centre, half)]), max_pieces=max_pieces, time_s=time_s,
        tolerance=tolerance, probes=probes, centre=centre,
    )
    if not math.isfinite(value):
        return None, f"a piece could not be bounded within the budget ({used} pieces)"
    return mul_up(view.prefix_factor, value), f"{used} pieces"


def box_partition_bound(
    view: ChainView, lo: np.ndarray, hi: np.ndarray, *, max_boxes: int = MAX_BOXES, time_s: float = DOMAIN_TIME_S,
    tolerance: float = 0.01,
) -> tuple[float, int]:
    """``partition_bound`` over the box ``[lo, hi]`` (a bound for pairs of points inside it only)."""
    lo = np.asarray(lo, dtype=np.float64)[None, :]
    hi = np.asarray(hi, dtype=np.float64)[None, :]
    return partition_bound(view, boxes(lo, hi), max_pieces=max_boxes, time_s=time_s, tolerance=tolerance)


def domain_bound(
    network: Any, lo: np.ndarray, hi: np.ndarray, *, time_s: float = DOMAIN_TIME_S, max_dim: int = DOMAIN_MAX_DIM
) -> DomainCertificate:
    """An l2 Lipschitz bound of ``network``'s served map for pairs of points in the box ``[lo, hi]``.

    The box is convex, so for x, y in it ``||F(x) - F(y)|| <= sup_box ||J|| ||x - y||`` and
    the partition bound of the box (``box_partition_bound``) is such a constant; the result
    is its minimum with the global certificate (valid everywhere, so on the box too). It says
    nothing about points outside the box: a radius from it holds only for balls inside it.
    """
    t0 = time.perf_counter()
    analysis = analyze(network)
    glob = analysis.certificate().certified
    view = analysis.view
    lo_a = np.asarray(lo, dtype=np.float64).reshape(-1)
    hi_a = np.asarray(hi, dtype=np.float64).reshape(-1)
    notes: list[str] = []
    value, used = INF, 0
    d = view.weights[0].shape[1]
    if lo_a.shape != (d,) or hi_a.shape != (d,) or not np.all(lo_a <= hi_a) or not np.all(np.isfinite(lo_a + hi_a)):
        raise ValueError(f"the domain must be a finite box [lo, hi] with lo <= hi in {d} dimensions")
    if not (view.dense_input and view.elementwise_only and view.activations):
        notes.append("not partitioned (conv prefix, GroupSort or no hidden layer): the global bound")
    elif d > max_dim:
        notes.append(f"not partitioned: {d} input features > {max_dim}; the global bound")
    else:
        with np.errstate(all="ignore"):
            value, used = box_partition_bound(view, lo_a, hi_a, time_s=time_s)
        value = mul_up(view.prefix_factor, value) if math.isfinite(value) else INF
    return DomainCertificate(
        lo=[float(x) for x in lo_a],
        hi=[float(x) for x in hi_a],
        certified=min(value, glob),
        partition=value,
        global_certified=glob,
        boxes=used,
        timing_ms=(time.perf_counter() - t0) * 1e3,
        notes=notes,
    )


__all__ = [
    "DomainCertificate",
    "domain_bound",
    "SlopeSets",
    "box_partition_bound",
    "interval_jacobian_bounds",
    "breakpoints_1d",
    "partition_1d",
    "partition_bound",
    "partition_global",
    "piece_sets",
    "slope_sets",
    "vertex_bounds",
]


#: the partition bound runs for chains with at most this many inputs ...
PARTITION_MAX_DIM = 2
#: ... over at most this many pieces (a count, not a clock: the same network gets the same certificate
#: on a loaded machine; ~1 s on 2 cores at the limit) ...
PARTITION_MAX_PIECES = 12_000
#: ... and this many seconds as a safety net (past either, the pieces reached so far still give a sound,
#: looser bound)
PARTITION_TIME_S = 10.0


def partition_of(analysis: Analysis) -> tuple[float | None, str]:
    """The partition bound of an analysed network, or None and why it was not computed (``EXTRA_BOUNDS``)."""
    view = analysis.view
    inputs = view.weights[0].shape[1]
    reasons = [reason for holds, reason in (
        (inputs > PARTITION_MAX_DIM, f"{inputs} inputs (at most {PARTITION_MAX_DIM})"),
        (not view.elementwise_only, "an activation that is not element-wise (GroupSort)"),
        (not view.dense_input, "a convolution first"),
        (not view.activations, "no hidden layer"),
    ) if holds]
    if reasons:
        return None, f"{', '.join(reasons)}: the input space is not partitioned"
    try:
        with np.errstate(all="ignore"):
            return partition_global(view, max_dim=PARTITION_MAX_DIM, max_pieces=PARTITION_MAX_PIECES,
                                    time_s=PARTITION_TIME_S)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError, MemoryError) as exc:
        return None, f"partition failed ({type(exc).__name__}: {exc})"


EXTRA_BOUNDS["partition"] = partition_of
