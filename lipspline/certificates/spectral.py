"""Proven upper bounds of spectral norms ||A||_2, in float64.

Why a plain SVD is not enough: power iteration *under*-estimates ||A||_2 and
even a float64 SVD can land a few ulps below the true value, so a number that
enters a certificate must be *proven*. The method here:

1. Pre-scale ``A`` by a power of two (exact) so that max |a_ij| is in [1/2, 1):
   the Gram matrix cannot overflow and underflow is confined to negligible
   terms.
2. Form the Gram matrix ``G = fl(A^T A)`` (or ``A A^T``, whichever is smaller)
   in float64; for sides above ``DENSE_EIG_LIMIT`` by BLAS ``dsyrk``, which
   computes only the upper triangle (half the flops) and whose upper triangle
   then *defines* the symmetric G that is tested. Each entry is a dot product
   of length k, so (Higham, *Accuracy and Stability of Numerical Algorithms*,
   2nd ed., eq. 3.5, for any summation order, blocking and with or without
   FMA, excluding only Strassen-type products, which BLAS does not use)
   ``|G - A^T A| <= gamma_k |A|^T |A|``, hence
   ``||G - A^T A||_2 <= rho := gamma_k * min(||A||_F^2, ||A||_1 ||A||_inf)``
   (``|| |A| ||_2^2`` is bounded by both).
3. Get a candidate ``lam`` for lambda_max(G): ``eigvalsh`` for small
   matrices; for large ones Lanczos with full reorthogonalisation (stopped
   when the Ritz residual is below 1e-9 of the Ritz value, at most 256
   steps), taking the top Ritz value plus twice its residual. Set
   ``T = lam (1 + 1e-9) + tiny``. The candidate only decides *whether* the
   test below succeeds (and how tight the result is); it never enters the
   proof, so a poor candidate costs time or tightness, never soundness.
4. Factor ``B = fl(T I - G)`` by floating-point Cholesky. If it runs to
   completion, the backward error result (Higham Thm 10.3; the same argument
   Rump uses in *Verification of positive definiteness*, BIT 46 (2006)
   433-452) gives ``R^T R = B + dB`` with ``|dB| <= gamma_{n+1} |R^T||R|``.
   Then ``||dB||_2 <= gamma_{n+1} ||R||_F^2`` and ``||R||_F^2 = tr(B + dB)``,
   so ``||R||_F^2 <= tr(B) / (1 - gamma_{n+1})`` and, since ``R^T R`` is
   positive semidefinite,

       lambda_min(B) >= -delta,   delta = gamma_{n+1} / (1 - gamma_{n+1}) * tr(B).

   Forming the diagonal of B rounds once per entry (``|error| <= 2u max B_ii``;
   off-diagonal entries are exact negations). Altogether

       lambda_max(A^T A) <= T + delta + 2u max_i B_ii + rho + underflow,

   where the underflow allowance ``8 n (2 (n + 2) + max_i B_ii) * eta``
   (eta = 2^-1074) is a deliberately generous version of Rump's (2006) term;
   with the pre-scaling of step 1 it is below 1e-300 and never matters.
   Every addition above is rounded upwards and the square root is taken one
   ulp up, so the returned number is a mathematical upper bound of ||A||_2.
   The analysis holds for blocked (LAPACK ``potrf``) Cholesky: it only assumes
   each entry of R is formed from the usual inner-product recurrence in some
   order, which BLAS-3 blocking preserves (no Strassen-type products).

The slack for n = 1024 is about (n+1) n u ~ 1e-10 relative: the proven norm is
within 1e-6 of the true one, which the tests check on random and adversarial
matrices. If the Cholesky fails (a bad candidate) the candidate is raised and
retried; as a last resort the (sound, loose) Gershgorin row-sum bound is returned.

Cost, and why a 784-1024-1024-10 MLP cannot be certified in 20 ms on 2 cores
with this (or any comparably tight) method: a tight proven bound of a dense
unstructured n x n matrix needs at least one O(n^3) dense factorisation or
product; the LipLT bound of that MLP needs ||W1||, ||W2|| and ||W2 W1|| (the
last one contributes 15 % of the tightness), i.e. one 1024x1024x784 product,
three Gram matrices and three Cholesky factorisations: about 4.6 GFlop in
float64, while this CPU sustains about 55 GFlop/s in float64 on 2 cores
(110 in float32), so >= 85 ms (>= 45 ms in float32, where the a-priori
rounding terms gamma_k |A|^T|A| of float32 would already cost ~0.5 % of each
norm). Cheaper proven bounds exist (sqrt(||A||_1 ||A||_inf), ||A||_F) but are
10-30x looser on such matrices and never win the minimum.

Matrices whose entries are themselves computed (products of weights and
diagonal scalings) are carried as :class:`TMat`: a value, an absolute
spectral-norm error bound and an exact-or-upper scalar factor, so that
``||true matrix||_2 <= scale * (proven(value) + err)``.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from lipspline.certificates._fp import (
    ETA,
    INF,
    U,
    add_up,
    down,
    frobenius_upper,
    gamma,
    inflate,
    mul_up,
    sqrt_up,
    up,
)

#: relative head-room put between the candidate eigenvalue and the Cholesky test
CANDIDATE_MARGIN = 1e-9
#: below this Gram size the dense symmetric eigensolver is cheaper than Lanczos
DENSE_EIG_LIMIT = 400
#: Lanczos steps for the candidate of a large Gram matrix (a candidate only: never affects soundness)
LANCZOS_STEPS = 256
#: Lanczos stops when its residual is below this fraction of the Ritz value
LANCZOS_RTOL = 1e-9


def _pow2_scale(a: np.ndarray) -> float:
    """A power of two s with max |a / s| in [1/2, 1) (dividing by it is exact)."""
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return 1.0
    _, e = math.frexp(m)
    return math.ldexp(1.0, e)


def _gram(a: np.ndarray) -> tuple[np.ndarray, int]:
    """The smaller Gram matrix and the inner dimension of its dot products."""
    m, n = a.shape
    if m < n:
        return a @ a.T, n
    return a.T @ a, m


def _gram_upper(a: np.ndarray) -> tuple[np.ndarray, int]:
    """The smaller Gram matrix by BLAS ``dsyrk``: Fortran order, upper triangle only (half the flops).

    ``a`` is C-contiguous, so ``a.T`` is a Fortran view of the same memory (no
    copy). Every computed entry is still a length-k dot product evaluated in
    some order, so the bound of step 2 of the module docstring holds entry-wise.
    """
    from scipy.linalg.blas import dsyrk

    m, n = a.shape
    at = a.T  # (n, m), Fortran-contiguous
    if m < n:
        return dsyrk(1.0, at, trans=1, lower=0), n  # (a.T)^T a.T = a a^T
    return dsyrk(1.0, at, trans=0, lower=0), m  # a.T (a.T)^T = a^T a


def _abs_norm_sq_upper(a: np.ndarray) -> float:
    """Upper bound of || |A| ||_2^2 (used for the Gram rounding error)."""
    fro = frobenius_upper(a)
    absa = np.abs(a)
    one = inflate(float(absa.sum(axis=0).max()), a.shape[0] + 2)
    inf = inflate(float(absa.sum(axis=1).max()), a.shape[1] + 2)
    return min(mul_up(fro, fro), mul_up(one, inf))


def _lanczos_top(g: np.ndarray, steps: int = LANCZOS_STEPS, upper: bool = False) -> tuple[float, float]:
    """Top Ritz value of symmetric ``g`` by Lanczos (full reorthogonalisation) and its residual norm.

    Runs until the residual is below ``LANCZOS_RTOL`` times the Ritz value
    (checked every 16 steps) or ``steps`` steps. Only a *candidate* for the
    Cholesky test: its accuracy affects tightness and speed, never soundness.
    ``upper``: ``g`` holds only its upper triangle (Fortran order), applied with ``dsymv``.
    """
    from scipy.linalg.blas import dsymv

    n = g.shape[0]
    k = min(steps, n)
    Q = np.empty((k + 1, n))
    q = np.random.default_rng(12345).standard_normal(n)
    Q[0] = q / np.linalg.norm(q)
    alpha = np.zeros(k)
    beta = np.zeros(k)

    def ritz(used: int) -> tuple[float, float]:
        T = np.diag(alpha[:used]) + np.diag(beta[: used - 1], 1) + np.diag(beta[: used - 1], -1)
        theta, S = np.linalg.eigh(T)
        return float(theta[-1]), float(abs(beta[used - 1] * S[-1, -1]))

    for j in range(k):
        w = dsymv(1.0, g, Q[j], lower=0) if upper else g @ Q[j]
        alpha[j] = Q[j] @ w
        basis = Q[: j + 1]
        w -= basis.T @ (basis @ w)
        w -= basis.T @ (basis @ w)
        beta[j] = np.linalg.norm(w)
        if not beta[j] > 1e-300 * max(abs(alpha[j]), 1e-300):
            return ritz(j + 1)
        Q[j + 1] = w / beta[j]
        if (j + 1) % 16 == 0 and j + 1 < k:
            theta, resid = ritz(j + 1)
            if resid <= LANCZOS_RTOL * abs(theta):
                return theta, resid
    return ritz(k)


def _candidate(g: np.ndarray, upper: bool = False) -> float:
    n = g.shape[0]
    if n <= DENSE_EIG_LIMIT and not upper:
        return float(np.linalg.eigvalsh(g)[-1])
    from lipspline.certificates._blas import single_threaded_blas

    with single_threaded_blas():  # matrix-vector products: threads only contend
        theta, resid = _lanczos_top(g, upper=upper)
    return theta + 2.0 * resid


def cholesky_completes(b: np.ndarray, lower: bool = True) -> bool:
    """Run LAPACK ``potrf`` on one triangle of ``b`` (overwritten); True if every pivot was positive.

    ``lower``: the matrix tested is the symmetric one defined by the lower
    triangle of ``b`` read in C order (= the upper triangle in Fortran order);
    ``lower=False`` with a Fortran-ordered ``b``: its upper triangle.
    """
    from scipy.linalg.lapack import dpotrf

    if lower:
        # b is symmetric up to the entry-wise bounded Gram rounding, so its transpose
        # (a Fortran-ordered view, no copy) defines an equally valid matrix to test.
        b = b.T if b.flags.c_contiguous else np.asfortranarray(b)
        _, info = dpotrf(b, lower=1, clean=0, overwrite_a=1)
    else:
        b = b if b.flags.f_contiguous else np.asfortranarray(b)
        _, info = dpotrf(b, lower=0, clean=0, overwrite_a=1)
    return info == 0


def _cholesky_lambda_max_upper(g: np.ndarray, t: float, upper: bool = False) -> float | None:
    """If chol(T I - G) completes, return a proven bound of lambda_max(G) (G exact); else None.

    ``upper``: ``g`` is Fortran-ordered and only its upper triangle defines G.
    """
    n = g.shape[0]
    b = -g  # exact negation (keeps the memory order)
    diag = np.diagonal(b).copy() + t
    if np.any(diag <= 0) or not np.all(np.isfinite(diag)):
        return None
    b[np.diag_indices(n)] = diag
    if not cholesky_completes(b, lower=not upper):
        return None
    g1 = gamma(n + 1)
    trace = inflate(float(diag.sum()), n + 2)
    delta = mul_up(g1 / (1.0 - g1), trace)
    delta = mul_up(delta, 1.0 + 4 * U)
    max_diag = float(diag.max())
    rounding = mul_up(2.0 * U, max_diag)
    underflow = mul_up(8.0 * n, add_up(2.0 * (n + 2), max_diag), ETA)
    return add_up(t, delta, rounding, underflow)


def _symmetric_full(g: np.ndarray) -> np.ndarray:
    """The full symmetric matrix defined by the upper triangle of ``g``."""
    return np.triu(g) + np.triu(g, 1).T


def proven_lambda_max(g: np.ndarray, err: float = 0.0, *, upper: bool = False) -> float:
    """Proven upper bound of lambda_max of a symmetric matrix known up to ``||error||_2 <= err``.

    ``upper``: only the upper triangle of the (Fortran-ordered) ``g`` is read.
    """
    n = g.shape[0]
    if n == 0:
        return 0.0
    if not np.all(np.isfinite(g)):
        return INF
    lam = max(_candidate(g, upper), 0.0)
    scale = max(float(np.max(np.abs(np.diagonal(g)))), float(np.max(np.abs(g))), 2.0**-1000)
    t = lam * (1.0 + CANDIDATE_MARGIN) + 1e-15 * scale
    for _attempt in range(6):
        bound = _cholesky_lambda_max_upper(g, t, upper)
        if bound is not None:
            return add_up(bound, err)
        t = t * 1.0001 + 1e-12 * scale if _attempt < 2 else t * 1.1 + 1e-6 * scale
        if _attempt == 2:  # the candidate may have converged to an inner eigenvalue
            full = _symmetric_full(g) if upper else g
            t = max(t, float(np.linalg.eigvalsh(full)[-1]) * (1.0 + 1e-7) + 1e-12 * scale)
    # Gershgorin: lambda_max <= max_i sum_j |g_ij| (sound, loose)
    full = _symmetric_full(g) if upper else g
    row = inflate(float(np.abs(full).sum(axis=1).max()), n + 2)
    return add_up(row, err)


def proven_spectral_norm(a: np.ndarray, err: float = 0.0) -> float:
    """Proven upper bound of ||A_true||_2 for any A_true with ||A_true - a||_2 <= err."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("proven_spectral_norm expects a matrix")
    if a.size == 0:
        return float(err)
    if not np.all(np.isfinite(a)):
        return INF
    s = _pow2_scale(a)
    scaled = np.ascontiguousarray(a / s if s != 1.0 else a)
    big = min(a.shape) > DENSE_EIG_LIMIT
    g, k = _gram_upper(scaled) if big else _gram(scaled)
    rho = mul_up(gamma(k), _abs_norm_sq_upper(scaled))
    rho = add_up(rho, mul_up(float(k) * g.shape[0], 2.0**-1000))
    lam = proven_lambda_max(g, rho, upper=big)
    return add_up(mul_up(sqrt_up(lam), s), err)


