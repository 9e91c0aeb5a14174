"""The analysis of a network: its global l2 Lipschitz upper bounds, each sound in floating point.

Notation: the chain is ``f = W_L s_{L-1} W_{L-1} ... s_1 W_1`` (biases do not
matter), so wherever f is differentiable its Jacobian is
``J = W_L D_{L-1} W_{L-1} ... D_1 W_1`` with ``D_l`` diagonal, entries in the
per-neuron slope intervals ``[a_n, b_n]`` (the slopes of the linear pieces);
S_l = diag(max(|a_n|, |b_n|)). For a piecewise-linear f the l2 Lipschitz
constant is the supremum of ||J|| over the pieces (integrate J along the
segment between two points), so every bound below bounds all such products.

* ``bv2_mixed`` (paper 000, Thm 1): prod ||W_l||_{q,inf} * prod ||s_l||_{BV2,p}
  with the output counted as the identity activation (BV2 norm 1 per output),
  exactly as in the theorem; valid because |s(x) - s(y)| <= ||s||_BV2 |x - y|
  and Hoelder per row. It is an lp -> lp bound; only its p = 2 value enters the
  l2 certificate.
* ``frobenius`` (paper 000, Prop 3): prod ||W_l||_F * prod ||s_l||_{BV2,1}
  (same output convention).
* ``spectral_product``: prod ||W_l||_2 * prod max_n Lip s_{n,l}. With no
  hidden layer the map is affine and this is exactly the proven norm of its
  one folded matrix (with a single output row the Frobenius and BV2 bounds
  are the same number, proven with less slack, and may be the minimum).
* ``per_neuron_scaled``: ||D_l W_l|| <= ||S_l W_l|| (D_l = C S_l with |C| <= 1),
  so ||J|| <= ||W_L|| prod ||S_l W_l||; symmetrically ||J|| <=
  prod_{l>1} ||W_l S_{l-1}|| * ||W_1||. The smaller of the two groupings.
* ``liplt`` (loop transformation): s = M z + R psi(z), M = diag((a+b)/2),
  R = diag(r) with r >= (b-a)/2 covering the interval, psi 1-Lipschitz
  element-wise (valid for non-monotone splines). Unrolling gives the
  recursion of docs/design.md#bound-liplt: L_1 = ||W_1||,
  L_k = ||W_k M_{k-1} ... M_1 W_1|| + sum_{j<k} ||W_k M_{k-1} ... W_{j+1} R_j|| L_j.
* ``liplt_scaled``: the same recursion with every cross term split through a
  positive diagonal scaling, ``||Q Delta J|| <= ||Q T^-1|| ||T J||`` (diagonal
  matrices commute); valid for every T, the scalings are searched with
  estimated norms and the result is evaluated with proven ones
  (``liplt_scaled.py``). Small segments only.
* ``partition`` (networks with at most ``PARTITION_MAX_DIM`` inputs, element-wise
  activations): the input space is cut into pieces that cover it (1-D: the
  intervals between the map's breakpoints and the two rays beyond; 2-D: a box
  around the data's centre, branch-and-bound split, and rays covering its
  exterior), each piece gets the slope sets its pre-activations can reach
  (interval arithmetic, outward rounded) and a proven bound of ||J|| over them
  (vertex enumeration of the few ambiguous neurons, rounding bounded entry-wise);
  the bound is the max over the pieces (``partition.py``, proof there). Global,
  and for trained low-dimensional nets within a percent of the true constant.

GroupSort layers are 1-Lipschitz but not diagonal. The chain is split there
into segments (each a sub-network with element-wise activations); the
per-neuron and LipLT bounds are computed per segment and multiplied (factor 1
for each GroupSort); the spectral product uses Lip = 1 for them; the BV2-based
bounds do not apply (no per-neuron activation) and are skipped with a reason.
Convolutions too large to densify form a prefix bounded by their proven
norms (tap sum or Schur test, ``view.conv_bound``); only the product-type bounds are then reported.

Every spectral norm is a proven upper bound (``spectral.py``), every product
of scalars is rounded upwards, and the certified value is the minimum of the
sound bounds (each is valid, so their minimum is).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from lipspline.certificates._blas import single_threaded_blas
from lipspline.certificates._fp import INF, U, add_up, frobenius_upper, inflate, mul_up
from lipspline.certificates.liplt_scaled import (
    ITERATIONS,
    SEARCH_FLOPS,
    ScalingSearch,
    Term,
    proven_scaled_liplt,
    search_flops,
    searchable,
)
from lipspline.certificates.spectral import (
    LRU,
    NormCache,
    TMat,
    exact,
    matmul,
    proven_spectral_norm,
    scale_columns,
    scale_rows,
)
from lipspline.certificates.view import ChainView, build_view, fingerprint

#: the scaling search's early stop (``Analysis.liplt_scaled``): after this many steps ...
#: On 12 random 16-64-64-64-4 spline nets the estimate fell by a factor 0.91-0.95 from step 4 to the
#: last step (30), 0.97-0.98 from step 10: an estimate above 1.25x the best other bound after 4 steps
#: ends above 1.13x it. Each step costs about 1.2 ms there.
GIVE_UP_AFTER = 4
#: ... it stops when its estimate is still above this multiple of the best other bound
GIVE_UP_ABOVE = 1.25

BOUND_NAMES = (
    "bv2_mixed",
    "frobenius",
    "spectral_product",
    "per_neuron_scaled",
    "liplt",
    "liplt_scaled",
    "partition",
    "lipsdp_layerwise",
    "lipsdp_neuron",
)

#: bounds other modules compute on a finished analysis: name -> fn(analysis) -> (value, or None and why).
#: ``partition.py`` adds the partition bound: it needs the local bounds' interval tools, which read
#: the analysis themselves, so it plugs in here instead of being imported (the imports stay one way).
EXTRA_BOUNDS: dict[str, Callable[[Analysis], tuple[float | None, str]]] = {}


@dataclass
class GlobalCertificate:
    """Global l2 -> l2 upper bounds of the user-visible map, by name; ``certified`` is their minimum."""

    bounds: dict[str, float]
    certified: float
    certified_by: str
    timings_ms: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)
    other_norms: dict[str, float] = field(default_factory=dict)
    p: float = 2.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "topology": "l2",
            "bounds": {k: clean(v) for k, v in self.bounds.items()},
            "certified": clean(self.certified),
            "certified_by": self.certified_by,
            "timings_ms": {k: round(v, 4) for k, v in self.timings_ms.items()},
            "skipped": dict(self.skipped),
            "other_norms": {k: clean(v) for k, v in self.other_norms.items()},
            "p": self.p,
            "notes": list(self.notes),
        }


def mid_radius(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M and R of the loop transformation with [lo, hi] inside [m - r, m + r] (r rounded up)."""
    m = 0.5 * (lo + hi)
    r = np.maximum(hi - m, m - lo)
    return m, np.nextafter(np.maximum(r, 0.0) * (1 + 4 * U), INF)


