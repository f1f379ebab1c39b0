"""Robust power-law fits with bootstrap intervals: eq. (4), eq. (5) and eq. (7).

Fitting follows the Chinchilla replication (Besiroglu et al. 2024): parameters in
log space, predictions by log-sum-exp, Huber loss (delta = 1e-3) on the residuals
of log loss, L-BFGS started from a grid of points, best converged result kept.

* Objective. ``sum_i w_i * huber_delta(log L_pred_i - log L_i)`` with the **sum**
  reduction over points (``w_i`` = 1 for the fit, the resampling multiplicity for
  a bootstrap). The optimiser minimises this sum divided by ``delta``, which has
  the same minimiser and keeps gradients O(1); its stopping tests are relative
  (see :func:`pipeline.scaling._optim.lbfgs_batch`), so they do not depend on the
  reduction.
* Starts. Every full-data fit runs L-BFGS from every point of the start grid.
  Each bootstrap resample is re-optimised from scratch: the objective of the
  resample is evaluated on the whole grid and L-BFGS runs from the ``top_k`` best
  grid points (a multi-start, never a warm start at the full-data optimum).
* Failures. A resample whose starts all fail to converge, or whose points cannot
  identify the law (e.g. a single distinct compute value), is counted in
  ``n_boot_failed`` with its reason in ``boot_failures``; intervals are
  percentiles over the successful resamples, and the count is part of the result.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import numpy as np
from scipy.stats import norm

from pipeline.scaling._optim import STATUS_NAMES, lbfgs_batch
from pipeline.scaling.identify import choose_e_mode, identify_power_law, identify_sum_law

logger = logging.getLogger(__name__)

HUBER_DELTA = 1e-3
REDUCTION = "sum"
#: L-BFGS problems x points evaluated at once (bounds memory: ~8 arrays of this many doubles)
_CHUNK_ELEMENTS = 1_500_000

SUM_LAW_PARAMS = ("E", "A", "B", "alpha", "beta")
_LOG_MAX = 700.0  # exp(700) ~ 1e304: larger log-space values overflow float64


# --------------------------------------------------------------------------- inputs


def _prefix(label: str | None) -> str:
    return f"{label}: " if label else ""


def _as_columns(label: str | None, what: str, min_points: int, **cols) -> dict[str, np.ndarray]:
    """Validate equal-length positive finite 1-D columns; raise ValueError naming the problem."""
    p = _prefix(label)
    out = {}
    for name, values in cols.items():
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        out[name] = arr
    lengths = {name: arr.size for name, arr in out.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{p}{what}: columns have different lengths {lengths}")
    n = next(iter(lengths.values()))
    for name, arr in out.items():
        nan_rows = np.flatnonzero(~np.isfinite(arr))
        if nan_rows.size:
            raise ValueError(
                f"{p}{what}: {nan_rows.size} row(s) with NaN/inf in {name!r} "
                f"(rows {nan_rows[:10].tolist()}); drop or fix them before fitting"
            )
        bad = np.flatnonzero(arr <= 0)
        if bad.size:
            raise ValueError(
                f"{p}{what}: {bad.size} row(s) with non-positive {name!r} "
                f"(rows {bad[:10].tolist()}, e.g. {arr[bad[0]]!r}); a power law needs {name} > 0"
            )
    if n < min_points:
        raise ValueError(f"{p}{what}: needs at least {min_points} points, got {n}")
    return out


BOOTSTRAP_UNITS = ("run", "point", "run_point")


def group_codes(groups, n: int, label: str | None = None) -> tuple[np.ndarray, int]:
    """int [n] codes 0..R-1 of the independent unit of each point, and R.

    ``groups=None`` makes every point its own unit.
    """
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups).reshape(-1)
    if g.size != n:
        raise ValueError(f"{_prefix(label)}groups has {g.size} entries for {n} points")
    _, codes = np.unique(g.astype(str), return_inverse=True)
    return codes.astype(np.int64), int(codes.max()) + 1


def run_counts(n_runs: int, n_boot: int, seed: int) -> np.ndarray:
    """int [n_boot, n_runs]: multiplicities of n_runs units resampled with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs), size=n_boot)


