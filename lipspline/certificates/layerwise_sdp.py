"""``lipsdp_layerwise``: LipSDP-Neuron multipliers chosen one layer at a time, then proven on the whole SDP.

LipSDP-Neuron (``lipsdp.py``) finds the best multipliers of one large semidefinite program; its
barrier solver takes a second on a 16-64-64-64-4 network. The closed-form bounds take milliseconds
but stop at about 1.4x its value on random spline networks, and no scaling search of the LipLT family
gets below that (``docs/benchmarks.md``). This bound sits between: a *feasible point* of the same
program, built from one small program per hidden layer, then certified by the same floating-point
proof as LipSDP's own answer (``lipsdp.proven_rho``). The idea of splitting LipSDP into per-layer
problems is Xu and Sivaranjani's, *ECLipsE: Efficient Compositional Lipschitz Constant Estimation
for Deep Neural Networks* (NeurIPS 2024); they eliminate from the input side with slopes in
[0, 1]. Here the elimination runs from the output, which keeps the a*b term of non-monotone
splines (slopes of both signs, a*b < 0) exact: it never needs a multiplier that is not chosen yet.

The program. Write the chain as ``z_k = s_k(W_{k-1} z_{k-1})`` for hidden layers k = 1..l and the
output ``W_l z_l``; unit i of layer k has slopes in [a_i, b_i]; ``P_k = diag(a b)``,
``M_k = diag((a + b) / 2)``. For multipliers ``Lam_k >= 0`` (diagonal) the quadratic form

    rho |dz_0|^2 - |W_l dz_l|^2 - sum_k sum_i Lam_k,i (dz_k,i - a_i dv_k,i) (b_i dv_k,i - dz_k,i)

(``dv_k = W_{k-1} dz_{k-1}``) is block tridiagonal in (dz_0, ..., dz_l). Eliminating the blocks
from the last one (Schur complements), it is positive semidefinite exactly when, with ``G_{l+1} = I``,

    Y_k = Lam_k - H_k > 0,  H_k = W_k^T G_{k+1} W_k,  G_k = Lam_k M_k Y_k^-1 M_k Lam_k - Lam_k P_k

for k = l, ..., 1, and ``rho >= lambda_max(W_0^T G_1 W_0)``; then sqrt(rho) bounds the Lipschitz
constant (every QC term is non-negative on the network's increments). Each ``Lam_k`` is chosen
greedily: the one that makes the next layer's ``W_{k-1}^T G_k W_{k-1}`` smallest in spectral norm,

    min s  s.t.  [[s I + W^T Lam P W,  W^T Lam M], [M Lam W,  Lam - H]] >= 0,  Lam >= 0   (W = W_{k-1}),

an SDP with one variable per unit of the layer and a matrix of size (inputs + units) of the layer,
linear in (s, Lam) by the Schur complement; for k = 1 its value is rho itself. A greedy choice is
not the joint optimum, but on random 16-64-64-64-4 spline networks it lands within 1.1x of it.

The stage solver is a primal barrier method (as ``lipsdp._Barrier``): damped Newton steps on
``t s - log det X - sum log Lam``, with the gradient and Hessian from the blocks of ``X^-1`` (every
constraint matrix has rank 2: a unit's weight row and its own coordinate), a few centerings and a
fixed budget of Newton steps per stage (``STAGE_NEWTON_STEPS``). A loose stage costs little: the
answer is only a candidate; its value is what the proof certifies.

The proof. The chain's multipliers (``Lam / 2`` in ``lipsdp``'s scaling) and ``rho`` (slightly raised
until it passes) go to ``lipsdp.proven_rho``, which forms the full LipSDP matrix in float64 with an
entry-wise rounding bound and proves it positive semidefinite by a Cholesky factorisation with its
backward-error bound, on slope intervals rounded outwards. Nothing the stages compute needs to be
exact. Anything that goes wrong numerically ends the attempt with a reason (``skipped``), never an
exception: the closed-form bounds are already certified.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg.lapack import dposv, dpotrf, dpotri

from lipspline.certificates._fp import mul_up, sqrt_up
from lipspline.certificates.analysis import EXTRA_BOUNDS, Analysis
from lipspline.certificates.lipsdp import layer_sizes, program_structure, proven_rho, snap_outwards
from lipspline.certificates.view import ChainView

#: the bound runs when inputs + hidden units stay within this (the proof factors a matrix of that size;
#: every stage one of at most the size of its layer and the layer before)
LAYERWISE_MAX_DIM = 400
#: Newton steps per stage. On random 16-64-64-64-4 spline nets (two draws, 3 seeds each) 8 steps gave
#: 1.09-1.16x LipSDP, 10 steps 1.07-1.10x, 20 or 40 no better than 1.06-1.10x; each step ~0.5 ms
#: (the stage is a heuristic choice of multipliers, the proof certifies whatever it returns)
STAGE_NEWTON_STEPS = 10
#: with one hidden layer the one stage *is* LipSDP-Neuron (its value is rho): more steps pay there
#: (random 30-64-3 spline nets: 10 steps 1.01-1.02x LipSDP, 25 steps 1.000-1.006x, 40 steps 1.000x)
SINGLE_STAGE_NEWTON_STEPS = 40
#: the stage's barrier stops once its duality gap is below this share of its value ...
STAGE_GAP = 0.05
#: ... it starts at a gap of this share of the starting value (which is several times the optimum:
#: 0.1 or 0.3 left the stage far from its optimum after 10 steps, 0.01 was no better than this) ...
STAGE_START_GAP = 0.03
#: ... and its parameter grows this much each time a point is roughly centred
GROWTH = 20.0
#: the first trial step is this many damped Newton steps (then halved until accepted)
STEP_REACH = 2.0
#: relative raises of rho tried by the proof (the stages solve with unrounded slope intervals)
RHO_BUMPS = (1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 3e-2)


class _Stage:
    """min s s.t. X(s, Lam) > 0, Lam > 0 for one hidden layer (see the module docstring)."""

    def __init__(self, w: np.ndarray, h: np.ndarray, p: np.ndarray, m: np.ndarray) -> None:
        self.w, self.p, self.m = w, p, m
        self.units, self.inputs = w.shape
        self.h = h
        # index arrays and the lower-triangle mask every Newton step and trial point reuses (building
        # them per call was about a sixth of the stage's time: numpy's tril makes its mask each time)
        size = self.inputs + self.units
        self._lower = np.tri(size, dtype=bool)
        self._input_diagonal = np.arange(self.inputs)
        self._unit_diagonal = np.arange(self.inputs, size)
        self._lam_diagonal = np.arange(1, self.units + 1)

    def matrix(self, s: float, lam: np.ndarray) -> np.ndarray:
        n, w = self.inputs, self.w
        x = np.empty((n + self.units, n + self.units))
        x[:n, :n] = (w.T * (lam * self.p)) @ w
        x[:n, n:] = w.T * (lam * self.m)
        x[n:, :n] = x[:n, n:].T
        x[n:, n:] = -self.h
        x[self._input_diagonal, self._input_diagonal] += s
        x[self._unit_diagonal, self._unit_diagonal] += lam
        return x

    def outgoing(self, lam: np.ndarray) -> np.ndarray:
        """G of this layer for multipliers ``lam``: what the layer below sees through W^T G W."""
        y = np.diag(lam) - self.h
        lm = lam * self.m
        return (lm[:, None] * np.linalg.solve(y, np.diag(lm))) - np.diag(lam * self.p)

    def start(self) -> tuple[float, np.ndarray]:
        """A strictly feasible point: Lam = 2 lambda_max(H), s 1.5x the smallest it allows."""
        top = max(float(np.linalg.eigvalsh(self.h).max()), 1e-300)
        lam = np.full(self.units, 2.0 * top)
        need = float(np.linalg.eigvalsh(self.w.T @ self.outgoing(lam) @ self.w).max())
        return 1.5 * max(need, 0.0) + 1e-3 * top, lam

    def _newton(self, s: float, lam: np.ndarray, t: float, factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of t s - log det X - sum log Lam at (s, Lam) (``factor``: X's Cholesky)."""
        n, w, p, m = self.inputs, self.w, self.p, self.m
        inverse, info = dpotri(factor, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("stage matrix inverse failed")
        inverse = np.where(self._lower, inverse, inverse.T)  # dpotri fills the lower triangle: mirror it
        sa, sb, sc = inverse[:n, :n], inverse[n:, :n].T, inverse[n:, n:]
        a = sa @ w.T
        p11, p12 = w @ a, w @ sb
        p21 = p12.T
        gradient = np.empty(self.units + 1)
        gradient[0] = t - np.trace(sa)
        gradient[1:] = -(p * np.diagonal(p11) + 2.0 * m * np.diagonal(p12) + np.diagonal(sc)) - 1.0 / lam
        # tr(X^-1 F_i X^-1 F_j) for F_i = U_i C_i U_i^T, C_i = [[p_i, m_i], [m_i, 1]]: with the 2x2 blocks
        # [[p11, p12], [p21, sc]]_ij of U^T X^-1 U (p11, sc symmetric, p21 = p12^T) it is
        # (C_i Q_ij C_j Q_ji)'s trace = r * r^T + q * v^T + v * q^T + u * u^T element-wise, where the rows
        # of r, q, v, u are row i of p11 p_i + p21 m_i, p12 p_i + sc m_i, p11 m_i + p21, p12 m_i + sc
        pi, mi = p[:, None], m[:, None]
        r = pi * p11 + mi * p21
        q = pi * p12 + mi * sc
        v = mi * p11 + p21
        u = mi * p12 + sc
        qv = q * v.T
        hessian = np.empty((self.units + 1, self.units + 1))
        hessian[1:, 1:] = (r * r.T + qv) + (qv.T + u * u.T)
        hessian[self._lam_diagonal, self._lam_diagonal] += 1.0 / lam**2
        cross = p * (a * a).sum(0) + 2.0 * m * (a * sb).sum(0) + (sb * sb).sum(0)
        hessian[0, 0] = float((sa * sa).sum())
        hessian[0, 1:] = hessian[1:, 0] = cross
        return gradient, hessian

    def _barrier(self, s: float, lam: np.ndarray, t: float) -> tuple[float, np.ndarray | None]:
        if not (np.all(lam > 0) and math.isfinite(s)):
            return math.inf, None
        # X is symmetric: its transpose is the same matrix in Fortran order, which LAPACK takes uncopied
        factor, info = dpotrf(self.matrix(s, lam).T, lower=1)
        if info != 0:
            return math.inf, None
        return t * s - 2.0 * float(np.log(np.diagonal(factor)).sum()) - float(np.log(lam).sum()), factor

    def solve(self, steps: int | None = None) -> tuple[float, np.ndarray]:
        """(s, Lam) after at most ``steps`` Newton steps (``STAGE_NEWTON_STEPS``); raises when no feasible
        start exists."""
        steps = STAGE_NEWTON_STEPS if steps is None else steps
        s, lam = self.start()
        size = self.inputs + 2 * self.units  # the barrier's parameter: matrix size + one per Lam
        t = size / (STAGE_START_GAP * s)
        value, factor = self._barrier(s, lam, t)
        if factor is None:
            raise np.linalg.LinAlgError("no strictly feasible start")
        taken = 0
        while taken < steps:
            gradient, hessian = self._newton(s, lam, t, factor)
            _, direction, info = dposv(hessian, -gradient, lower=1)  # the Hessian is positive definite
            if info != 0:
                raise np.linalg.LinAlgError("Newton system is not positive definite")
            decrement = float(-gradient @ direction)
            taken += 1
            if not math.isfinite(decrement):
                raise np.linalg.LinAlgError("Newton system breaks down")
            if decrement > 1e-12 * max(1.0, abs(value)):  # else centred to rounding (a tiny negative value too)
                # the damped step 1 / (1 + sqrt(decrement)) keeps a self-concordant barrier feasible and
                # decreasing; a few times it is usually still accepted, and saves most of the halvings
                step = min(1.0, STEP_REACH / (1.0 + math.sqrt(decrement)))
                while True:
                    trial_s, trial_lam = s + step * direction[0], lam + step * direction[1:]
                    trial, trial_factor = self._barrier(trial_s, trial_lam, t)
                    if trial_factor is not None and trial <= value - 0.25 * step * decrement:
                        break
                    step *= 0.5
                    if step < 1e-12:
                        return s, lam  # the centering stalled: the last point is feasible
                s, lam, factor, value = trial_s, trial_lam, trial_factor, trial
            if decrement < 0.5:  # roughly centred: move along the path
                if size / t < STAGE_GAP * s:
                    break
                raised = max(GROWTH * t, size / (STAGE_GAP * s))
                value += (raised - t) * s  # the barrier at the same point, for the new t
                t = raised
        return s, lam


def layerwise_multipliers(weights: list[np.ndarray], slopes: list[tuple[np.ndarray, np.ndarray]]
                          ) -> tuple[float, list[np.ndarray]]:
    """(rho, [Lam_1 .. Lam_l]) of the greedy elimination from the output (not yet proven)."""
    g = np.eye(weights[-1].shape[0])
    multipliers: list[np.ndarray] = [np.empty(0)] * (len(weights) - 1)
    for k in range(len(weights) - 1, 0, -1):
        h = weights[k].T @ g @ weights[k]
        h = (h + h.T) / 2.0
        lo, hi = slopes[k - 1]
        stage = _Stage(weights[k - 1], h, lo * hi, (lo + hi) / 2.0)
        _, lam = stage.solve(SINGLE_STAGE_NEWTON_STEPS if len(weights) == 2 else None)
        multipliers[k - 1] = lam
        g = stage.outgoing(lam)
        g = (g + g.T) / 2.0
    rho = float(np.linalg.eigvalsh(weights[0].T @ g @ weights[0]).max())
    return rho, multipliers


def layerwise_bound(analysis: Analysis) -> tuple[float | None, str]:
    """The proven ``lipsdp_layerwise`` bound of an analysed network, or None and why (``EXTRA_BOUNDS``)."""
    view = analysis.view
    if not view.activations or not view.elementwise_only:
        return None, "needs hidden layers with element-wise activations (GroupSort is not)"
    dim = view.weights[0].shape[1] + view.hidden_units
    if dim > LAYERWISE_MAX_DIM:
        return None, f"inputs + hidden units = {dim} > {LAYERWISE_MAX_DIM}: the proof's matrix is too large"
    if any(not np.any(w) for w in view.weights):
        return None, "a weight is zero: the map is constant and the closed-form bounds are exact (0)"
    try:
        with np.errstate(all="ignore"):
            return _proven(view)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError, MemoryError) as exc:
        return None, f"layer-wise LipSDP failed ({type(exc).__name__}: {exc})"