@dataclass
class SegmentLipLT:
    """LipLT quantities of one segment: L_k per weight, per-row Lipschitz of each pre-activation, the terms."""

    L: list[float]
    rows: list[np.ndarray]
    terms: list[Term]


class Analysis:
    """Global bounds and the precomputed pieces the local bounds reuse (cached per network state)."""

    def __init__(self, view: ChainView) -> None:
        self.view = view
        self.cache = NormCache()
        self.W = [exact(w) for w in view.weights]
        self.timings: dict[str, float] = {}
        self.skipped: dict[str, str] = {}
        self.bounds: dict[str, float] = {}
        self.other: dict[str, float] = {}
        self.notes: list[str] = []
        self.lipsdp: float | None = None
        self._finishing = threading.Lock()
        with single_threaded_blas():
            self._compute()

    # ---- helpers ------------------------------------------------------------------------------------
    def norm(self, t: TMat) -> float:
        return self.cache.norm(t)

    def _timed(self, name: str, fn):
        t0 = time.perf_counter()
        value = fn()
        self.timings[name] = self.timings.get(name, 0.0) + (time.perf_counter() - t0) * 1e3
        return value

    # ---- bounds -------------------------------------------------------------------------------------
    def _compute(self) -> None:
        v = self.view
        self.norms = self._timed("weight_norms", lambda: [self.norm(w) for w in self.W])
        self.bounds["spectral_product"] = self._timed("spectral_product", self.spectral_product)
        self.bounds["per_neuron_scaled"] = self._timed("per_neuron_scaled", self.per_neuron_scaled)
        self.seg_liplt: list[SegmentLipLT] = []
        #: the scaling search of each segment (liplt_scaled); the local bounds reuse its scalings
        self.searches: list[ScalingSearch] = []
        self.bounds["liplt"] = self._timed("liplt", self.liplt)
        # the extra bounds read only the view; computed first, they tell the scaling search what it must beat
        extra: dict[str, float] = {}
        for name, compute in EXTRA_BOUNDS.items():
            value, how = self._timed(name, lambda compute=compute: compute(self))
            if value is None:
                self.skipped[name] = how
            else:
                extra[name] = value
        if all(searchable(seg.terms) for seg in self.seg_liplt):
            beat = min([*self.bounds.values(), *extra.values()])
            self.bounds["liplt_scaled"] = self._timed("liplt_scaled", lambda: self.liplt_scaled(beat))
        else:
            flops = sum(search_flops(seg.terms) for seg in self.seg_liplt)
            self.skipped["liplt_scaled"] = (
                f"network too large for the scaling search ({flops:.1e} flops, limit {SEARCH_FLOPS:.0e}); "
                "plain liplt is used"
            )
        if not v.elementwise_only:
            reason = "GroupSort is not a per-neuron activation: Theorem 1 / Proposition 3 do not apply"
            self.skipped["bv2_mixed"] = reason
            self.skipped["frobenius"] = reason
        elif not v.dense_input:
            self.skipped["bv2_mixed"] = self.skipped["frobenius"] = v.prefix_note or ""
        else:
            self.bounds["frobenius"] = self._timed("frobenius", self.frobenius)
            self.bounds["bv2_mixed"] = self._timed("bv2_mixed", lambda: self.bv2_mixed(2.0))
        if v.prefix_note:
            self.notes.append(v.prefix_note)
        self.bounds.update(extra)

    def spectral_product(self) -> float:
        v = self.view
        if not v.activations:
            # No hidden layer: the map is affine and its constant is exactly ||W||_2 of its one (folded)
            # matrix. The proof's own number is used as is, so the certificate is that proven norm and
            # not a product rounded upwards once more per factor.
            norm = proven_spectral_norm(v.weights[0])
            return norm if v.prefix_factor == 1.0 else mul_up(v.prefix_factor, norm)
        lips = [float(a.lipschitz().max()) if a.n_units else 0.0 for a in v.activations]
        return mul_up(v.prefix_factor, *self.norms, *lips)

    def _scaled(self, j: int) -> tuple[TMat, TMat]:
        """S_j W_j and W_{j+1} S_j for activation j (built once: their norms are cached by identity)."""
        store = self.__dict__.setdefault("_scaled_store", {})
        if j not in store:
            lo, hi = self.view.activations[j].slope_interval()  # type: ignore[union-attr]
            s = np.maximum(np.abs(lo), np.abs(hi))
            store[j] = (scale_rows(self.W[j], s), scale_columns(self.W[j + 1], s))
        return store[j]

    def _partial_per_neuron(self, a: int, k: int) -> float:
        """Per-neuron bound of the sub-chain W_a ... W_k of a segment (both groupings, the smaller)."""
        if a == k:
            return self.norms[a]
        fa = [self.norms[k]] + [self.norm(self._scaled(j)[0]) for j in range(a, k)]
        fb = [self.norms[a]] + [self.norm(self._scaled(j)[1]) for j in range(a, k)]
        return min(mul_up(*fa), mul_up(*fb))

    def _segment_per_neuron(self, a: int, b: int) -> float:
        return self._partial_per_neuron(a, b)

    def per_neuron_scaled(self) -> float:
        return mul_up(self.view.prefix_factor, *(self._segment_per_neuron(a, b) for a, b in self.view.segments))

    def _segment_liplt(self, a: int, b: int) -> SegmentLipLT:
        v = self.view
        mr = [mid_radius(*v.activations[j].slope_interval()) for j in range(a, b)]  # type: ignore[union-attr]
        L: list[float] = []
        rows: list[np.ndarray] = []
        matrices: list[Term] = []
        for k in range(a, b + 1):
            x = self.W[k]
            total_rows = np.zeros(x.shape[0])
            terms: list[float] = []
            for j in range(k - 1, a - 1, -1):
                m, r = mr[j - a]
                q = scale_columns(x, r)
                matrices.append(Term(k, j, q))
                qn = self.norm(q)
                lj = L[j - a]
                terms.append(mul_up(qn, lj))
                total_rows = total_rows + _row_norms_upper(q) * lj
                x = matmul(scale_columns(x, m), self.W[j])
            matrices.append(Term(k, None, x))
            terms.append(self.norm(x))
            total_rows = total_rows + _row_norms_upper(x)
            # any valid bound of Lip(z_k) may enter the recursion: keep the smaller one
            L.append(min(add_up(*terms), self._partial_per_neuron(a, k)))
            rows.append(np.nextafter(total_rows * (1 + 4 * (k - a + 2) * U), INF))
        return SegmentLipLT(L, rows, matrices)

    def liplt(self) -> float:
        total = self.view.prefix_factor
        self.seg_liplt = []
        self.seg_input_lip: list[float] = []
        for a, b in self.view.segments:
            self.seg_input_lip.append(total)
            seg = self._segment_liplt(a, b)
            self.seg_liplt.append(seg)
            total = mul_up(total, seg.L[-1])
        return total

    def liplt_scaled(self, beat: float = INF) -> float:
        """LipLT with searched per-neuron scalings (``liplt_scaled.py``), per segment, multiplied.

        ``beat``: the smallest other bound. After ``GIVE_UP_AFTER`` steps, when the searches' smooth
        estimate (the product over segments) is still more than ``GIVE_UP_ABOVE`` times ``beat``, they
        stop: this bound cannot become the certified one (on random 16-64-64-64-4 spline nets the
        later steps gain 5-9 %, against a gap of 36-50 % after 4 steps), so finishing would only cost
        time (about 30 ms there). The scalings the local bounds reuse are finished on first use
        (``segment_scalings``), exactly those of an uninterrupted search.
        """
        total = self.view.prefix_factor
        self.searches = [
            ScalingSearch(seg.terms, {j: self.W[j].shape[0] for j in range(a, b)}, b)
            for (a, b), seg in zip(self.view.segments, self.seg_liplt, strict=True)
        ]
        for search in self.searches:
            search.advance(GIVE_UP_AFTER)
        estimate = self.view.prefix_factor * math.prod(search.best for search in self.searches)
        if not estimate > GIVE_UP_ABOVE * beat:
            for search in self.searches:
                search.advance(ITERATIONS)
        for (_, b), seg, search in zip(self.view.segments, self.seg_liplt, self.searches, strict=True):
            logt = search.result()
            # T = I (plain LipLT) is one of the valid choices: the search judged by its smooth
            # stand-in can land above it (nearly orthogonal weights of 1-Lipschitz nets), so keep the smaller
            total = mul_up(total, min(proven_scaled_liplt(seg.terms, logt, b, self.norm), seg.L[-1]))
        return total

    def segment_scalings(self, index: int) -> dict[int, np.ndarray] | None:
        """The searched log-scalings of segment ``index`` for the local bounds (None: no search ran),
        finished to ``ITERATIONS`` steps first if the global bound stopped its search early."""
        if index >= len(self.searches):
            return None
        with self._finishing:  # a cached analysis serves concurrent requests: one thread finishes a search
            search = self.searches[index]
            with single_threaded_blas():
                search.advance(ITERATIONS)  # nothing to do unless the global bound stopped it early
                return search.result()

    def frobenius(self) -> float:
        v = self.view
        fro = [frobenius_upper(w) for w in v.weights]
        bv = [inflate(float(a.bv2.sum()), a.n_units + 2) for a in v.activations]  # type: ignore[union-attr]
        return mul_up(*fro, *bv, float(v.n_outputs))

    def bv2_mixed(self, p: float) -> float:
        """Theorem 1 of paper 000 (lp -> lp) for p in [1, inf]."""
        v = self.view
        q = INF if p == 1 else (1.0 if math.isinf(p) else p / (p - 1))
        mixed = [_max_row_qnorm_upper(w, q) for w in v.weights]
        acts = [_lp_norm_upper(a.bv2, p) for a in v.activations]  # type: ignore[union-attr]
        out = _lp_norm_upper(np.ones(v.n_outputs), p)
        return mul_up(*mixed, *acts, out)

    # ---- local support ---------------------------------------------------------------------------------
    def preactivation_lipschitz(self, layer: int) -> np.ndarray:
        """Upper bounds of the l2 Lipschitz constant of each pre-activation of weight ``layer``."""
        for s, (a, b) in enumerate(self.view.segments):
            if a <= layer <= b:
                return np.nextafter(self.seg_liplt[s].rows[layer - a] * self.seg_input_lip[s] * (1 + 4 * U), INF)
        raise IndexError(layer)

    def certificate(self) -> GlobalCertificate:
        bounds = dict(self.bounds)
        if self.lipsdp is not None:
            bounds["lipsdp_neuron"] = self.lipsdp
        finite = {k: x for k, x in bounds.items() if not math.isnan(x)}
        name = min(finite, key=lambda k: finite[k]) if finite else "none"
        return GlobalCertificate(
            bounds=bounds,
            certified=finite.get(name, INF),
            certified_by=name,
            timings_ms=dict(self.timings),
            skipped=dict(self.skipped),
            other_norms=dict(self.other),
            notes=list(self.notes),
        )


