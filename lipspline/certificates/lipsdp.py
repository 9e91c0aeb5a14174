"""LipSDP-Neuron (Fazlyab et al., NeurIPS 2019) for small networks, with a *verified* answer.

Each hidden unit's slope lies in [a_n, b_n], i.e. for any two inputs the
differences dz (pre-activation) and dv (post-activation) satisfy the quadratic
constraint (dv - a dz)(b dz - dv) >= 0. With the stacked vector
``X = [x_0; x_1; ...; x_{L-1}]`` (input and hidden post-activations),
``dz = A dX`` and ``dv = B dX``; if for some lambda >= 0 and rho

    M(rho, lambda) = [A; B]^T [[-2 diag(a b lambda), diag((a+b) lambda)],
                               [diag((a+b) lambda), -2 diag(lambda)]] [A; B]
                     + blockdiag(-rho I, 0, ..., W_L^T W_L)  <=  0,

then ``||W_L dx_{L-1}||^2 <= rho ||dx_0||^2`` (add the non-negative QC terms),
so sqrt(rho) is an l2 Lipschitz bound. The SDP minimises rho.

Solver. ``-M = rho E_0 + sum_i lambda_i F_i - E_L`` where every ``F_i =
U_i C_i U_i^T`` has rank 2 (``U_i = [a_i, e_i]``: the unit's weight row and
its own coordinate). The default solver is a primal barrier method written for
exactly this structure (numpy only): minimise ``t rho - log det(-M) -
sum log lambda`` by damped Newton steps, t multiplied by 20 between
centerings, stopped when the barrier duality gap ``(dim + n) / t`` is below
``1e-7 rho``. Its gradient and Hessian need only ``U^T (-M)^{-1} U`` (the
rank-2 structure), so a step costs a few small dense products: the
16-64-64-64-4 net solves in about a second on 2 cores, where a generic conic
solver through cvxpy takes minutes (Clarabel's KKT system for a 208x208 PSD
cone is huge; SCS needs about a minute). The strictly feasible start takes
per-layer multipliers growing towards the input (doubled where the Cholesky
of the hidden block fails) and a large rho. cvxpy (SCS) remains available as
``method="cvxpy"`` and as a fallback.

Verification (what makes the number certified). Whatever the solver
returned, we clip lambda to >= 0, form ``X = -M`` in float64 with an
entry-wise rounding bound, and prove ``X >= 0`` with the same Cholesky
backward-error argument as ``spectral.py`` (raising rho slightly if needed).
The slope intervals are first rounded *outwards* to a grid of
``2^-40 max(1, max |slope|)`` (exact operations; a wider interval still holds
every slope, so its QC is still valid): this keeps the 2^-1000 padding of
exactly-zero slopes out of the products, where subnormal numbers would slow
every BLAS call down by orders of magnitude.

Failure is an answer, never an exception. LipSDP only ever tightens bounds
that are already certified, so whatever goes wrong numerically (a singular
Newton system, a LinAlgError, multipliers running off to infinity on dead
units, no convergence) ends the attempt with ``certified=None`` and a reason,
and the certificate falls back to the closed-form bounds. The solve runs in a
forked child killed at the wall-clock limit (``_isolated.py``): a LAPACK call
handed a degenerate system can block for longer than any check of the clock
between iterations could notice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from lipspline.certificates._fp import ETA, INF, U, add_up, frobenius_upper, gamma, inflate, mul_up, sqrt_up
from lipspline.certificates._isolated import DeadlineExceededError, IsolatedFailureError, run_with_deadline
from lipspline.certificates.spectral import cholesky_completes
from lipspline.certificates.view import ChainView

#: LipSDP is refused above this many hidden units (the SDP grows as their square)
MAX_HIDDEN = 200
#: the barrier parameter grows 20x per centering: 40 of them take the duality gap from any
#: sensible start far below the tolerance, so more means the iteration is not converging
MAX_CENTERINGS = 40
#: share of the time limit the solver itself may use; the rest is left to the proof
SOLVER_SHARE = 0.8
#: relative raises of the solver's rho tried by the proof (each also adds that share of ||W_L||^2)
RHO_BUMPS = (0.0, 1e-9, 1e-7, 1e-5, 1e-3, 1e-2)
#: reason given for an affine network (no hidden layer)
NO_HIDDEN_REASON = "no hidden layer: the closed-form bound is exact"


@dataclass
class LipSDPResult:
    certified: float | None
    solver_value: float | None
    reason: str
    seconds: float = 0.0


def program_structure(view: ChainView) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    ws = view.weights
    n0 = ws[0].shape[1]
    sizes = [w.shape[0] for w in ws[:-1]]
    n_hidden = sum(sizes)
    dim = n0 + n_hidden
    A = np.zeros((n_hidden, dim))
    B = np.zeros((n_hidden, dim))
    row, col = 0, 0
    for k, w in enumerate(ws[:-1]):
        A[row : row + w.shape[0], col : col + w.shape[1]] = w
        col += w.shape[1]
        B[row : row + w.shape[0], n0 + row : n0 + row + w.shape[0]] = np.eye(w.shape[0])
        row += w.shape[0]
        _ = k
    lo = np.concatenate([a.slope_interval()[0] for a in view.activations])  # type: ignore[union-attr]
    hi = np.concatenate([a.slope_interval()[1] for a in view.activations])  # type: ignore[union-attr]
    return A, B, lo, hi, n0, dim


def program_matrix(A, lo, hi, wl, rho, lam, n0, dim, sizes: list[int], absolute: bool = False) -> np.ndarray:
    """-M(rho, lambda) (or the same formula on absolute values, for the rounding bound).

    Built block by block from the hidden layer ``sizes``: A^T diag(c) A is one block per layer (A's
    rows of layer k only touch that layer's input columns), and the products with B place columns
    (B selects each unit's own coordinate). Every entry is the sum the dense products
    ``[A; B]^T C [A; B]`` would compute without their exact zero terms, so each stays within the
    rounding bound ``verify_multipliers`` charges (dot products of at most ``A.shape[0]`` terms).
    """
    f = np.abs if absolute else (lambda x: x)
    c_ab = f(lo * hi * lam)
    c_s = f((lo + hi) * lam)
    Aa = f(A)
    X = np.zeros((dim, dim))
    row, col, width = 0, 0, n0  # layer k reads columns [col, col + width): the input, then layer k-1
    for size in sizes:
        block = Aa[row : row + size, col : col + width]
        X[col : col + width, col : col + width] = 2.0 * ((block.T * c_ab[row : row + size]) @ block)
        col, width = n0 + row, size
        row += size
    hidden = np.arange(n0, dim)
    X[hidden, hidden] += 2.0 * f(lam)
    cross = np.zeros((dim, dim))
    cross[:, n0:] = Aa.T * c_s
    X = X + cross + cross.T if absolute else X - cross - cross.T
    X[:n0, :n0] += rho * np.eye(n0)
    gl = f(wl).T @ f(wl)
    k = wl.shape[1]
    if absolute:
        X[dim - k :, dim - k :] += gl
    else:
        X[dim - k :, dim - k :] -= gl
    return X


def verify_multipliers(A, lo, hi, wl, rho, lam, n0, dim, sizes: list[int]) -> bool:
    """Proof that -M(rho, lam) is positive semidefinite (lam >= 0 required; ``sizes``: see ``program_matrix``)."""
    X = program_matrix(A, lo, hi, wl, rho, lam, n0, dim, sizes)
    Xabs = program_matrix(A, lo, hi, wl, rho, lam, n0, dim, sizes, absolute=True)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Xabs))):
        return False
    inner = max(A.shape[0], wl.shape[0]) + 8
    form_err = mul_up(gamma(inner), frobenius_upper(Xabs), 1.0 + 1e-6)  # 6 terms: generous factor below
    form_err = mul_up(form_err, 4.0)
    n = dim
    diag_max = float(np.abs(np.diagonal(X)).max())
    g1 = gamma(n + 1)
    # pick the shift c, factor Y = X - cI, then check c covers every error term
    c = add_up(mul_up(2.0, form_err), mul_up(4.0 * g1, n, diag_max + form_err), 4 * U * diag_max, 2.0**-1000)
    Y = X.copy()
    Y[np.diag_indices(n)] -= c
    diag = np.diagonal(Y).copy()
    if np.any(diag <= 0):
        return False
    if not cholesky_completes(Y.copy()):
        return False
    delta = mul_up(g1 / (1.0 - g1), inflate(float(diag.sum()), n + 2), 1.0 + 4 * U)
    needed = add_up(
        delta,
        mul_up(2.0 * U, float(np.abs(diag).max()) + c),
        form_err,
        mul_up(8.0 * n, add_up(2.0 * (n + 2), float(diag.max())), ETA),
    )
    return c > needed


def proven_rho(A, lo, hi, wl, rho, lam, n0, dim, sizes: list[int], bumps: tuple[float, ...], floor: float = 0.0
               ) -> float | None:
    """The first ``rho (1 + b) + b floor`` over ``bumps`` that ``verify_multipliers`` accepts with multipliers
    ``lam`` (its ``sqrt_up`` is then a certified bound), or None. A solver's rho sits on the boundary
    of the feasible set, where rounding can tip the proof: raising it a little is always sound."""
    for bump in bumps:
        trial = rho * (1.0 + bump) + bump * floor
        if verify_multipliers(A, lo, hi, wl, trial, lam, n0, dim, sizes) and math.isfinite(sqrt_up(trial)):
            return trial
    return None


def snap_outwards(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round the slope intervals outwards to a grid of 2^-40 max(1, max|slope|) (exact, sound)."""
    top = max(1.0, float(np.abs(lo).max(initial=0.0)), float(np.abs(hi).max(initial=0.0)))
    step = math.ldexp(1.0, math.frexp(top)[1] - 40)
    return np.floor(lo / step) * step, np.ceil(hi / step) * step


def layer_sizes(view: ChainView) -> list[int]:
    return [w.shape[0] for w in view.weights[:-1]]


class _Barrier:
    """Primal barrier method for min rho s.t. -M(rho, lambda) > 0, lambda > 0 (see module docstring)."""

    def __init__(self, A, B, lo, hi, wl, n0, dim, sizes) -> None:
        self.A, self.n0, self.dim = A, n0, dim
        self.n = A.shape[0]
        self.sizes = sizes
        self.scale = max(float(np.linalg.norm(wl, 2)) ** 2, 1e-300)
        k = wl.shape[1]
        self.EL = np.zeros((dim, dim))
        self.EL[dim - k :, dim - k :] = (wl.T @ wl) / self.scale
        self.lo, self.hi = lo, hi
        self.c = ((2 * lo * hi, -(lo + hi)), (-(lo + hi), np.full(self.n, 2.0)))
        self.bidx = n0 + np.arange(self.n)

    def matrix(self, rho: float, lam: np.ndarray) -> np.ndarray:
        A, bidx = self.A, self.bidx
        X = (A.T * (2 * self.lo * self.hi * lam)) @ A
        cross = A.T * ((self.lo + self.hi) * lam)
        X[:, bidx] -= cross
        X[bidx, :] -= cross.T
        X[bidx, bidx] += 2 * lam
        X[np.arange(self.n0), np.arange(self.n0)] += rho
        X -= self.EL
        return X

    @staticmethod
    def _chol(X: np.ndarray) -> np.ndarray | None:
        """Cholesky factor, or None when X is not (numerically) positive definite or not finite.

        Non-finite entries are refused up front: LAPACK drivers handed NaN can
        report garbage or, for some routines, never return.
        """
        if not np.all(np.isfinite(X)):
            return None
        try:
            return np.linalg.cholesky(X)
        except np.linalg.LinAlgError:
            return None

    def start(self) -> tuple[float, np.ndarray] | None:
        from scipy.linalg.lapack import dpotrf

        bounds = np.cumsum([0, *self.sizes])
        layer_of = np.searchsorted(bounds[1:], np.arange(self.n), side="right")
        gam = np.ones(len(self.sizes))
        rho = 1.0
        for _ in range(2000):
            lam = gam[layer_of]
            X = self.matrix(rho, lam)
            if not np.all(np.isfinite(X)):
                return None
            _, info = dpotrf(X[self.n0 :, self.n0 :], lower=1)
            if info != 0:
                layer = int(layer_of[min(info - 1, self.n - 1)])
                gam[: layer + 1] *= 2.0  # the failing layer and every earlier one ...
                gam[:layer] *= 2.0  # ... the earlier ones twice (their coupling shrinks)
                if not np.all(np.isfinite(gam)) or gam.max() > 1e150:
                    return None
                continue
            _, info = dpotrf(X, lower=1)
            if info == 0:
                return rho, lam
            rho *= 4.0
            if rho > 1e150:
                return None
        return None

    def _phi(self, rho: float, lam: np.ndarray, t: float) -> float:
        if not (math.isfinite(rho) and np.all(np.isfinite(lam))) or np.any(lam <= 0):
            return INF
        L = self._chol(self.matrix(rho, lam))
        if L is None:
            return INF
        return t * rho - 2.0 * float(np.log(np.diagonal(L)).sum()) - float(np.log(lam).sum())

    def _backtrack(self, rho: float, lam: np.ndarray, t: float, dx: np.ndarray, dec: float) -> float | None:
        """The Armijo step along the Newton direction ``dx`` (halved until the barrier decreases enough);
        None when it would have to be below 1e-14 (the centering has stalled)."""
        f0 = self._phi(rho, lam, t)
        a = 1.0
        while self._phi(rho + a * dx[0], lam + a * dx[1:], t) > f0 - 0.25 * a * dec:
            a *= 0.5
            if a < 1e-14:
                return None
        return a

    def solve(self, deadline: float, tol: float = 1e-7) -> tuple[float, np.ndarray, int] | str:
        """(rho, lambda, Newton steps) in the caller's units, or why no answer came.

        Every way the iteration can break down numerically ends it with a
        reason instead of an exception or an endless loop: no strictly
        feasible start, a barrier matrix that stops being positive definite,
        a Newton system with non-finite entries (unbounded multipliers, e.g.
        a unit whose weights are all zero, drive it to overflow; handing such
        a system to ``lstsq`` can hang inside LAPACK), no convergence within
        ``MAX_CENTERINGS`` centerings, or the deadline.
        """
        import scipy.linalg as sl

        init = self.start()
        if init is None:
            return "barrier solver found no strictly feasible start"
        rho, lam = init
        A, n0, n, c, bidx = self.A, self.n0, self.n, self.c, self.bidx
        m = self.dim + n
        t = m / max(rho, 1e-12)
        steps = 0
        eye = np.eye(self.dim)
        for _ in range(MAX_CENTERINGS):
            for _ in range(80):
                if time.perf_counter() > deadline:
                    return "barrier solver ran out of time"
                L = self._chol(self.matrix(rho, lam))
                if L is None:
                    return "barrier matrix lost positive definiteness (numerical breakdown)"
                Y = sl.cho_solve((L, True), eye)
                YA = Y @ A.T
                K = ((A @ YA, YA[bidx, :].T), (YA[bidx, :], Y[np.ix_(bidx, bidx)]))
                diag = [[np.diagonal(K[p][q]) for q in range(2)] for p in range(2)]
                g_l = -(c[0][0] * diag[0][0] + 2 * c[0][1] * diag[0][1] + c[1][1] * diag[1][1]) - 1.0 / lam
                g_r = t - float(np.trace(Y[:n0, :n0]))
                H = np.diag(1.0 / lam**2)
                for p in range(2):
                    for q in range(2):
                        for r in range(2):
                            for s_ in range(2):
                                H += np.outer(c[p][q], c[r][s_]) * K[q][r] * K[p][s_]
                V = Y[:, :n0]
                G = (A @ V, V[bidx, :])
                h_rl = sum(c[p][q] * (G[q] * G[p]).sum(axis=1) for p in range(2) for q in range(2))
                HH = np.empty((n + 1, n + 1))
                HH[0, 0] = float((Y[:n0, :n0] ** 2).sum())
                HH[0, 1:] = h_rl
                HH[1:, 0] = h_rl
                HH[1:, 1:] = H
                grad = np.concatenate([[g_r], g_l])
                if not (np.all(np.isfinite(HH)) and np.all(np.isfinite(grad))):
                    return "non-finite Newton system (multipliers diverged: unbounded or singular SDP)"
                d = 1.0 / np.sqrt(np.maximum(np.diagonal(HH), 1e-300))  # Jacobi scaling: lambda spans decades
                scaled = HH * np.outer(d, d)
                if not np.all(np.isfinite(scaled)):
                    return "non-finite Newton system after scaling (singular barrier Hessian)"
                try:
                    dx = -d * sl.cho_solve(sl.cho_factor(scaled, check_finite=False), d * grad)
                except (np.linalg.LinAlgError, ValueError):
                    dx = -d * np.linalg.lstsq(scaled, d * grad, rcond=None)[0]
                dec = float(-grad @ dx)
                steps += 1
                final = m / t < tol * rho
                if not math.isfinite(dec) or dec / 2 < (1e-9 if final else 1e-3):
                    break
                a = self._backtrack(rho, lam, t, dx, dec)
                if a is None:
                    break
                rho += a * float(dx[0])
                lam = lam + a * dx[1:]
            if not (math.isfinite(rho) and np.all(np.isfinite(lam))):
                return "barrier iterates became non-finite"
            if m / t < tol * rho:
                return rho * self.scale, lam * self.scale, steps
            t *= 20.0
        return f"barrier solver did not converge in {MAX_CENTERINGS} centerings"


def _solve_cvxpy(A, B, lo, hi, wl, n0, dim, time_limit_s):
    """SCS through cvxpy (optional dependency): (rho, lambda) or a reason string."""
    try:
        import cvxpy as cp
    except ImportError:
        return "cvxpy is not installed (optional: pip install cvxpy)"
    import scipy.sparse as sp

    n = A.shape[0]
    scale = max(float(np.linalg.norm(wl, 2)) ** 2, 1e-300)
    rows, cols, vals = [], [], []
    for i in range(n):
        nz = np.flatnonzero(A[i])
        idx = np.concatenate([nz, [n0 + i]])
        vec = np.concatenate([A[i, nz], [0.0]])
        ev = np.zeros(idx.size)
        ev[-1] = 1.0
        Fi = 2 * lo[i] * hi[i] * np.outer(vec, vec) - (lo[i] + hi[i]) * (np.outer(vec, ev) + np.outer(ev, vec))
        Fi = Fi + 2 * np.outer(ev, ev)
        r, cc = np.meshgrid(idx, idx, indexing="ij")
        rows.append((r * dim + cc).ravel())
        cols.append(np.full(r.size, i))
        vals.append(Fi.ravel())
    F = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim * dim, n))
    E0 = np.zeros((dim, dim))
    E0[:n0, :n0] = np.eye(n0)
    EL = np.zeros((dim, dim))
    k = wl.shape[1]
    EL[dim - k :, dim - k :] = wl.T @ wl / scale
    lam = cp.Variable(n, nonneg=True)
    rho = cp.Variable(nonneg=True)
    X = cp.reshape(F @ lam, (dim, dim), order="C") + rho * E0 - EL
    problem = cp.Problem(cp.Minimize(rho), [(X + X.T) / 2 >> 1e-7 * np.eye(dim)])
    if "SCS" not in cp.installed_solvers():
        return "no SCS solver for cvxpy"
    try:
        problem.solve(solver="SCS", time_limit_secs=time_limit_s, eps_abs=1e-6, eps_rel=1e-6)
    except Exception as exc:  # solver failure is reported, never raised
        return f"SCS: {exc}"
    if rho.value is None or lam.value is None:
        return f"SDP not solved ({problem.status})"
    return float(rho.value) * scale, np.asarray(lam.value, dtype=np.float64) * scale