def proven_spectral_norms_batched(a: np.ndarray, err: np.ndarray | float = 0.0) -> np.ndarray:
    """``proven_spectral_norm`` for a stack ``(B, m, n)``; fast path for many small matrices.

    One batched eigensolver call gives the candidates, one batched Cholesky
    tests them all; any matrix whose test fails is redone on its own.
    """
    a = np.asarray(a, dtype=np.float64)
    nb = a.shape[0]
    err_arr = np.broadcast_to(np.asarray(err, dtype=np.float64), (nb,))
    out = np.empty(nb)
    if nb == 0:
        return out
    if a.shape[1] == 0 or a.shape[2] == 0:
        return np.array(err_arr, dtype=np.float64)
    finite = np.isfinite(a).all(axis=(1, 2))
    m = np.abs(a).max(axis=(1, 2))
    _, e = np.frexp(np.where((m > 0) & finite, m, 1.0))
    s = np.ldexp(1.0, e)
    scaled = a / s[:, None, None]
    scaled[~finite] = 0.0
    if scaled.shape[1] < scaled.shape[2]:
        g = scaled @ scaled.transpose(0, 2, 1)
        k = scaled.shape[2]
    else:
        g = scaled.transpose(0, 2, 1) @ scaled
        k = scaled.shape[1]
    n = g.shape[1]
    lam = np.maximum(np.linalg.eigvalsh(g)[:, -1], 0.0)
    diag_scale = np.maximum(np.abs(g).max(axis=(1, 2)), 2.0**-1000)
    t = lam * (1.0 + CANDIDATE_MARGIN) + 1e-15 * diag_scale
    b = -g
    idx = np.arange(n)
    b[:, idx, idx] += t[:, None]
    ok = np.ones(nb, dtype=bool)
    try:
        np.linalg.cholesky(b)
    except np.linalg.LinAlgError:
        ok[:] = False
    g1 = gamma(n + 1)
    gk = gamma(k)
    fro = np.sqrt((scaled * scaled).sum(axis=(1, 2)))
    one = np.abs(scaled).sum(axis=1).max(axis=1)
    inf = np.abs(scaled).sum(axis=2).max(axis=1)
    for i in range(nb):
        if not finite[i]:
            out[i] = INF
            continue
        if not ok[i]:
            out[i] = proven_spectral_norm(a[i], float(err_arr[i]))
            continue
        diag = b[i, idx, idx]
        if np.any(diag <= 0):
            out[i] = proven_spectral_norm(a[i], float(err_arr[i]))
            continue
        trace = inflate(float(diag.sum()), n + 2)
        delta = mul_up(mul_up(g1 / (1.0 - g1), trace), 1.0 + 4 * U)
        max_diag = float(diag.max())
        rho = mul_up(
            gk,
            min(
                mul_up(inflate(fro[i], k * n + 4), inflate(fro[i], k * n + 4)),
                mul_up(inflate(one[i], n + k + 2), inflate(inf[i], n + k + 2)),
            ),
        )
        lam_up = add_up(
            float(t[i]),
            delta,
            mul_up(2.0 * U, max_diag),
            mul_up(8.0 * n, add_up(2.0 * (n + 2), max_diag), ETA),
            rho,
            mul_up(float(k) * n, 2.0**-1000),
        )
        out[i] = add_up(mul_up(sqrt_up(lam_up), float(s[i])), float(err_arr[i]))
    return out


