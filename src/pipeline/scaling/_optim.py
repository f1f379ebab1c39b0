"""Batched L-BFGS for many small, independent, smooth minimisation problems.

The bootstrap of a scaling-law fit is thousands of independent 2- to 5-parameter
problems (resample x start). Looping ``scipy.optimize.minimize`` over them costs
milliseconds of Python overhead each; here every problem keeps its own L-BFGS
memory, its own Armijo backtracking line search and its own stopping test, while
the objective is evaluated for all active problems in one NumPy call.

The method is the unbounded L-BFGS two-loop recursion (what scipy's L-BFGS-B does
when no bound is active); ``tests/scaling/test_optim.py`` checks that it reaches
the same optimum as ``scipy.optimize.minimize(method="L-BFGS-B")``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

# Status codes of a problem after optimisation.
CONVERGED_GRAD = 0  # max |grad| <= gtol * max(1, |f|)
CONVERGED_F = 1  # relative decrease of f below ftol
MAX_ITER = 2  # iteration budget exhausted: not converged
LINE_SEARCH_FAILED = 3  # no descent along steepest descent either: not converged
NON_FINITE = 4  # objective or gradient not finite at the start: not converged

STATUS_NAMES = {
    CONVERGED_GRAD: "converged (gradient)",
    CONVERGED_F: "converged (relative f change)",
    MAX_ITER: "max iterations",
    LINE_SEARCH_FAILED: "line search failed",
    NON_FINITE: "non-finite objective",
}

Objective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class BatchResult:
    """Outcome of :func:`lbfgs_batch`.

    Attributes
    ----------
    x : float64 [B, P]
        Final parameters of every problem.
    fun : float64 [B]
        Objective at ``x``.
    status : int [B]
        One of the module's status codes.
    n_iter : int [B]
        Iterations used.
    """

    x: np.ndarray
    fun: np.ndarray
    status: np.ndarray
    n_iter: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        """bool [B]: problems that met a convergence test."""
        return self.status <= CONVERGED_F


def lbfgs_batch(
    fun: Objective,
    x0: np.ndarray,
    *,
    memory: int = 10,
    max_iter: int = 500,
    gtol: float = 1e-9,
    ftol: float = 1e-10,
    max_halvings: int = 50,
    c1: float = 1e-4,
) -> BatchResult:
    """Minimise B independent problems with L-BFGS, all at once.

    Parameters
    ----------
    fun : callable
        ``fun(x, rows) -> (f, g)`` with ``x`` float64 [K, P] the parameters of the
        problems ``rows`` (int [K], indices into the batch); returns the objective
        f [K] and its gradient g [K, P].
    x0 : float64 [B, P]
        Starting points.
    memory : int
        Number of curvature pairs kept per problem.
    max_iter : int
        Iteration budget per problem.
    gtol, ftol : float
        Convergence when ``max|g| <= gtol * max(1, |f|)`` or when an accepted step
        decreases f by less than ``ftol * max(|f|, 1e-300)`` (scale-free, so that the
        test does not depend on whether the objective is a sum or a mean).
    max_halvings : int
        Backtracking steps before a line search counts as failed.
    c1 : float
        Armijo sufficient-decrease constant.

    Returns
    -------
    BatchResult
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"x0 must have shape [B, P], got {x.shape}")
    n_prob, n_par = x.shape
    all_rows = np.arange(n_prob)
    f, g = fun(x, all_rows)
    status = np.full(n_prob, -1, dtype=np.int64)
    n_iter = np.zeros(n_prob, dtype=np.int64)
    bad = ~(np.isfinite(f) & np.all(np.isfinite(g), axis=1))
    status[bad] = NON_FINITE

    s_mem = np.zeros((n_prob, memory, n_par))
    y_mem = np.zeros((n_prob, memory, n_par))
    rho = np.zeros((n_prob, memory))  # 0 marks an empty slot
    head = np.zeros(n_prob, dtype=np.int64)  # next slot to write (ring buffer)

    gmax = np.max(np.abs(g), axis=1)
    done = gmax <= gtol * np.maximum(1.0, np.abs(f))
    status[done & (status < 0)] = CONVERGED_GRAD

    for _ in range(max_iter):
        act = np.flatnonzero(status < 0)
        if act.size == 0:
            break
        xa, fa, ga = x[act], f[act], g[act]
        d = -_two_loop(ga, s_mem[act], y_mem[act], rho[act], head[act])
        slope = np.einsum("kp,kp->k", d, ga)
        # Not a descent direction (numerical trouble): forget memory, use -g.
        reset = ~(slope < 0)
        if np.any(reset):
            rho[act[reset]] = 0.0
            d[reset] = -ga[reset]
            slope[reset] = -np.einsum("kp,kp->k", ga[reset], ga[reset])
        has_mem = np.any(rho[act] != 0.0, axis=1)
        step = np.where(has_mem, 1.0, np.minimum(1.0, 1.0 / np.sqrt(-slope)))

        # Vectorised Armijo backtracking: every problem halves its own step.
        accepted = np.zeros(act.size, dtype=bool)
        f_new = np.empty(act.size)
        g_new = np.empty_like(ga)
        pending = np.arange(act.size)
        for _h in range(max_halvings):
            xt = xa[pending] + step[pending, None] * d[pending]
            ft, gt = fun(xt, act[pending])
            ok = (
                np.isfinite(ft)
                & np.all(np.isfinite(gt), axis=1)
                & (ft <= fa[pending] + c1 * step[pending] * slope[pending])
            )
            idx = pending[ok]
            accepted[idx] = True
            f_new[idx], g_new[idx] = ft[ok], gt[ok]
            pending = pending[~ok]
            if pending.size == 0:
                break
            step[pending] *= 0.5

        n_iter[act] += 1
        failed = ~accepted
        if np.any(failed):
            # With memory: retry next iteration from steepest descent. Without: give up.
            fa_idx = act[failed]
            retry = np.any(rho[fa_idx] != 0.0, axis=1)
            rho[fa_idx[retry]] = 0.0
            status[fa_idx[~retry]] = LINE_SEARCH_FAILED

        ok_idx = np.flatnonzero(accepted)
        if ok_idx.size == 0:
            continue
        rows = act[ok_idx]
        s = step[ok_idx, None] * d[ok_idx]
        yv = g_new[ok_idx] - ga[ok_idx]
        sy = np.einsum("kp,kp->k", s, yv)
        yy = np.einsum("kp,kp->k", yv, yv)
        store = (sy > 1e-12 * np.sqrt(np.einsum("kp,kp->k", s, s) * yy)) & (yy > 1e-200)
        sr = rows[store]
        slot = head[sr]
        s_mem[sr, slot] = s[store]
        y_mem[sr, slot] = yv[store]
        rho[sr, slot] = 1.0 / sy[store]
        head[sr] = (slot + 1) % memory

        f_old = f[rows]
        x[rows] = xa[ok_idx] + s
        f[rows] = f_new[ok_idx]
        g[rows] = g_new[ok_idx]
        conv_g = np.max(np.abs(g[rows]), axis=1) <= gtol * np.maximum(1.0, np.abs(f[rows]))
        conv_f = (f_old - f[rows]) <= ftol * np.maximum(np.abs(f_old), 1e-300)
        status[rows[conv_g]] = CONVERGED_GRAD
        status[rows[conv_f & ~conv_g]] = CONVERGED_F

    status[status < 0] = MAX_ITER
    return BatchResult(x=x, fun=f, status=status, n_iter=n_iter)