def _multiplier_candidates(lam: np.ndarray) -> list[np.ndarray]:
    """The solver's multipliers, then the same with runaway entries capped.

    A dead neuron (incoming and outgoing weights ~0) leaves its multiplier
    unconstrained, and the barrier's log-det term drives it to ~1e29: the
    LMI then holds in exact arithmetic but its rounding-error bound, which
    scales with the matrix's entries, swamps the verification. Any
    non-negative multipliers are valid for the proof, so capping those
    entries at a multiple of the median is a legitimate second try (seen on
    trained ReLU nets, whose slope interval [0, 1] gives a multiplier no
    curvature term to pin it).
    """
    positive = lam[lam > 0]
    if positive.size == 0:
        return [lam]
    median = float(np.median(positive))
    # How large a capped multiplier must stay depends on the net (1e2 x median sufficed on a
    # circle ReLU net, a 1-Lipschitz ReLU net needed 1e5 x), so a decade ladder is tried;
    # each try is one small Cholesky, and only runs when the first proof failed.
    caps = [10.0**k * median for k in range(2, 9)]
    return [lam] + [np.minimum(lam, cap) for cap in caps if float(lam.max()) > cap]


def _constant_reason(view: ChainView) -> str | None:
    """Why LipSDP has nothing to add when some weight matrix is entirely zero (else None).

    The chain then factors through the zero map, so the network is constant and
    its Lipschitz constant is exactly 0, which the closed-form bounds already
    certify; the SDP itself would be degenerate (free multipliers, rho -> 0).
    """
    for index, w in enumerate(view.weights):
        if not np.any(w):
            return f"weight {index + 1} is zero: the map is constant and the closed-form bounds are exact (0)"
    return None