def bootstrap_weights(
    groups, n: int, n_boot: int, seed: int, unit: str = "run", label: str | None = None
) -> np.ndarray:
    """float [n_boot, n]: multiplicity of each point in each bootstrap resample.

    Parameters
    ----------
    groups : array [n] or None
        The training pass (``run_id``) of each point; None: every point is its own.
    n, n_boot, seed : int
        Points, resamples and the seed of the resampling generator.
    unit : {"run", "point", "run_point"}
        ``"point"``: points with replacement (independent points). ``"run"``: whole
        passes with replacement; every point of a drawn pass comes with it, as
        often as the pass is drawn. ``"run_point"``: passes first, then ``n``
        points with replacement from the points of the drawn passes (two stages).
    """
    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"bootstrap unit must be one of {BOOTSTRAP_UNITS}, got {unit!r}")
    if unit == "point":
        return run_counts(n, n_boot, seed).astype(np.float64)
    codes, n_runs = group_codes(groups, n, label)
    counts = run_counts(n_runs, n_boot, seed)[:, codes].astype(np.float64)
    if unit == "run":
        return counts
    rng = np.random.default_rng([seed, 1])
    p = counts / counts.sum(axis=1, keepdims=True)
    return np.stack([rng.multinomial(n, row) for row in p]).astype(np.float64)


def _percentile_ci(samples: np.ndarray) -> list[float]:
    if samples.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def _bias_corrected_ci(samples: np.ndarray, estimate: float) -> list[float]:
    """Efron's bias-corrected (BC) percentile 95 % interval.

    z0 = Phi^-1(share of resamples below the estimate, ties counted half); the
    interval is the Phi(2 z0 -+ 1.96) quantiles of the resamples. It equals the
    percentile interval when the resamples are centred on the estimate and moves
    against a median bias of the resamples. Eq. 4 reports it beside its percentile
    interval: a resample of passes draws fewer rungs, so its frontier slope tends to
    lie below the full data's (the simulation study compares the two).
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0 or not np.isfinite(estimate):
        return [float("nan"), float("nan")]
    below = np.count_nonzero(samples < estimate) + 0.5 * np.count_nonzero(samples == estimate)
    half = 0.5 / samples.size  # keeps z0 finite when every resample lies on one side
    z0 = norm.ppf(np.clip(below / samples.size, half, 1.0 - half))
    q = norm.cdf(2.0 * z0 + norm.ppf([0.025, 0.975]))
    lo, hi = np.quantile(samples, q)
    return [float(lo), float(hi)]


def _huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss divided by delta, and its derivative, elementwise.

    With c = clip(r, -delta, delta): huber(r) / delta = c (r - c / 2) / delta
    (r^2 / 2 inside, delta (|r| - delta / 2) outside), derivative c / delta.
    """
    c = np.clip(r, -delta, delta)
    dh = c / delta
    h = dh * (r - 0.5 * c)
    return h, dh


# --------------------------------------------------------------------------- laws


class _PowerLaw:
    """log L = f - gamma * x, x = log C; params [f, gamma]."""

    n_par = 2
    log_cols = [0]

    def __init__(self, x: np.ndarray, y: np.ndarray, delta: float):
        self.x, self.y, self.delta = x, y, delta

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return theta[:, 0:1] - theta[:, 1:2] * self.x[None, :] - self.y[None, :]

    def value_grad(self, theta: np.ndarray, w: np.ndarray):
        h, dh = _huber(self.residuals(theta), self.delta)
        wd = w * dh
        f = np.sum(w * h, axis=1)
        g = np.stack([wd.sum(axis=1), -(wd @ self.x)], axis=1)
        return f, g

    def starts(self) -> np.ndarray:
        gammas = np.array([0.02, 0.1, 0.2, 0.4, 0.8, 1.5])
        rows = []
        for gma in gammas:
            f0 = np.median(self.y + gma * self.x)
            for off in (-1.0, 0.0, 1.0):
                rows.append([f0 + off, gma])
        return np.array(rows)