# ---- tracked matrices ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TMat:
    """A matrix known as ``scale * (value + E)`` with ``||E||_2 <= err`` and ``scale >= 0`` an upper bound.

    Only norms of products are ever taken, so an *upper bound* on the scalar
    factor is as good as the exact one. ``value`` is never modified in place:
    its identity is the key of the norm cache.
    """

    value: np.ndarray
    err: float = 0.0
    scale: float = 1.0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape


def exact(a: np.ndarray) -> TMat:
    return TMat(np.asarray(a, dtype=np.float64))


def _constant(d: np.ndarray) -> float | None:
    if d.size and np.all(d == d.flat[0]):
        return float(d.flat[0])
    return None


def scale_columns(t: TMat, d: np.ndarray) -> TMat:
    """``T diag(d)``; a constant ``d`` becomes a scalar factor (shares ``value``, reuses its norm)."""
    c = _constant(d)
    if c is not None:
        return TMat(t.value, t.err, mul_up(t.scale, abs(c)))
    value = t.value * d[None, :]
    dmax = float(np.abs(d).max()) if d.size else 0.0
    err = add_up(mul_up(t.err, dmax), mul_up(2.0 * U, frobenius_upper(value)), 2.0**-1000 * math.sqrt(value.size))
    return TMat(value, err, t.scale)


