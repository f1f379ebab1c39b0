"""The fit stage: ``results/fits/{arch}.json`` (tables: :mod:`pipeline.scaling.tables`).

:func:`fit_arch` runs, for one architecture: eq. (4) on the FLOPs and hours
frontiers, eq. (5) free and with E = 0 (one chosen by ``e_mode``), eq. (7) with
intervals carried through the bootstrap of eq. (5), identification of each law
(:mod:`pipeline.scaling.identify`), a check of eq. 3 against measured compute, and an
extrapolation check (refit without the largest-compute frontier points / the
largest model, predict the held-out loss).

Bootstrap unit. By default whole training passes (``run_id`` of meta.json: every
fraction folder of a shared-fraction pass and every seed's run is one pass) are
resampled with replacement, with one draw per resample shared by all fits, and
inside each resample the frontier is re-extracted from the drawn passes' curves
and the eq. (5) points are those passes' final evaluations (each as often as its
pass was drawn); every resample is refitted from a multistart.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.scaling.fit import (
    BOOTSTRAP_UNITS,
    SUM_LAW_PARAMS,
    _percentile_ci,
    compute_optimal,
    fit_power_law,
    fit_sum_law,
    run_counts,
)
from pipeline.scaling.frontier import (
    X_COLUMNS,
    frontier_candidates,
    load_curves,
    resampled_frontier_weights,
    sum_law_points,
)
from pipeline.scaling.identify import (
    MIN_JACKKNIFE_RUNGS,
    choose_e_mode,
    choose_e_mode_per_resample,
    identify_eq7,
    identify_sum_law,
    max_rung_shift,
    seed_spread,
    width_separation,
)

logger = logging.getLogger(__name__)

EQ7_KEYS = ("G", "a", "b", "gamma_c", "F_c")
#: grid starts of each leave-one-rung-out refit: the full fits' optimum is among the
#: best few grid points on every study checked, and 12 starts cost ~0.06 s a refit
JACKKNIFE_TOP_K = 12


def _samples(fit: dict) -> dict[str, np.ndarray]:
    """Bootstrap samples of an eq. 5 fit with positive exponents (eq. 7 needs alpha, beta > 0).

    Samples with a non-positive exponent (possible on a degenerate resample, since
    the optimisation is unbounded) are dropped here and counted by
    :func:`_n_invalid`.
    """
    if "samples" not in fit:
        raise ValueError("fit dict has no bootstrap 'samples' (fit with return_samples=True)")
    s = {k: np.asarray(v, dtype=np.float64) for k, v in fit["samples"].items()}
    ok = (s["alpha"] > 0) & (s["beta"] > 0)
    return {k: v[ok] for k, v in s.items()}


def _n_invalid(fit: dict) -> int:
    return len(fit["samples"]["alpha"]) - int(_samples(fit)["alpha"].size)


def _no_eq7(reason: str) -> dict:
    """The eq. 7 entry of an arch whose eq. 5 fit has no compute-optimal law."""
    nan = float("nan")
    return {
        **dict.fromkeys(EQ7_KEYS, nan),
        "ci": {key: [nan, nan] for key in EQ7_KEYS},
        "error": reason,
    }


def _attempt(fn, *args, **kwargs) -> dict:
    """Run one fit; a law the runs cannot pin down (``ValueError``) becomes a record of why.

    The eq. 5 fit of a family whose losses show no usable power law (the best fit runs
    away, no start converges) is a result of the study, reported as not identified,
    not a reason to lose every other family's row of Table 1.
    """
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        logger.warning("%s", err)
        return {"fit_error": str(err)}


def _unfitted_sum_law(error: str, n_points: int, fix_e_zero: bool, n_boot: int) -> dict:
    """The eq. 5 entry of a fit that failed: NaN values, ``identified`` False, the reason."""
    nan = float("nan")
    return {
        **dict.fromkeys(SUM_LAW_PARAMS, nan),
        "ci": {key: [nan, nan] for key in SUM_LAW_PARAMS},
        "rss_log": float("inf"),  # never preferred by the AICc choice of E
        "n_points": int(n_points),
        "n_params_fitted": 4 if fix_e_zero else 5,
        "n_boot": int(n_boot),
        "fit_error": error,
        "identified": False,
        "not_identified_reason": f"no fit: {error}",
    }


def eq7_with_intervals(sum_fit: dict, kappa: float, label: str | None = None) -> dict:
    """Eq. (7) from an eq. (5) fit, with 95 % intervals over its bootstrap samples.

    Parameters
    ----------
    sum_fit : dict
        :func:`fit_sum_law` output with ``samples``.
    kappa : float
        Forward FLOPs per parameter per atom.
    label : str, optional
        Name put in the error message.

    Returns
    -------
    dict
        ``G, a, b, gamma_c, F_c`` (F_c for C in PFLOPs), ``ci`` for each, ``kappa``.

    Raises
    ------
    ValueError
        The fitted exponents are not positive (no compute-optimal allocation exists).
    """
    try:
        point = compute_optimal(
            sum_fit["A"], sum_fit["B"], sum_fit["alpha"], sum_fit["beta"], kappa
        )
    except ValueError as err:
        raise ValueError(
            f"{label or 'eq. 7'}: eq. 5 fit (alpha = {sum_fit['alpha']:.4g}, "
            f"beta = {sum_fit['beta']:.4g}) gives no compute-optimal law: {err}"
        ) from err
    s = _samples(sum_fit)
    samp = compute_optimal(s["A"], s["B"], s["alpha"], s["beta"], kappa) if s["A"].size else None
    out = {k: point[k] for k in EQ7_KEYS}
    out["ci"] = {
        k: _percentile_ci(np.atleast_1d(samp[k]) if samp else np.empty(0)) for k in EQ7_KEYS
    }
    out["kappa"] = float(kappa)
    out["n_samples"] = int(s["A"].size)
    out["n_samples_nonpositive_exponent"] = _n_invalid(sum_fit)
    return out


def _holdout_eq4(frontier: pd.DataFrame, n_boot: int, seed: int, label: str, frac: float) -> dict:
    """Refit eq. 4 without the largest-compute frontier points; predict them."""
    fr = frontier.sort_values("compute_pflops")
    n = len(fr)
    k = max(1, int(round(frac * n)))
    if n - k < 3:
        return {"skipped": f"only {n} frontier points; need at least {k + 3} to hold out {k}"}
    train, test = fr.iloc[: n - k], fr.iloc[n - k :]
    fit = fit_power_law(
        train["compute_pflops"], train["val_loss"], n_boot, seed, label=label, return_samples=True
    )
    c = test["compute_pflops"].to_numpy()
    obs = test["val_loss"].to_numpy()
    pred = fit["F"] * c ** -fit["gamma"]
    sF, sg = np.asarray(fit["samples"]["F"]), np.asarray(fit["samples"]["gamma"])
    band = sF[:, None] * c[None, :] ** -sg[:, None]
    lo, hi = np.percentile(band, [2.5, 97.5], axis=0) if sF.size else (pred * np.nan,) * 2
    return {
        "held_out": "largest-compute frontier points",
        "n_train": int(n - k),
        "fit": {"F": fit["F"], "gamma": fit["gamma"], "ci": fit["ci"]},
        "train_max_compute_pflops": float(train["compute_pflops"].max()),
        "points": [
            {
                "compute_pflops": float(ci),
                "observed": float(o),
                "predicted": float(p),
                "predicted_ci": [float(a), float(b)],
                "rel_error": float(p / o - 1.0),
            }
            for ci, o, p, a, b in zip(c, obs, pred, lo, hi, strict=True)
        ],
    }


def _holdout_eq5(
    pts: pd.DataFrame, n_boot: int, seed: int, label: str, e_zero: bool, unit: str = "run"
) -> dict:
    """Refit eq. 5 without the runs of the largest model; predict their losses."""
    n_max = pts["n"].max()
    train, test = pts[pts["n"] < n_max], pts[pts["n"] == n_max]
    need = 5 if e_zero else 6
    if len(train) < need or train["n"].nunique() < 2 or train["d"].nunique() < 2:
        return {
            "skipped": f"{len(train)} runs below the largest model (N = {n_max}); "
            f"need {need} with 2 distinct N and D"
        }
    fit = fit_sum_law(
        train["n"], train["d"], train["loss"], n_boot, seed,
        label=label, fix_e_zero=e_zero, compare_e_zero=False, return_samples=True,
        groups=train["run_id"] if "run_id" in train else None, unit=unit,
    )  # fmt: skip
    nn, dd, obs = (test[c].to_numpy(dtype=float) for c in ("n", "d", "loss"))

    def law(p, n, d):
        return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]

    pred = law(fit, nn, dd)
    s = _samples(fit)
    band = law({k: v[:, None] for k, v in s.items()}, nn[None, :], dd[None, :])
    lo, hi = np.percentile(band, [2.5, 97.5], axis=0) if band.size else (pred * np.nan,) * 2
    return {
        "held_out": f"all runs of the largest model (N = {int(n_max)})",
        "n_train": int(len(train)),
        "e_fixed": bool(e_zero),
        "fit": {k: fit[k] for k in (*SUM_LAW_PARAMS, "ci")},
        "points": [
            {
                "n": float(a),
                "d": float(b),
                "observed": float(o),
                "predicted": float(p),
                "predicted_ci": [float(x), float(y)],
                "rel_error": float(p / o - 1.0),
            }
            for a, b, o, p, x, y in zip(nn, dd, obs, pred, lo, hi, strict=True)
        ],
    }


def rung_jackknife(
    pts: pd.DataFrame, kappa: float, *, fix_e_zero: bool, label: str | None = None
) -> dict:
    """Eq. (5) and eq. (7) refitted with each rung (one N, all its runs) left out.

    Point estimates (no bootstrap): how much one rung moves the law, recorded in the
    fit JSON (see :mod:`pipeline.scaling.identify`, "Rung jackknife", for why it is
    not an identification test).

    Parameters
    ----------
    pts : DataFrame
        :func:`pipeline.scaling.frontier.sum_law_points` output.
    kappa : float
        Forward FLOPs per parameter per atom (eq. 7's gamma_c does not depend on it).
    fix_e_zero : bool
        Refit with E = 0 (the E mode of the fit being checked).
    label : str, optional
        Name put in messages.

    Returns
    -------
    dict
        ``checked`` (False with ``reason`` when fewer than ``MIN_JACKKNIFE_RUNGS``
        rungs), ``n_rungs``, ``e_fixed`` and ``rungs``: per left-out rung ``width``,
        ``n_params``, ``n_points`` and ``alpha, beta, E, A, B, gamma_c``, or ``error``
        when the remaining runs give no eq. 5 fit (``gamma_c_error`` when they give no
        eq. 7).
    """
    rung_ns = sorted(pts["n"].unique())
    out = {"checked": False, "n_rungs": len(rung_ns), "e_fixed": bool(fix_e_zero), "rungs": []}
    if len(rung_ns) < MIN_JACKKNIFE_RUNGS:
        out["reason"] = f"{len(rung_ns)} rungs (the check needs {MIN_JACKKNIFE_RUNGS})"
        return out
    for n in rung_ns:
        keep = pts[pts["n"] != n]
        width = pts.loc[pts["n"] == n, "width"].iloc[0] if "width" in pts else n
        row = {"width": float(width), "n_params": int(n), "n_points": int(len(keep))}
        try:
            fit = fit_sum_law(
                keep["n"], keep["d"], keep["loss"], 0, 0,
                label=f"{label} without N = {int(n)}", fix_e_zero=fix_e_zero,
                compare_e_zero=False, full_top_k=JACKKNIFE_TOP_K,
            )  # fmt: skip
        except ValueError as err:
            row["error"] = str(err)
            out["rungs"].append(row)
            continue
        row.update({k: float(fit[k]) for k in SUM_LAW_PARAMS})
        try:
            row["gamma_c"] = float(
                compute_optimal(fit["A"], fit["B"], fit["alpha"], fit["beta"], kappa)["gamma_c"]
            )
        except ValueError as err:
            row["gamma_c"], row["gamma_c_error"] = None, str(err)
        out["rungs"].append(row)
    out["checked"] = True
    return out


def identify_on_runs(
    pts: pd.DataFrame,
    fits: Mapping[str, dict],
    used: str,
    kappa: float,
    label: str,
    jackknives: Mapping[str, dict] | None = None,
    spread: dict | None = None,
) -> dict:
    """Identification test 5 (needs the runs) and the rung jackknife on eq. 5 fits.

    Parameters
    ----------
    pts : DataFrame
        :func:`pipeline.scaling.frontier.sum_law_points` output.
    fits : {"free": dict, "e_zero": dict}
        The eq. 5 fits (either may be missing or hold ``fit_error``), changed in place:
        a fit whose widths do not separate is marked ``identified`` False with the
        reason appended; each fitted one gets ``rung_jackknife`` with ``max_shift``
        (alpha, beta: the largest move in half-widths of its interval).
    used : str
        The key of the fit whose rms log residual is the noise of test 5 when no seeds
        are replicated.
    kappa : float
        Forward FLOPs per parameter per atom (for the refits' eq. 7).
    label : str
        Name put in messages.
    jackknives : mapping, optional
        :func:`rung_jackknife` of each key of ``fits``, if already run (the fit stage
        runs them in its process pool); computed here otherwise.
    spread : dict, optional
        :func:`pipeline.scaling.identify.seed_spread` of ``pts``, if already computed.

    Returns
    -------
    dict
        The :func:`pipeline.scaling.identify.width_separation` record (with ``noise``).
    """
    spread = seed_spread(pts) if spread is None else spread
    u = fits[used]
    rms = float(np.sqrt(u["rss_log"] / max(u["n_points"], 1)))
    separation = width_separation(pts, spread["sd_log"] if spread["sd_log"] else rms)
    separation["noise"] = "seed spread" if spread["sd_log"] else "eq. 5 rms log residual"
    for key, f in fits.items():
        if "fit_error" not in f:
            jk = (jackknives or {}).get(key) or rung_jackknife(
                pts, kappa, fix_e_zero=key == "e_zero", label=label
            )
            ci = f.get("ci", {})
            jk["max_shift"] = {p: max_rung_shift(jk, p, f[p], ci.get(p)) for p in ("alpha", "beta")}
            f["rung_jackknife"] = jk
        if not separation["separated"]:
            reasons = [r for r in (f.get("not_identified_reason"), separation["reason"]) if r]
            f.update(identified=False, not_identified_reason="; ".join(reasons))
    return separation


def compute_check(curves: pd.DataFrame, kappa: float, flops: str = "counted") -> dict:
    """How far ``C = 3 kappa N D`` is from each run's measured compute.

    Returns
    -------
    dict
        ``max_rel_diff`` (largest |kappa compute / measured compute - 1| over runs),
        ``n_runs_over_10pct``, ``runs_over_10pct`` (up to 10 run folders) and
        ``n_runs_unmeasured`` (runs whose meta.json has no FLOPs); all NaN/0 when
        no run has measured FLOPs.
    """
    col = f"forward_flops_per_atom_{flops}"
    per_run = curves.groupby("run", sort=True).first()
    if col not in per_run.columns:
        return {"max_rel_diff": None, "n_runs_over_10pct": 0, "runs_over_10pct": [],
                "n_runs_unmeasured": int(len(per_run)), "flops": flops}  # fmt: skip
    measured = per_run[col] * per_run["forward_passes_per_step"]
    ok = np.isfinite(measured.to_numpy(float)) & (measured.to_numpy(float) > 0)
    rel = (kappa * per_run["n_params"][ok] / measured[ok] - 1.0).abs()
    over = rel[rel > 0.10]
    return {
        "max_rel_diff": float(rel.max()) if len(rel) else None,
        "n_runs_over_10pct": int(len(over)),
        "runs_over_10pct": [str(r) for r in over.index[:10]],
        "n_runs_unmeasured": int((~ok).sum()),
        "flops": flops,
    }


def _unit_weights(
    counts: np.ndarray, codes: np.ndarray, unit: str, seed: int, base: np.ndarray | None = None
) -> np.ndarray:
    """float [B, n] multiplicities of n points from pass counts [B, R] and pass codes [n].

    ``base`` (float [B, n]) replaces ``counts[:, codes]`` (e.g. a frontier re-extracted
    in every resample). ``"run"``: those multiplicities. ``"point"``: the points of
    the full data (``base[0] > 0``, or all) resampled with replacement. ``"run_point"``:
    as many points as the drawn passes hold, drawn with replacement from them.
    """
    w = counts[:, codes].astype(np.float64) if base is None else np.asarray(base, float)
    if unit == "run":
        return w
    rng = np.random.default_rng([seed, 2])
    if unit == "point":
        pool = (w[0] > 0) if base is not None else np.ones(w.shape[1], dtype=bool)
        p = pool / pool.sum()
        return rng.multinomial(int(pool.sum()), p, size=w.shape[0]).astype(np.float64)
    out = np.zeros_like(w)
    for b in range(w.shape[0]):
        total = w[b].sum()
        if total > 0:
            out[b] = rng.multinomial(int(round(total)), w[b] / total)
    return out


def fit_arch(
    curves: pd.DataFrame,
    kappa: float,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    warmup: float = 0.1,
    ema: float | None = None,
    e_mode: Literal["auto", "free", "e_zero"] = "auto",
    compute: Literal["kappa", "measured"] = "kappa",
    flops: Literal["counted", "total"] = "counted",
    unit: Literal["run", "point", "run_point"] = "run",
    holdout_fraction: float = 0.1,
    holdout_n_boot: int | None = 200,
    extrapolation: bool = True,
    full_top_k: int | None = None,
    n_jobs: int = 1,
    frontiers: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> dict:
    """All fits of one architecture (the content of ``results/fits/{arch}.json``).

    Parameters
    ----------
    curves : DataFrame
        :func:`pipeline.scaling.frontier.load_curves` output for one (arch, variant).
    kappa : float
        Forward FLOPs per parameter per atom of this arch (eq. 3; eq. 7's F_c).
    n_boot, seed : int
        Bootstrap resamples for every fit, and the seed (each fit uses it).
    warmup : float
        Fraction of each run's atoms excluded from the frontier.
    ema : float, optional
        EMA smoothing factor of the curves (frontier and triplets).
    e_mode : {"auto", "free", "e_zero"}
        Which eq. (5) fit feeds Table 1, eq. (7) and the allocation. ``"auto"``:
        :func:`pipeline.scaling.identify.choose_e_mode` (AICc with a margin). Both
        fits are always reported.
    compute : {"kappa", "measured"}
        Each row's compute: ``3 kappa N D`` or the run's measured FLOPs
        (:func:`pipeline.scaling.frontier.add_compute`).
    flops : {"counted", "total"}
        Which measured FLOPs ``compute="measured"`` uses.
    unit : {"run", "point", "run_point"}
        Bootstrap unit: whole training passes (``run_id``; the frontier and the
        eq. 5 points are re-extracted inside each resample), points, or passes
        then points. ``benchmarks/bench_coverage.py`` measures their coverage.
    holdout_fraction : float
        Fraction of frontier points (largest compute) held out in the eq. (4)
        extrapolation check.
    holdout_n_boot : int, optional
        Bootstrap resamples of the extrapolation refits (their intervals only
        qualify the prediction); None: ``n_boot``.
    extrapolation : bool
        Run the extrapolation checks (False: ``extrapolation`` is ``{}``; the
        simulation study skips them).
    full_top_k : int, optional
        Start the full-data fits from only the best grid points (None: all).
    n_jobs : int
        Worker processes for the independent fits (1: run them in this process).
    frontiers : (DataFrame, DataFrame), optional
        The frontier stage's PFLOPs and hours frontiers; checked against the
        frontier re-extracted here (a mismatch is logged).

    Returns
    -------
    dict
        ``arch, variant, kappa, eq4_flops, eq4_hours, eq5_free, eq5_e_zero`` (each a
        fit dict with ``identified``; eq. 5 ones with bootstrap ``samples``),
        ``eq5_used`` with ``eq5_used_reason`` and ``e_mode_decision``, ``eq7`` (with
        ``ci`` and ``identified``), ``extrapolation``, the settings (``e_mode``,
        ``ema``, ``compute``, ``flops``, ``bootstrap_unit``, ``seeds``, ``n_runs``)
        and ``compute_check``.

    Raises
    ------
    ValueError
        Curves of several (arch, variant) groups, or too few points for a fit.
    """
    groups = curves[["arch", "variant"]].drop_duplicates()
    if len(groups) != 1:
        raise ValueError(
            f"fit_arch: curves hold {len(groups)} (arch, variant) groups "
            f"{groups.to_records(index=False).tolist()}; pass one"
        )
    if e_mode not in ("auto", "free", "e_zero"):
        raise ValueError(f"fit.e_mode must be 'auto', 'free' or 'e_zero', got {e_mode!r}")
    if unit not in BOOTSTRAP_UNITS:
        raise ValueError(f"bootstrap unit must be one of {BOOTSTRAP_UNITS}, got {unit!r}")
    arch, variant = (str(v) for v in groups.iloc[0])
    label = arch if variant == "base" else f"{arch}/{variant}"
    if "run_id" not in curves.columns:
        curves = curves.assign(run_id=curves["run"], seed=0)
    run_ids = np.array(sorted(curves["run_id"].astype(str).unique()))
    n_runs = run_ids.size
    counts = run_counts(n_runs, n_boot, seed) if n_boot > 0 else np.zeros((0, n_runs), int)

    def codes(ids: pd.Series) -> np.ndarray:
        return np.searchsorted(run_ids, ids.astype(str).to_numpy())

    # eq. 4: candidate rows, frontier of the full data and of every resample of passes
    eq4_inputs = {}
    for x in ("flops", "hours"):
        cand = frontier_candidates(
            curves, kappa, x, warmup=warmup, ema=ema, compute=compute, flops=flops
        )
        col = X_COLUMNS[x]
        xs, ls = cand[col].to_numpy(float), cand["val_loss"].to_numpy(float)
        cc = codes(cand["run_id"])
        w_full = resampled_frontier_weights(xs, ls, cc, np.ones((1, n_runs)))[0]
        if n_boot > 0:
            if unit == "point":
                base = np.repeat(w_full[None, :], n_boot, axis=0)
            else:
                base = resampled_frontier_weights(xs, ls, cc, counts)
            w_boot = _unit_weights(counts, cc, unit, seed, base=base)
            keep = (w_full > 0) | (w_boot > 0).any(axis=0)
            w_boot = w_boot[:, keep]
        else:
            keep, w_boot = w_full > 0, None
        eq4_inputs[x] = (xs[keep], ls[keep], w_full[keep], w_boot)
    n_front = {x: int(np.count_nonzero(v[2])) for x, v in eq4_inputs.items()}
    if frontiers is not None:
        for x, fr in zip(("flops", "hours"), frontiers, strict=True):
            if len(fr) != n_front[x]:
                logger.warning(
                    "%s: the frontier file has %d %s points, the fit's frontier %d "
                    "(different settings?); the fit uses its own",
                    label, len(fr), x, n_front[x],
                )  # fmt: skip

    pts = sum_law_points(curves, ema=ema)
    pc = codes(pts["run_id"])
    w5 = _unit_weights(counts, pc, unit, seed) if n_boot > 0 else None
    n_, d_, l_ = pts["n"], pts["d"], pts["loss"]
    common5 = {"label": label, "return_samples": True, "boot_weights": w5,
               "groups": pts["run_id"], "unit": unit, "full_top_k": full_top_k}  # fmt: skip
    tasks = {  # most expensive first, for the process pool
        "eq5_free": (_attempt, (fit_sum_law, n_, d_, l_, n_boot, seed),
                     {**common5, "compare_e_zero": False}),
        "eq5_e_zero": (_attempt, (fit_sum_law, n_, d_, l_, n_boot, seed),
                       {**common5, "fix_e_zero": True}),
    }  # fmt: skip
    for x, what in (("flops", "PFLOPs"), ("hours", "hours")):
        xs, ls, wf, wb = eq4_inputs[x]
        tasks[f"eq4_{x}"] = (
            fit_power_law, (xs, ls, n_boot, seed),
            {"label": f"{label} ({what} frontier)", "return_samples": True,
             "weights": wf, "boot_weights": wb, "unit": unit, "full_top_k": full_top_k},
        )  # fmt: skip
    for key in ("free", "e_zero"):  # the rung jackknife: cheap, independent refits
        tasks[f"jackknife_{key}"] = (
            rung_jackknife, (pts, kappa), {"fix_e_zero": key == "e_zero", "label": label}
        )  # fmt: skip
    res = _run_tasks(tasks, n_jobs)
    for x in ("flops", "hours"):
        res[f"eq4_{x}"]["n_bootstrap_units"] = n_runs if unit != "point" else n_front[x]
    for key, fixed in (("eq5_free", False), ("eq5_e_zero", True)):
        if "fit_error" in res[key]:
            res[key] = _unfitted_sum_law(res[key]["fit_error"], len(pts), fixed, n_boot)
    eq5_free, eq5_e0 = res["eq5_free"], res["eq5_e_zero"]
    unfitted = "fit_error" in eq5_free or "fit_error" in eq5_e0
    decision = choose_e_mode(eq5_free, eq5_e0)
    if e_mode == "auto":
        used, reason = decision["used"], decision["reason"]
    else:
        used, reason = e_mode, f"e_mode = {e_mode!r} requested ({decision['reason']})"
    logger.info("%s: eq. 5 fit for Table 1: %s; %s", label, used, reason)

    eq5_used = eq5_free if used == "free" else eq5_e0
    if e_mode == "auto" and n_boot > 0 and not unfitted:
        # the choice of E is part of the estimator: repeat it in every resample, so that
        # the intervals carry its uncertainty (the simulation study's misses came from
        # resamples of a study whose full-data choice was the wrong one)
        mixed = choose_e_mode_per_resample(eq5_free, eq5_e0)
        if mixed["n_resamples"]:
            eq5_used = {**eq5_used}
            eq5_used["ci_fixed_e_mode"] = eq5_used["ci"]
            eq5_used["samples"] = mixed["samples"]
            eq5_used["ci"] = {
                k: _percentile_ci(np.asarray(v, dtype=float)) for k, v in mixed["samples"].items()
            }
            eq5_used["interval_includes_e_mode_choice"] = True
            eq5_used.update(identify_sum_law(eq5_used))
            decision["share_resamples_free"] = mixed["share_free"]
            if used == "free":
                eq5_free = eq5_used
            else:
                eq5_e0 = eq5_used
    spread = seed_spread(pts)
    separation = identify_on_runs(
        pts, {"free": eq5_free, "e_zero": eq5_e0}, used, kappa, label,
        jackknives={key: res[f"jackknife_{key}"] for key in ("free", "e_zero")}, spread=spread,
    )  # fmt: skip
    try:
        if "fit_error" in eq5_used:
            raise ValueError(f"{label}: no eq. 5 fit: {eq5_used['fit_error']}")
        eq7 = eq7_with_intervals(eq5_used, kappa, label)
    except ValueError as err:
        # A non-positive fitted exponent is a result, not bad input: no compute-optimal
        # allocation exists for these runs. Record why; tables show the reason.
        logger.warning("%s", err)
        eq7 = _no_eq7(str(err))
    eq7.update(identify_eq7(eq7, eq5_used))
    eq7["rung_max_shift"] = max_rung_shift(
        eq5_used.get("rung_jackknife"), "gamma_c", eq7.get("gamma_c"), eq7["ci"].get("gamma_c")
    )
    for name, f in (("eq. 4 (PFLOPs)", res["eq4_flops"]), ("eq. 5", eq5_used), ("eq. 7", eq7)):
        if not f["identified"]:
            logger.warning("%s: %s not identified: %s", label, name, f["not_identified_reason"])

    fr_f = pd.DataFrame(
        {"compute_pflops": eq4_inputs["flops"][0], "val_loss": eq4_inputs["flops"][1]}
    )[eq4_inputs["flops"][2] > 0]
    nb_hold = n_boot if holdout_n_boot is None else min(n_boot, holdout_n_boot)
    hold = {} if not extrapolation else _run_tasks(
        {
            "eq5": (_attempt, (_holdout_eq5, pts, nb_hold, seed, f"{label} (holdout)",
                               used == "e_zero"), {"unit": unit}),
            "eq4_flops": (_holdout_eq4, (fr_f, nb_hold, seed, f"{label} (holdout)",
                                         holdout_fraction), {}),
        },
        n_jobs,
    )  # fmt: skip

    check = compute_check(curves, kappa, flops)
    if check["n_runs_over_10pct"]:
        logger.warning(
            "%s: C = 3 kappa N D misstates the measured compute of %d run(s) by > 10 %% "
            "(worst %.0f %%, e.g. %s); fit.compute = %r",
            label, check["n_runs_over_10pct"], 100 * check["max_rel_diff"],
            check["runs_over_10pct"][0], compute,
        )  # fmt: skip
    return {
        "arch": arch,
        "variant": variant,
        "kappa": float(kappa),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "warmup": float(warmup),
        "ema": ema,
        "e_mode": e_mode,
        "compute": compute,
        "flops": flops,
        "bootstrap_unit": unit,
        "seeds": sorted(int(v) for v in curves["seed"].unique()),
        "n_runs": int(n_runs),
        "n_run_folders": int(curves["run"].nunique()),
        "n_frontier_flops": n_front["flops"],
        "n_frontier_hours": n_front["hours"],
        "eq4_flops": res["eq4_flops"],
        "eq4_hours": res["eq4_hours"],
        "eq5_free": eq5_free,
        "eq5_e_zero": eq5_e0,
        "eq5_used": used,
        "eq5_used_reason": reason,
        "e_mode_decision": decision,
        "eq7": eq7,
        "seed_spread": spread,
        "width_separation": separation,
        "compute_check": check,
        "extrapolation": hold,
    }


def _run_tasks(tasks: dict, n_jobs: int) -> dict:
    """Run {name: (fn, args, kwargs)}, in a process pool when n_jobs > 1."""
    if n_jobs <= 1:
        return {k: fn(*a, **kw) for k, (fn, a, kw) in tasks.items()}
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
        futures = {k: pool.submit(fn, *a, **kw) for k, (fn, a, kw) in tasks.items()}
        return {k: f.result() for k, f in futures.items()}


# --------------------------------------------------------------------------- files


def _jsonable(obj):
    """Replace NaN/inf by None and NumPy scalars by Python ones, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


#: documented defaults of the config keys the fits read (``config['fit']``, ``config['kappa']``)
FIT_DEFAULTS = {
    "n_boot": 1000,
    "seed": 0,
    "skip_fraction": 0.1,
    "e_mode": "auto",
    "ema": {},
    "compute": "measured",
    "bootstrap_unit": "run",
}
KAPPA_FLOPS_DEFAULT = "counted"


def fit_options(fit: Mapping | None, arch: str | None = None, kappa: Mapping | None = None) -> dict:
    """Keyword arguments of :func:`fit_arch` from ``config['fit']`` (and ``config['kappa']``).

    Missing keys take :data:`FIT_DEFAULTS`; ``ema`` is the decay of ``arch``
    (``fit.ema: {gemnet_oc: 0.9}``; None for an arch without one).

    Returns
    -------
    dict
        ``n_boot, seed, warmup, e_mode, ema, compute, flops, unit``.
    """
    f = {**FIT_DEFAULTS, **(fit or {})}
    ema_map = f.get("ema") or {}
    if not isinstance(ema_map, Mapping):
        raise ValueError(f"config key 'fit.ema': expected {{arch: decay}}, got {ema_map!r}")
    ema = ema_map.get(arch) if arch is not None else None
    return {
        "n_boot": int(f["n_boot"]),
        "seed": int(f["seed"]),
        "warmup": float(f["skip_fraction"]),
        "e_mode": str(f["e_mode"]),
        "ema": None if ema in (None, 0) else float(ema),
        "compute": str(f["compute"]),
        "flops": str((kappa or {}).get("flops", KAPPA_FLOPS_DEFAULT)),
        "unit": str(f["bootstrap_unit"]),
    }


def write_fit(
    run_dirs: Iterable[str | Path],
    kappa: float | str | Path,
    out_json: str | Path,
    *,
    arch: str | None = None,
    frontier_csvs: tuple[str | Path, str | Path] | None = None,
    **kwargs,
) -> dict:
    """Read run folders (and ``kappa.csv`` or a kappa value), run :func:`fit_arch`, write JSON.

    ``arch`` selects the kappa row when ``kappa`` is a CSV path (default: the runs'
    arch). ``frontier_csvs`` are the PFLOPs and hours frontier files to fit eq. 4 on.
    Keyword arguments go to :func:`fit_arch`.
    """
    from pipeline.scaling.kappa import read_kappa

    curves = load_curves(run_dirs)
    if isinstance(kappa, str | Path):
        table = read_kappa(kappa)
        key = arch or str(curves["arch"].iloc[0])
        if key not in table:
            raise ValueError(f"{kappa}: no kappa for arch {key!r} (has {sorted(table)})")
        kappa = table[key]
    if frontier_csvs is not None:
        kwargs["frontiers"] = tuple(pd.read_csv(path) for path in frontier_csvs)
    fit = fit_arch(curves, float(kappa), **kwargs)
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(_jsonable(fit), indent=1))
    logger.info("wrote %s", out_json)
    return fit