def _solve_and_verify(view: ChainView, method: str, deadline: float) -> LipSDPResult:
    """Solve the SDP and prove its answer; every numerical failure becomes a reason, never an exception.

    This is the part that may run in a child process (see ``lipsdp_neuron``):
    its result must be picklable and it must not rely on locks or scoped
    settings taken in the caller (they are taken before the fork).
    ``deadline`` is a ``time.perf_counter`` value: the iterations stop there
    on their own, before the caller's hard wall-clock limit kills them.
    """
    try:
        with np.errstate(all="ignore"):  # overflow/NaN are detected explicitly and reported as reasons
            return _solve_and_verify_unguarded(view, method, deadline)
    except Exception as exc:  # any breakdown of the numerics ends this attempt, not the caller's job
        return LipSDPResult(None, None, f"numerical failure in the LipSDP solve ({type(exc).__name__}: {exc})")


def _solve_and_verify_unguarded(view: ChainView, method: str, deadline: float) -> LipSDPResult:
    A, B, lo, hi, n0, dim = program_structure(view)
    lo, hi = snap_outwards(lo, hi)
    wl = view.weights[-1]
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(wl)) and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return LipSDPResult(None, None, "non-finite weights or slopes")
    scale = max(float(np.linalg.norm(wl, 2)) ** 2, 1e-300)
    if not math.isfinite(scale):
        return LipSDPResult(None, None, "the last weight's norm overflows float64")
    solved = None
    reason = ""
    if method == "barrier":
        result = _Barrier(A, B, lo, hi, wl, n0, dim, layer_sizes(view)).solve(deadline)
        if isinstance(result, str):
            reason = result
        else:
            solved = result[0], result[1]
            reason = f"barrier solver, {result[2]} Newton steps"
    elif method != "cvxpy":
        return LipSDPResult(None, None, f"unknown LipSDP method {method!r}")
    if solved is None:
        left = deadline - time.perf_counter()
        if left < 0.5:
            out: tuple | str = "no time left for the cvxpy fallback"
        else:
            out = _solve_cvxpy(A, B, lo, hi, wl, n0, dim, left)
        if isinstance(out, str):
            return LipSDPResult(None, None, f"{reason}; {out}" if reason else out)
        solved = out
        reason = "cvxpy/SCS"
    rho_v, lam_v = float(solved[0]), np.asarray(solved[1], dtype=np.float64)
    if not (math.isfinite(rho_v) and np.all(np.isfinite(lam_v))):
        return LipSDPResult(None, None, f"solver returned non-finite rho or multipliers ({reason})")
    lam_v = np.maximum(lam_v, 0.0)
    solver_value = math.sqrt(max(rho_v, 0.0))
    for multipliers in _multiplier_candidates(lam_v):
        trial = proven_rho(A, lo, hi, wl, rho_v, multipliers, n0, dim, layer_sizes(view), RHO_BUMPS, floor=scale)
        if trial is not None:
            return LipSDPResult(sqrt_up(trial), solver_value, f"verified ({reason})")
    return LipSDPResult(None, solver_value, "solver answer could not be verified (not certified)")