def scale_rows(t: TMat, d: np.ndarray) -> TMat:
    """``diag(d) T``."""
    c = _constant(d)
    if c is not None:
        return TMat(t.value, t.err, mul_up(t.scale, abs(c)))
    value = d[:, None] * t.value
    dmax = float(np.abs(d).max()) if d.size else 0.0
    err = add_up(mul_up(t.err, dmax), mul_up(2.0 * U, frobenius_upper(value)), 2.0**-1000 * math.sqrt(value.size))
    return TMat(value, err, t.scale)


def matmul(a: TMat, b: TMat) -> TMat:
    """``a @ b`` with the rounding of the product and the inherited errors bounded in norm.

    ``(A + Ea)(B + Eb) - fl(AB) = [AB - fl(AB)] + Ea B + A Eb + Ea Eb`` and
    ``|AB - fl(AB)| <= gamma_k |A||B|`` whose 2-norm is at most
    ``gamma_k ||A||_F ||B||_F``.
    """
    value = a.value @ b.value
    k = a.value.shape[1]
    fa = frobenius_upper(a.value)
    fb = frobenius_upper(b.value)
    err = add_up(
        mul_up(gamma(k), fa, fb),
        mul_up(a.err, fb),
        mul_up(fa, b.err),
        mul_up(a.err, b.err),
        2.0**-1000 * k * math.sqrt(max(value.size, 1)),
    )
    return TMat(value, err, mul_up(a.scale, b.scale))