def _row_norms_upper(t: TMat) -> np.ndarray:
    """Per-row l2 norms of the true matrix: scale * (||row of value|| + err)."""
    rows = np.sqrt((t.value * t.value).sum(axis=1))
    rows = rows * (1 + (t.value.shape[1] + 4) * U) + t.err + 2.0**-1000
    return np.nextafter(rows * t.scale * (1 + 2 * U), INF)


def _max_row_qnorm_upper(w: np.ndarray, q: float) -> float:
    a = np.abs(w)
    if math.isinf(q):
        return float(a.max()) if a.size else 0.0
    if q == 1.0:
        return inflate(float(a.sum(axis=1).max()), w.shape[1] + 2)
    if q == 2.0:
        return inflate(math.sqrt(float((a * a).sum(axis=1).max())), w.shape[1] + 4)
    # general q: powers and roots are not correctly rounded; allow 1e-12 relative
    value = float((a**q).sum(axis=1).max() ** (1.0 / q))
    return mul_up(value, 1 + 1e-12) + 2.0**-1000


def _lp_norm_upper(x: np.ndarray, p: float) -> float:
    a = np.abs(x)
    if math.isinf(p):
        return float(a.max()) if a.size else 0.0
    if p == 1.0:
        return inflate(float(a.sum()), a.size + 2)
    if p == 2.0:
        return inflate(math.sqrt(float((a * a).sum())), a.size + 4)
    return mul_up(float((a**p).sum() ** (1.0 / p)), 1 + 1e-12) + 2.0**-1000


_ANALYSES = LRU(8)


def analyze(network: nn.Module, *, use_cache: bool = True) -> Analysis:
    """The (cached) analysis of a network: keyed by a content hash of its state."""
    key = fingerprint(network) if use_cache else None
    if key is not None:
        hit = _ANALYSES.get(key)
        if hit is not None:
            return hit
    t0 = time.perf_counter()
    view = build_view(network)
    t1 = time.perf_counter()
    analysis = Analysis(view)
    analysis.timings["view"] = (t1 - t0) * 1e3
    if key is not None:
        _ANALYSES.put(key, analysis)
    return analysis


def clear_cache() -> None:
    _ANALYSES.clear()