class _SumLaw:
    """log L = LSE(a - alpha log N, b - beta log D[, e]); params [a, b, alpha, beta(, e)]."""

    def __init__(self, log_n, log_d, y, delta: float, free_e: bool):
        self.log_n, self.log_d, self.y, self.delta = log_n, log_d, y, delta
        self.free_e = free_e
        self.n_par = 5 if free_e else 4
        self.log_cols = [0, 1, 4] if free_e else [0, 1]

    def _terms(self, theta):
        t1 = theta[:, 0:1] - theta[:, 2:3] * self.log_n[None, :]
        t2 = theta[:, 1:2] - theta[:, 3:4] * self.log_d[None, :]
        m = np.maximum(t1, t2)
        if self.free_e:
            np.maximum(m, theta[:, 4:5], out=m)
        e1 = np.exp(np.subtract(t1, m, out=t1), out=t1)
        e2 = np.exp(np.subtract(t2, m, out=t2), out=t2)
        tot = e1 + e2
        if self.free_e:
            e3 = np.exp(theta[:, 4:5] - m)
            tot += e3
        inv = 1.0 / tot
        lse = np.log(tot, out=tot)
        lse += m
        if self.free_e:
            return lse, (e1 * inv, e2 * inv, e3 * inv)
        return lse, (e1 * inv, e2 * inv)

    def residuals(self, theta):
        return self._terms(theta)[0] - self.y[None, :]

    def value_grad(self, theta, w):
        lse, p = self._terms(theta)
        h, dh = _huber(lse - self.y[None, :], self.delta)
        f = np.sum(w * h, axis=1)
        wd = w * dh
        wp1, wp2 = wd * p[0], wd * p[1]
        cols = [
            wp1.sum(axis=1),
            wp2.sum(axis=1),
            -(wp1 @ self.log_n),
            -(wp2 @ self.log_d),
        ]
        if self.free_e:
            cols.append((wd * p[2]).sum(axis=1))
        return f, np.stack(cols, axis=1)

    def starts(self) -> np.ndarray:
        ab = np.arange(0.0, 25.0, 5.0)  # log A, log B: 0..20 (A, B from 1 to 5e8)
        ex = np.array([0.1, 0.3, 0.6, 1.0])  # alpha, beta
        if self.free_e:
            # log E below the smallest observed loss (E is the irreducible part)
            es = np.log(np.min(np.exp(self.y))) + np.array([-4.0, -1.5, -0.5])
            grid = itertools.product(ab, ab, ex, ex, es)
        else:
            grid = itertools.product(ab, ab, ex, ex)
        return np.array(list(grid), dtype=np.float64)


# --------------------------------------------------------------------------- driver