def lipsdp_neuron(
    view: ChainView,
    *,
    time_limit_s: float = 120.0,
    max_hidden: int = MAX_HIDDEN,
    method: str = "barrier",
    isolate: bool = True,
) -> LipSDPResult:
    """Verified LipSDP-Neuron bound of the chain (without its opaque prefix factor).

    ``method``: ``"barrier"`` (default: the structured barrier solver, numpy
    only, cvxpy/SCS as fallback when it fails) or ``"cvxpy"``.

    This never raises for numerical reasons and never outlives its time
    limit: LipSDP is an optional refinement of bounds that are already
    certified, so a singular system, a LinAlgError, non-finite multipliers, no
    convergence or any other exception inside the solve ends the attempt with
    ``certified=None`` and a reason (which ``certify_global`` records under
    ``skipped``). With ``isolate`` (the default) the solve runs in a forked
    child killed when ``time_limit_s`` of wall-clock time have passed,
    because a single LAPACK call can block far longer than any cooperative
    deadline check allows (see ``_isolated.py``); the fork costs milliseconds.

    A network without hidden layers is an affine map whose exact constant the
    closed-form bounds already give (the proven norm of its one matrix), so
    LipSDP is skipped for it with :data:`NO_HIDDEN_REASON`.
    """
    from lipspline.certificates._blas import single_threaded_blas

    t0 = time.perf_counter()
    if not view.activations:
        return LipSDPResult(None, None, NO_HIDDEN_REASON)
    if not view.elementwise_only:
        return LipSDPResult(None, None, "LipSDP-Neuron needs element-wise activations (GroupSort is not)")
    if view.hidden_units > max_hidden:
        return LipSDPResult(None, None, f"{view.hidden_units} hidden units > limit {max_hidden} for LipSDP-Neuron")
    constant = _constant_reason(view)
    if constant is not None:
        return LipSDPResult(None, None, constant)
    limit = float(time_limit_s)
    if not limit >= 0.0:  # negative or NaN: no time at all
        limit = 0.0
    soft_deadline = t0 + SOLVER_SHARE * limit
    # scoped settings (one BLAS thread) are entered here, before any fork: the child inherits them
    with single_threaded_blas():
        if not isolate:
            result = _solve_and_verify(view, method, soft_deadline)
        else:
            try:
                left = limit - (time.perf_counter() - t0)
                result = run_with_deadline(_solve_and_verify, view, method, soft_deadline, time_limit_s=left)
            except DeadlineExceededError:
                result = LipSDPResult(None, None, f"LipSDP ran past {limit:g} s wall clock: solver process killed")
            except IsolatedFailureError as exc:
                result = LipSDPResult(None, None, f"LipSDP solver process failed ({exc})")
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["LipSDPResult", "lipsdp_neuron", "MAX_HIDDEN", "NO_HIDDEN_REASON", "INF"]