class NormCache:
    """Proven norms keyed by the identity of the ``value`` array (which it keeps alive)."""

    def __init__(self) -> None:
        self._store: dict[int, tuple[np.ndarray, float, float]] = {}

    def norm(self, t: TMat) -> float:
        key = id(t.value)
        hit = self._store.get(key)
        if hit is None or hit[0] is not t.value or hit[1] != t.err:
            value = proven_spectral_norm(t.value, t.err)
            self._store[key] = (t.value, t.err, value)
        else:
            value = hit[2]
        return mul_up(t.scale, value)


class LRU:
    """A small thread-safe LRU map (analyses of recently certified networks)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def conv_tap_sum_bound(weight: np.ndarray) -> float:
    """Sound ||conv||_2 bound of a (out, in, kh, kw) float64 kernel: the sum over taps of each
    tap's proven spectral norm (a zero-padded convolution, any stride, is a sum over taps of a
    shift of norm <= 1 times the tap matrix)."""
    total = 0.0
    for i in range(weight.shape[2]):
        for j in range(weight.shape[3]):
            total = add_up(total, proven_spectral_norm(weight[:, :, i, j]))
    return total


#: power-iteration steps for the weights of the Schur test (any positive weights are sound)
SCHUR_WEIGHT_STEPS = 50


def conv_schur_bound(weight: np.ndarray) -> float:
    """Sound ||conv||_2 bound of a (out, in, kh, kw) float64 kernel by a weighted Schur test on K^T K.

    Why it holds. A zero-padded convolution (any stride, any dilation) is a restriction of the
    same kernel's convolution C on the infinite grid: inputs embedded with zeros, outputs cut
    out and subsampled, both of norm <= 1, so ||conv|| <= ||C||. C^T C is translation invariant:
    the row of input channel c holds P[c, c', s] = sum_o sum_q K[o, c, q] K[o, c', q + s] for
    every channel c' and shift s. With A[c, c'] = sum_s |P[c, c', s]| and any positive weights
    w, the Schur test gives ||C||^2 = ||C^T C|| <= max_c (A w)_c / w_c. The weights are a power
    iteration's estimate of A's Perron vector (the best choice; any positive w is sound, so the
    estimate never affects soundness). AOL (Prach and Lampert, *Almost-Orthogonal Layers*)
    scales input channel c by d_c = (sum_c' A[c, c'])^(-1/2), which makes w = 1/d exact and the
    bound 1 in exact arithmetic, where the tap sum can be up to kh * kw. (A dilation spreads the
    shifts out without changing A.)

    Rounding. Each P entry is a dot product of n <= out * kh * kw terms, formed by BLAS, so
    ``|fl(P) - P| <= gamma_n Q`` with Q = |K|^T |K| correlated the same way, and
    ``fl(Q) >= (1 - gamma_n) Q``; the kernel is pre-scaled by a power of two (exact) so that
    underflow only touches terms below 2^-1000 (allowed for by ``n * ETA`` per entry). A's entries
    and (A w)_c are sums of non-negative terms, inflated for their roundings; each ratio is rounded
    up and the root taken one ulp up.
    """
    out_ch, in_ch, kh, kw = weight.shape
    if not np.all(np.isfinite(weight)):
        return INF
    if not np.any(weight):  # the zero map (or no channels): exactly 0
        return 0.0
    scale = _pow2_scale(weight)
    k = weight / scale  # exact
    n = out_ch * kh * kw
    g = gamma(n)
    if not math.isfinite(g):
        return INF
    spread = up(g / down(1.0 - g))  # Q <= fl(Q) / (1 - g), so |P| <= |fl(P)| + g / (1 - g) fl(Q)
    a_sum = np.zeros((in_ch, in_ch))
    shifts = (2 * kh - 1) * (2 * kw - 1)
    for a in range(-(kh - 1), kh):
        for b in range(-(kw - 1), kw):
            i0, i1 = max(0, -a), min(kh, kh - a)
            j0, j1 = max(0, -b), min(kw, kw - b)
            # (in, out * taps) views of the overlapping taps: left[c] . right[c'] = P[c, c', (a, b)]
            left = k[:, :, i0:i1, j0:j1].transpose(1, 0, 2, 3).reshape(in_ch, -1)
            right = k[:, :, i0 + a : i1 + a, j0 + b : j1 + b].transpose(1, 0, 2, 3).reshape(in_ch, -1)
            a_sum += np.abs(left @ right.T) + spread * (np.abs(left) @ np.abs(right).T) + n * 4.0 * ETA
    # three roundings per entry and one per shift accumulated: exact A <= a_sum * (1 + entry_slack)
    entry_slack = up(2.0 * (3 + shifts + 1) * U)
    w = np.ones(in_ch)
    for _ in range(SCHUR_WEIGHT_STEPS):
        nxt = a_sum @ w
        top = float(nxt.max())
        if not (top > 0.0 and math.isfinite(top)):
            break
        w = nxt / top
    w = np.maximum(w, 1e-12 * float(w.max()))  # strictly positive (a reducible A may zero some entries)
    product = a_sum @ w
    worst = 0.0
    for c in range(in_ch):
        row = mul_up(inflate(float(product[c]), in_ch + 1), 1.0 + entry_slack)
        worst = max(worst, up(row / float(w[c])))
    return mul_up(sqrt_up(worst), scale)


#: most flops the certificate spends on the Schur test of one convolution it did not densify (~0.1 s)
SCHUR_FLOPS = 2.0e9


def conv_schur_flops(weight: np.ndarray) -> float:
    """Flops of :func:`conv_schur_bound`: two products per shift, in^2 * out * overlap each."""
    out_ch, in_ch, kh, kw = weight.shape
    return 4.0 * in_ch * in_ch * out_ch * (kh * kw) ** 2


def conv_norm_bound(weight: np.ndarray, schur_flops: float = math.inf) -> float:
    """The tighter of the two sound convolution bounds: per-tap sum, or the Schur test on K^T K.

    The Schur test costs in^2 * out * (kh * kw)^2; beyond ``schur_flops`` only the tap sum is
    computed. An AOL layer proves its served kernel without a limit (its every training step
    correlates the kernel with itself at the same order of cost); the certificate of other
    convolutions it could not densify keeps to ``SCHUR_FLOPS``.
    """
    tap_sum = conv_tap_sum_bound(weight)
    if conv_schur_flops(weight) > schur_flops:
        return tap_sum
    return min(tap_sum, conv_schur_bound(weight))