def _proven(view: ChainView) -> tuple[float | None, str]:
    weights = [np.asarray(w, dtype=np.float64) for w in view.weights]
    slopes = [a.slope_interval() for a in view.activations]
    if not all(np.all(np.isfinite(w)) for w in weights) or not all(np.all(np.isfinite(s)) for lh in slopes for s in lh):
        return None, "non-finite weights or slopes"
    # the program is homogeneous: solve on an output weight of size ~1, scaled by a power of two so
    # that the scaled matrix is exactly W_l / scale (the proof is about the numbers it is given)
    scale = math.ldexp(1.0, math.frexp(float(np.abs(weights[-1]).max()))[1])
    if not np.array_equal(weights[-1] / scale * scale, weights[-1]):  # an entry under- or overflowed
        scale = 1.0
    weights[-1] = weights[-1] / scale
    rho, multipliers = layerwise_multipliers(weights, slopes)
    if not (math.isfinite(rho) and rho > 0):
        return None, "the layer-wise program returned no finite rho"
    A, _, lo, hi, n0, dim = program_structure(view)
    lo, hi = snap_outwards(lo, hi)
    lam = np.maximum(np.concatenate(multipliers), 0.0) / 2.0  # lipsdp's QC carries a factor 2
    trial = proven_rho(A, lo, hi, weights[-1], rho, lam, n0, dim, layer_sizes(view), RHO_BUMPS)
    if trial is None:
        return None, "the layer-wise multipliers could not be proven (not certified)"
    # |W_l dz| = scale |wl dz|: the bound of the unscaled chain is scale * sqrt(rho)
    return mul_up(view.prefix_factor, scale, sqrt_up(trial)), "verified"


EXTRA_BOUNDS["lipsdp_layerwise"] = layerwise_bound