def _two_loop(
    g: np.ndarray, s_mem: np.ndarray, y_mem: np.ndarray, rho: np.ndarray, head: np.ndarray
) -> np.ndarray:
    """Apply the L-BFGS inverse-Hessian estimate to g [K, P], batched.

    Memories are ring buffers [K, m, P] whose newest slot is ``head - 1``. Empty
    slots have ``rho == 0`` and contribute nothing; the initial scaling is
    ``s.y / y.y`` of the newest pair (1 when the memory is empty).
    """
    k, m, _ = s_mem.shape
    # slots newest -> oldest, gathered once into contiguous arrays
    order = (head[:, None] - 1 - np.arange(m)[None, :]) % m  # [K, m]
    S = np.take_along_axis(s_mem, order[:, :, None], axis=1)
    Y = np.take_along_axis(y_mem, order[:, :, None], axis=1)
    R = np.take_along_axis(rho, order, axis=1)
    q = g.copy()
    alphas = np.empty((k, m))
    for j in range(m):
        a = R[:, j] * np.einsum("kp,kp->k", S[:, j], q)
        alphas[:, j] = a
        q -= a[:, None] * Y[:, j]
    denom = R[:, 0] * np.einsum("kp,kp->k", Y[:, 0], Y[:, 0])  # y.y / s.y; 0 if empty
    gamma = np.divide(1.0, denom, out=np.ones_like(denom), where=denom > 1e-300)
    q *= gamma[:, None]
    for j in range(m - 1, -1, -1):
        b = R[:, j] * np.einsum("kp,kp->k", Y[:, j], q)
        q += (alphas[:, j] - b)[:, None] * S[:, j]
    return q