def _minimise(
    law, starts: np.ndarray, weights: np.ndarray, start_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run L-BFGS for problems (weights[k], starts[start_rows[k]]), chunked.

    weights: float [K, n]; start_rows: int [K]. Returns x [K, P], f [K], status [K].
    """
    k_total, n = weights.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    xs, fs, sts = [], [], []
    for lo in range(0, k_total, chunk):
        w = weights[lo : lo + chunk]

        def fun(theta, rows, w=w):
            return law.value_grad(theta, w[rows])

        res = lbfgs_batch(fun, starts[start_rows[lo : lo + chunk]])
        xs.append(res.x)
        fs.append(res.fun)
        sts.append(res.status)
    return np.concatenate(xs), np.concatenate(fs), np.concatenate(sts)


def _fit_with_bootstrap(
    law,
    n_boot: int,
    seed: int,
    top_k: int,
    identifiable: Callable[[np.ndarray], bool],
    label: str | None,
    what: str,
    *,
    weights: np.ndarray | None = None,
    boot_weights: np.ndarray | None = None,
    full_top_k: int | None = None,
) -> dict:
    """Full-data fit from every start, then n_boot multi-start refits on resamples.

    ``full_top_k``: run the full-data fit from only the best ``full_top_k`` grid
    points of its objective (None: every grid point).

    ``weights`` (float [n]) weighs the points of the full-data fit (default 1);
    ``boot_weights`` (float [n_boot, n]) gives each resample's multiplicities
    (default: points resampled with replacement).

    Returns dict with theta [P], fun, n_starts, n_starts_converged, samples [n_ok, P],
    n_boot_failed, boot_failures {reason: count}.
    """
    grid = law.starts()
    starts = grid
    n = law.y.size
    n_s = starts.shape[0]
    w_full = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if full_top_k is not None and full_top_k < n_s:
        h0, _ = _huber(law.residuals(starts), law.delta)
        starts = starts[np.argsort(h0 @ w_full, kind="stable")[:full_top_k]]
        n_s = starts.shape[0]
    x, f, st = _minimise(law, starts, np.tile(w_full, (n_s, 1)), np.arange(n_s))
    conv = st <= 1
    if not np.any(conv):
        reasons = {STATUS_NAMES[int(s)]: int(np.sum(st == s)) for s in np.unique(st)}
        raise ValueError(f"{_prefix(label)}{what}: no start of the grid converged ({reasons})")
    best = int(np.flatnonzero(conv)[np.argmin(f[conv])])
    theta = x[best]
    if np.any(theta[law.log_cols] >= _LOG_MAX):
        raise ValueError(
            f"{_prefix(label)}{what}: the best fit runs away (log-space parameters "
            f"{np.round(theta, 3).tolist()}); the data show no usable power law"
        )
    logger.debug(
        "%s%s: %d/%d starts converged, best objective %.6g",
        _prefix(label),
        what,
        int(conv.sum()),
        n_s,
        f[best],
    )

    failures: dict[str, int] = {}
    samples = np.empty((0, law.n_par))
    boot_index, boot_rss = np.empty(0, dtype=int), np.empty(0)
    if boot_weights is not None:
        n_boot = int(boot_weights.shape[0])
    if n_boot > 0:
        if boot_weights is None:
            counts = run_counts(n, n_boot, seed).astype(np.float64)
        else:
            counts = np.asarray(boot_weights, dtype=np.float64)
        ident = np.array([identifiable(c > 0) for c in counts])
        n_degenerate = int(np.sum(~ident))
        if n_degenerate:
            failures["resample cannot identify the law"] = n_degenerate
        counts = counts[ident]
        nb = counts.shape[0]
        # grid objective of every resample at every start: [nb, n_s]
        h, _ = _huber(law.residuals(grid), law.delta)  # [n_grid, n]
        grid_obj = counts @ h.T
        k = min(top_k, grid.shape[0])
        top = np.argpartition(grid_obj, k - 1, axis=1)[:, :k]  # [nb, k]
        weights = np.repeat(counts, k, axis=0)
        bx, bf, bst = _minimise(law, grid, weights, top.reshape(-1))
        bx = bx.reshape(nb, k, -1)
        bf = np.where(bst <= 1, bf, np.inf).reshape(nb, k)
        ok = np.isfinite(bf).any(axis=1)
        n_nonconv = int(np.sum(~ok))
        if n_nonconv:
            failures["no start converged"] = n_nonconv
        pick = np.argmin(bf, axis=1)
        chosen = bx[np.arange(nb), pick]
        # log-space parameters whose exp overflows (a runaway direction of a resample)
        finite = np.all(chosen[:, law.log_cols] < _LOG_MAX, axis=1)
        n_overflow = int(np.sum(ok & ~finite))
        if n_overflow:
            failures["parameter overflow (log-space value > 700)"] = n_overflow
        keep = ok & finite
        samples = chosen[keep]
        boot_index = np.flatnonzero(ident)[keep]
        w_keep = counts[keep]
        boot_rss = np.sum(w_keep * law.residuals(samples) ** 2, axis=1) if samples.size else None
    n_failed = int(sum(failures.values()))
    if n_failed:
        logger.warning(
            "%s%s: %d of %d bootstrap fits failed (%s); intervals use the other %d",
            _prefix(label),
            what,
            n_failed,
            n_boot,
            failures,
            n_boot - n_failed,
        )
    return {
        "theta": theta,
        "fun": float(f[best]),
        "n_starts": int(n_s),
        "n_starts_converged": int(conv.sum()),
        "samples": samples,
        "boot_index": boot_index,
        "boot_rss": np.empty(0) if boot_rss is None else boot_rss,
        "n_boot_failed": n_failed,
        "boot_failures": failures,
    }


def _run_info(r: dict, n_boot: int, top_k: int, unit: str = "point", n_units: int = 0) -> dict:
    """What every fit reports about its optimisation and bootstrap (``r``: _fit_with_bootstrap)."""
    return {
        "n_boot": int(n_boot),
        "bootstrap_unit": unit,
        "n_bootstrap_units": int(n_units),
        "n_boot_failed": r["n_boot_failed"],
        "boot_failures": r["boot_failures"],
        "objective": r["fun"],
        "n_starts": r["n_starts"],
        "n_starts_converged": r["n_starts_converged"],
        **_method_info(top_k, unit),
    }


_UNIT_WORDS = {
    "point": "points",
    "run": "whole training passes (run_id)",
    "run_point": "training passes, then points within them",
}


def _method_info(top_k: int, unit: str = "point") -> dict:
    return {
        "loss": "huber on log residuals",
        "huber_delta": HUBER_DELTA,
        "reduction": REDUCTION,
        "optimizer": "L-BFGS (batched, unbounded) from a grid of starts, best converged kept",
        "bootstrap_starts": f"top {top_k} grid points of each resample's objective",
        "interval": f"95% percentile, non-parametric bootstrap over {_UNIT_WORDS[unit]}",
    }


# --------------------------------------------------------------------------- public


def fit_power_law(
    compute,
    loss,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    label: str | None = None,
    top_k: int = 6,
    return_samples: bool = False,
    groups=None,
    unit: str = "point",
    weights=None,
    boot_weights=None,
    full_top_k: int | None = None,
) -> dict:
    """Fit eq. (4) with L_inf = 0: ``L = F * C**-gamma``.

    Parameters
    ----------
    compute : float [n]
        Compute of each frontier point, in PFLOPs (or GPU-hours: F is then per hour).
    loss : float [n]
        Validation loss of each point (> 0).
    n_boot : int
        Number of non-parametric bootstrap resamples of the points (0: no intervals).
    seed : int
        Seed of the resampling generator.
    label : str, optional
        Name (e.g. the architecture) put in error messages and logs.
    top_k : int
        Starts per bootstrap resample (best grid points of its own objective).
    return_samples : bool
        Also return the successful bootstrap estimates under ``"samples"``
        ({"F": [...], "gamma": [...]}).
    groups : array [n], optional
        Training pass (``run_id``) of each point: the bootstrap unit when ``unit`` is
        ``"run"`` or ``"run_point"`` (see :func:`bootstrap_weights`).
    unit : {"point", "run", "run_point"}
        What the bootstrap resamples.
    weights : float [n], optional
        Weight of each point in the full-data fit (default 1; 0 leaves a point out).
    boot_weights : float [B, n], optional
        Multiplicities of every resample, overriding ``n_boot``, ``groups`` and
        ``unit`` (e.g. a frontier re-extracted inside each resample of runs).
    full_top_k : int, optional
        Start the full-data fit from only the best ``full_top_k`` grid points of
        its objective (None: from every grid point).

    Returns
    -------
    dict
        ``F``, ``gamma``, ``ci`` ({"F": [lo, hi], "gamma": [lo, hi]}, 95 % percentile),
        ``ci_bias_corrected`` (Efron's BC interval, for comparison),
        ``n_points``, ``n_boot``, ``n_boot_failed``, ``boot_failures``, ``objective``,
        ``n_starts``, ``n_starts_converged``, ``x_range`` and the method description.

    Raises
    ------
    ValueError
        Fewer than 3 points, fewer than 2 distinct compute values, NaN or
        non-positive values; the message names ``label``.
    """
    cols = _as_columns(label, "eq. 4 fit", 3, compute=compute, loss=loss)
    c, y = cols["compute"], cols["loss"]
    if np.unique(c).size < 2:
        raise ValueError(f"{_prefix(label)}eq. 4 fit: needs at least 2 distinct compute values")
    if weights is not None and np.count_nonzero(np.asarray(weights) > 0) < 3:
        raise ValueError(f"{_prefix(label)}eq. 4 fit: needs at least 3 weighted points")
    law = _PowerLaw(np.log(c), np.log(y), HUBER_DELTA)
    x_all = law.x

    def identifiable(mask):
        return np.unique(x_all[mask]).size >= 2

    if boot_weights is None and n_boot > 0:
        boot_weights = bootstrap_weights(groups, c.size, n_boot, seed, unit, label)
    n_units = c.size if groups is None or unit == "point" else group_codes(groups, c.size)[1]
    r = _fit_with_bootstrap(
        law, n_boot, seed, top_k, identifiable, label, "eq. 4 fit",
        weights=weights, boot_weights=boot_weights, full_top_k=full_top_k,
    )  # fmt: skip
    if boot_weights is not None:
        n_boot = int(boot_weights.shape[0])
    used = np.ones(c.size, dtype=bool) if weights is None else np.asarray(weights) > 0
    f_hat, g_hat = r["theta"]
    s = r["samples"]
    out = {
        "F": float(np.exp(f_hat)),
        "gamma": float(g_hat),
        "ci": {"F": _percentile_ci(np.exp(s[:, 0])), "gamma": _percentile_ci(s[:, 1])},
        # for comparison (README, "Coverage"): resamples of passes draw fewer rungs
        "ci_bias_corrected": {
            "F": _bias_corrected_ci(np.exp(s[:, 0]), float(np.exp(f_hat))),
            "gamma": _bias_corrected_ci(s[:, 1], float(g_hat)),
        },
        "n_points": int(np.count_nonzero(used)),
        "x_range": [float(c[used].min()), float(c[used].max())],
        **_run_info(r, n_boot, top_k, unit, n_units),
    }
    out.update(identify_power_law(out))
    if label is not None:
        out["label"] = label
    if return_samples:
        out["samples"] = {"F": np.exp(s[:, 0]).tolist(), "gamma": s[:, 1].tolist()}
    return out


def fit_sum_law(
    n,
    d,
    loss,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    label: str | None = None,
    fix_e_zero: bool = False,
    compare_e_zero: bool | None = None,
    top_k: int = 6,
    return_samples: bool = False,
    min_d_decades: float = 1.0,
    groups=None,
    unit: str = "point",
    boot_weights=None,
    full_top_k: int | None = None,
) -> dict:
    """Fit eq. (5): ``L = E + A * N**-alpha + B * D**-beta``.

    Parameters
    ----------
    n : float [m]
        Trainable parameters of each run.
    d : float [m]
        Training atoms seen by each run (D counts atoms).
    loss : float [m]
        Final validation loss of each run (> 0).
    n_boot, seed : int
        Bootstrap resamples of the (N, D, L) triplets and their seed.
    label : str, optional
        Name put in error messages and logs.
    fix_e_zero : bool
        Fit with E fixed to 0 (four parameters) instead of the free fit.
    compare_e_zero : bool, optional
        Also fit with E = 0 and return it under ``"e_zero"``. Default (None): only
        when the E-beta trade-off is detected (D spans fewer than
        ``min_d_decades`` decades).
    top_k : int
        Starts per bootstrap resample.
    return_samples : bool
        Also return the successful bootstrap estimates under ``"samples"``
        ({name: [...]} for the five parameters).
    min_d_decades : float
        Below this span of log10 D, E and beta are flagged as traded off
        (informational: which fit Table 1 uses is :func:`choose_e_mode`'s decision).
    groups, unit, boot_weights, full_top_k
        The bootstrap unit and starts, as in :func:`fit_power_law`.

    Returns
    -------
    dict
        ``E``, ``A``, ``B``, ``alpha``, ``beta``, ``ci`` ({name: [lo, hi]}), ``e_fixed``
        (bool), ``n_points``, ``n_boot_failed``, ``boot_failures``, ``d_span_decades``,
        ``n_span_decades``, ``e_beta_tradeoff`` (bool), ``corr_E_beta`` (Spearman over
        bootstraps, free fit only), ``table1_fit`` ("free" or "e_zero": the fit that
        Table 1 and eq. 7 use) and, when compared, ``e_zero`` (the E = 0 fit's dict).

    Raises
    ------
    ValueError
        Too few points (6 free, 5 with E = 0), fewer than 2 distinct N or D, NaN or
        non-positive values; the message names ``label``.
    """
    n_par = 4 if fix_e_zero else 5
    what = "eq. 5 fit" + (" (E = 0)" if fix_e_zero else "")
    cols = _as_columns(label, what, n_par + 1, n=n, d=d, loss=loss)
    nn, dd, ll = cols["n"], cols["d"], cols["loss"]
    for name, arr in (("N", nn), ("D", dd)):
        if np.unique(arr).size < 2:
            raise ValueError(f"{_prefix(label)}{what}: needs at least 2 distinct {name} values")
    law = _SumLaw(np.log(nn), np.log(dd), np.log(ll), HUBER_DELTA, free_e=not fix_e_zero)

    def identifiable(mask):
        return (
            np.unique(nn[mask]).size >= 2
            and np.unique(dd[mask]).size >= 2
            and np.unique(np.stack([nn[mask], dd[mask]]), axis=1).shape[1] >= n_par - 1
        )

    if boot_weights is None and n_boot > 0:
        boot_weights = bootstrap_weights(groups, nn.size, n_boot, seed, unit, label)
    n_units = nn.size if groups is None or unit == "point" else group_codes(groups, nn.size)[1]
    r = _fit_with_bootstrap(
        law, n_boot, seed, top_k, identifiable, label, what,
        boot_weights=boot_weights, full_top_k=full_top_k,
    )  # fmt: skip
    if boot_weights is not None:
        n_boot = int(boot_weights.shape[0])
    th, s = r["theta"], r["samples"]
    resid = law.residuals(th[None, :])[0]

    def params(t):
        e = np.exp(t[..., 4]) if not fix_e_zero else np.zeros(t.shape[:-1])
        return {"E": e, "A": np.exp(t[..., 0]), "B": np.exp(t[..., 1]),
                "alpha": t[..., 2], "beta": t[..., 3]}  # fmt: skip

    est = params(th)
    samp = params(s)
    d_span = float(np.log10(dd.max() / dd.min()))
    tradeoff = d_span < min_d_decades
    out = {k: float(est[k]) for k in SUM_LAW_PARAMS}
    out["ci"] = {k: _percentile_ci(samp[k]) for k in SUM_LAW_PARAMS}
    out.update(
        {
            "e_fixed": bool(fix_e_zero),
            "n_points": int(nn.size),
            "d_span_decades": d_span,
            "n_span_decades": float(np.log10(nn.max() / nn.min())),
            "e_beta_tradeoff": bool(tradeoff),
            "rss_log": float(np.sum(resid**2)),
            "n_params_fitted": int(law.n_par),
            **_run_info(r, n_boot, top_k, unit, n_units),
        }
    )
    out.update(identify_sum_law(out))
    if not fix_e_zero:
        out["corr_E_beta"] = _spearman(samp["E"], samp["beta"])
    if label is not None:
        out["label"] = label
    if return_samples:
        out["samples"] = {k: np.asarray(v).tolist() for k, v in samp.items()}
        # which resample each sample refits, and its weighted RSS of log residuals
        # (for choosing E inside each resample, see pipeline.scaling.fits)
        out["samples_resample"] = r["boot_index"].tolist()
        out["samples_rss_log"] = r["boot_rss"].tolist()
    if not fix_e_zero:
        if compare_e_zero is None:
            compare_e_zero = tradeoff
        out["table1_fit"] = "free"
        if compare_e_zero:
            out["e_zero"] = fit_sum_law(
                nn, dd, ll, n_boot, seed, label=label, fix_e_zero=True,
                top_k=top_k, return_samples=return_samples, min_d_decades=min_d_decades,
                groups=groups, unit=unit, boot_weights=boot_weights, full_top_k=full_top_k,
            )  # fmt: skip
            decision = choose_e_mode(out, out["e_zero"])
            out["table1_fit"] = decision["used"]
            out["e_mode_decision"] = decision
    else:
        out["table1_fit"] = "e_zero"
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Rank correlation of two samples; None when undefined (fewer than 3 or constant)."""
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def compute_optimal(A, B, alpha, beta, kappa) -> dict:
    """Compute-optimal allocation and frontier implied by eq. (5), eq. (6)-(7).

    Minimising ``A N**-alpha + B D**-beta`` subject to ``3 kappa N D = C`` (C in
    FLOPs, N parameters, D atoms) gives, with ``xi = 3 kappa``,
    ``N* = G (C / xi)**a``, ``D* = (C / xi)**b / G`` and
    ``L* = (A G**-alpha + B G**beta) (C / xi)**-gamma_c``, where
    ``G = (alpha A / (beta B))**(1 / (alpha + beta))``, ``a = beta / (alpha + beta)``,
    ``b = alpha / (alpha + beta)``, ``gamma_c = alpha beta / (alpha + beta)``.
    With C in PFLOPs (C = 1e15 C_P): ``L* = F_c C_P**-gamma_c`` and
    ``F_c = (A G**-alpha + B G**beta) (xi / 1e15)**gamma_c``.

    Parameters
    ----------
    A, B, alpha, beta : float or array
        Parameters of eq. (5) (E is not used: eq. 7 has L_inf = 0).
    kappa : float
        Forward FLOPs per parameter per atom.

    Returns
    -------
    dict
        ``G``, ``a``, ``b``, ``gamma_c``, ``F_c`` (PFLOPs), ``xi`` (= 3 kappa), and
        ``F_c_flops`` (the same law for C in FLOPs). Floats for scalar input, arrays
        for array input.
    """
    A, B, alpha, beta = (np.asarray(v, dtype=np.float64) for v in (A, B, alpha, beta))
    kappa = float(kappa)
    for name, v in (("A", A), ("B", B), ("alpha", alpha), ("beta", beta), ("kappa", kappa)):
        if not np.all(np.isfinite(v)) or np.any(np.asarray(v) <= 0):
            raise ValueError(f"compute_optimal: {name} must be finite and > 0, got {v!r}")
    xi = 3.0 * kappa
    s = alpha + beta
    G = (alpha * A / (beta * B)) ** (1.0 / s)
    a = beta / s
    b = alpha / s
    gamma_c = alpha * beta / s
    coef = A * G**-alpha + B * G**beta
    F_c_flops = coef * xi**gamma_c
    F_c = coef * (xi / 1e15) ** gamma_c

    def out(v):
        return float(v) if np.ndim(v) == 0 else v

    return {
        "G": out(G),
        "a": out(a),
        "b": out(b),
        "gamma_c": out(gamma_c),
        "F_c": out(F_c),
        "F_c_flops": out(F_c_flops),
        "xi": xi,
    }


def optimal_allocation(A, B, alpha, beta, kappa, compute_pflops, E=0.0) -> dict:
    """N*, D* and L* at compute budgets from eq. (5) parameters.

    Parameters
    ----------
    A, B, alpha, beta, E : float or array [S]
        Eq. (5) parameters (arrays: e.g. bootstrap samples).
    kappa : float
        Forward FLOPs per parameter per atom.
    compute_pflops : float or array [C]
        Budgets in PFLOPs.

    Returns
    -------
    dict
        ``n_opt``, ``d_opt``, ``loss`` with shape broadcast of [S, C] (or [C]).
    """
    co = compute_optimal(A, B, alpha, beta, kappa)
    c = np.asarray(compute_pflops, dtype=np.float64) * 1e15 / co["xi"]
    G = np.asarray(co["G"])[..., None]
    a = np.asarray(co["a"])[..., None]
    b = np.asarray(co["b"])[..., None]
    n_opt = G * c**a
    d_opt = c**b / G
    E = np.asarray(E, dtype=np.float64)[..., None]
    A_, B_ = np.asarray(A)[..., None], np.asarray(B)[..., None]
    al, be = np.asarray(alpha)[..., None], np.asarray(beta)[..., None]
    loss = E + A_ * n_opt**-al + B_ * d_opt**-be
    return {"n_opt": n_opt, "d_opt": d_opt, "loss": loss}
