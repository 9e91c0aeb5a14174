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
so sqrt(rho) is an l2 Lipschitz bound. The SDP minimises rho (solved by
cvxpy with the open-source Clarabel or SCS; cvxpy is optional and imported
lazily). A solver returns an *approximate* point, so before sqrt(rho) is
called certified we clip lambda to >= 0, form ``X = -M`` in float64 with an
entry-wise rounding bound, and prove ``X >= 0`` with the same Cholesky
backward-error argument as ``spectral.py`` (raising rho slightly if needed).
The SDP is solved with a small margin ``-M >= tau I`` so that solver
inaccuracy does not make the verification fail.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from lipspline.certificates._fp import ETA, INF, U, add_up, frobenius_upper, gamma, inflate, mul_up, sqrt_up
from lipspline.certificates.global_bounds import mid_radius  # noqa: F401 - same slope conventions
from lipspline.certificates.spectral import _cholesky_completes
from lipspline.certificates.view import ChainView

#: LipSDP is refused above this many hidden units (the SDP grows as their square)
MAX_HIDDEN = 200


@dataclass
class LipSDPResult:
    certified: float | None
    solver_value: float | None
    reason: str
    seconds: float = 0.0


def _structure(view: ChainView) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
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


def _form(A, B, lo, hi, wl, rho, lam, n0, dim, absolute: bool = False) -> np.ndarray:  # noqa: ANN001
    """-M(rho, lambda) (or the same formula on absolute values, for the rounding bound)."""
    f = np.abs if absolute else (lambda x: x)
    c_ab = f(lo * hi * lam)
    c_s = f((lo + hi) * lam)
    Aa = f(A)
    X = 2.0 * (Aa.T * c_ab) @ Aa + 2.0 * (B.T * f(lam)) @ B
    cross = (Aa.T * c_s) @ B
    X = X + cross + cross.T if absolute else X - cross - cross.T
    X[:n0, :n0] += rho * np.eye(n0)
    gl = f(wl).T @ f(wl)
    k = wl.shape[1]
    if absolute:
        X[dim - k :, dim - k :] += gl
    else:
        X[dim - k :, dim - k :] -= gl
    return X


def _verify(A, B, lo, hi, wl, rho, lam, n0, dim) -> bool:  # noqa: ANN001
    """Proof that -M(rho, lam) is positive semidefinite (lam >= 0 required)."""
    X = _form(A, B, lo, hi, wl, rho, lam, n0, dim)
    Xabs = _form(A, B, lo, hi, wl, rho, lam, n0, dim, absolute=True)
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
    if not _cholesky_completes(Y.copy()):
        return False
    delta = mul_up(g1 / (1.0 - g1), inflate(float(diag.sum()), n + 2), 1.0 + 4 * U)
    needed = add_up(delta, mul_up(2.0 * U, float(np.abs(diag).max()) + c), form_err,
                    mul_up(8.0 * n, add_up(2.0 * (n + 2), float(diag.max())), ETA))
    return c > needed


def lipsdp_neuron(view: ChainView, *, time_limit_s: float = 120.0, max_hidden: int = MAX_HIDDEN) -> LipSDPResult:
    """Verified LipSDP-Neuron bound of the chain (without its opaque prefix factor)."""
    t0 = time.perf_counter()
    if not view.elementwise_only:
        return LipSDPResult(None, None, "LipSDP-Neuron needs element-wise activations (GroupSort is not)")
    if view.hidden_units > max_hidden:
        return LipSDPResult(None, None, f"{view.hidden_units} hidden units > limit {max_hidden} for LipSDP-Neuron")
    try:
        import cvxpy as cp
    except ImportError:
        return LipSDPResult(None, None, "cvxpy is not installed (optional: pip install cvxpy)")
    A, B, lo, hi, n0, dim = _structure(view)
    wl = view.weights[-1]
    scale = max(float(np.linalg.norm(wl, 2)) ** 2, 1e-300)
    tau = 1e-7 * scale
    lam = cp.Variable(A.shape[0], nonneg=True)
    rho = cp.Variable(nonneg=True)
    c_ab = lo * hi
    c_s = lo + hi
    Q = (
        -2 * A.T @ cp.diag(cp.multiply(c_ab, lam)) @ A
        + A.T @ cp.diag(cp.multiply(c_s, lam)) @ B
        + B.T @ cp.diag(cp.multiply(c_s, lam)) @ A
        - 2 * B.T @ cp.diag(lam) @ B
    )
    E0 = np.zeros((dim, dim))
    E0[:n0, :n0] = np.eye(n0)
    Elast = np.zeros((dim, dim))
    k = wl.shape[1]
    Elast[dim - k :, dim - k :] = wl.T @ wl
    M = Q - rho * E0 + Elast
    constraint = [(-(M + M.T) / 2) >> tau * np.eye(dim)]
    problem = cp.Problem(cp.Minimize(rho), constraint)
    solved = False
    last_error = ""
    for solver, opts in (("CLARABEL", {"time_limit": time_limit_s}), ("SCS", {"time_limit_secs": time_limit_s})):
        if solver not in cp.installed_solvers():
            continue
        try:
            problem.solve(solver=solver, **opts)
        except Exception as exc:  # solver failure is reported, never raised
            last_error = f"{solver}: {exc}"
            continue
        if rho.value is not None and lam.value is not None:
            solved = True
            break
    elapsed = time.perf_counter() - t0
    if not solved:
        return LipSDPResult(None, None, f"SDP not solved ({last_error or problem.status})", elapsed)
    rho_v = float(rho.value)
    lam_v = np.maximum(np.asarray(lam.value, dtype=np.float64), 0.0)
    solver_value = math.sqrt(max(rho_v, 0.0))
    for bump in (1e-9, 1e-7, 1e-5, 1e-3, 1e-2):
        trial = rho_v * (1 + bump) + bump * scale
        if _verify(A, B, lo, hi, wl, trial, lam_v, n0, dim):
            return LipSDPResult(sqrt_up(trial), solver_value, "verified", time.perf_counter() - t0)
    return LipSDPResult(None, solver_value, "solver answer could not be verified (not certified)", elapsed)


__all__ = ["LipSDPResult", "lipsdp_neuron", "MAX_HIDDEN", "INF"]
