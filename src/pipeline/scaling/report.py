"""Everything the fit stage writes: ``results/fits/{arch}.json``, Tables 1 and 7, allocation.

:func:`fit_arch` runs, for one architecture: eq. (4) on the FLOPs and hours
frontiers, eq. (5) free and with E = 0, eq. (7) with intervals carried through
the bootstrap of eq. (5), and an extrapolation check (refit without the
largest-compute frontier points / the largest model, predict the held-out loss).
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
    SUM_LAW_PARAMS,
    _percentile_ci,
    compute_optimal,
    fit_power_law,
    fit_sum_law,
    optimal_allocation,
)
from pipeline.scaling.frontier import load_curves, pareto_frontier, sum_law_points

logger = logging.getLogger(__name__)

EQ7_KEYS = ("G", "a", "b", "gamma_c", "F_c")


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


EQ7_KEYS = ("G", "a", "b", "gamma_c", "F_c")


def _no_eq7(reason: str) -> dict:
    """The eq. 7 entry of an arch whose eq. 5 fit has no compute-optimal law."""
    nan = float("nan")
    return {
        **dict.fromkeys(EQ7_KEYS, nan),
        "ci": {key: [nan, nan] for key in EQ7_KEYS},
        "error": reason,
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


def _holdout_eq5(pts: pd.DataFrame, n_boot: int, seed: int, label: str, e_zero: bool) -> dict:
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


def fit_arch(
    curves: pd.DataFrame,
    kappa: float,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    warmup: float = 0.1,
    ema: float | None = None,
    e_mode: Literal["auto", "free", "e_zero"] = "auto",
    holdout_fraction: float = 0.1,
    holdout_n_boot: int | None = 200,
    n_jobs: int = 1,
    frontiers: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> dict:
    """All fits of one architecture (the content of ``results/fits/{arch}.json``).

    Parameters
    ----------
    curves : DataFrame
        :func:`pipeline.scaling.frontier.load_curves` output for one (arch, variant).
    kappa : float
        Forward FLOPs per parameter per atom of this arch.
    n_boot, seed : int
        Bootstrap resamples for every fit, and the seed (each fit uses it).
    warmup : float
        Fraction of each run's atoms excluded from the frontier.
    ema : float, optional
        EMA smoothing factor of the curves (frontier and triplets).
    e_mode : {"auto", "free", "e_zero"}
        Which eq. (5) fit feeds Table 1, eq. (7) and the allocation. ``"auto"``:
        E fixed to 0 when D spans fewer than one decade (E and beta trade off),
        the free fit otherwise. Both fits are always reported.
    holdout_fraction : float
        Fraction of frontier points (largest compute) held out in the eq. (4)
        extrapolation check.
    holdout_n_boot : int, optional
        Bootstrap resamples of the extrapolation refits (their intervals only
        qualify the prediction); None: ``n_boot``.
    n_jobs : int
        Worker processes for the independent fits (1: run them in this process).
    frontiers : (DataFrame, DataFrame), optional
        The PFLOPs and hours frontiers (the frontier stage's files) to fit eq. 4 on;
        computed from ``curves`` with ``warmup`` and ``ema`` when omitted.

    Returns
    -------
    dict
        ``arch, variant, kappa, eq4_flops, eq4_hours, eq5_free, eq5_e_zero`` (each a
        fit dict; eq. 5 ones with bootstrap ``samples``), ``eq5_used`` ("free" or
        "e_zero") with ``eq5_used_reason``, ``eq7`` (with ``ci``),
        ``extrapolation`` ({"eq4_flops": .., "eq5": ..}) and point counts.

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
    arch, variant = (str(v) for v in groups.iloc[0])
    label = arch if variant == "base" else f"{arch}/{variant}"
    if frontiers is None:
        fr_f = pareto_frontier(curves, kappa, "flops", warmup=warmup, ema=ema)
        fr_h = pareto_frontier(curves, kappa, "hours", warmup=warmup, ema=ema)
    else:
        fr_f, fr_h = frontiers
    pts = sum_law_points(curves, ema=ema)

    if e_mode not in ("auto", "free", "e_zero"):
        raise ValueError(f"e_mode must be 'auto', 'free' or 'e_zero', got {e_mode!r}")
    d_span = float(np.log10(pts["d"].max() / pts["d"].min()))
    used = e_mode if e_mode != "auto" else ("e_zero" if d_span < 1.0 else "free")
    reason = (
        f"e_mode = {e_mode!r} requested"
        if e_mode != "auto"
        else f"D spans {d_span:.2f} decades (< 1): E and beta trade off"
        if used == "e_zero"
        else f"D spans {d_span:.2f} decades (>= 1): free fit identifiable"
    )
    n_, d_, l_ = pts["n"], pts["d"], pts["loss"]
    nb_hold = n_boot if holdout_n_boot is None else min(n_boot, holdout_n_boot)
    tasks = {  # most expensive first, for the process pool
        "eq5_free": (fit_sum_law, (n_, d_, l_, n_boot, seed),
                     {"label": label, "compare_e_zero": False, "return_samples": True}),
        "holdout_eq5": (_holdout_eq5, (pts, nb_hold, seed, f"{label} (holdout)",
                                       used == "e_zero"), {}),
        "eq5_e_zero": (fit_sum_law, (n_, d_, l_, n_boot, seed),
                       {"label": label, "fix_e_zero": True, "return_samples": True}),
        "eq4_flops": (fit_power_law, (fr_f["compute_pflops"], fr_f["val_loss"], n_boot, seed),
                      {"label": f"{label} (PFLOPs frontier)", "return_samples": True}),
        "eq4_hours": (fit_power_law, (fr_h["hours"], fr_h["val_loss"], n_boot, seed),
                      {"label": f"{label} (hours frontier)", "return_samples": True}),
        "holdout_eq4": (_holdout_eq4, (fr_f, nb_hold, seed, f"{label} (holdout)",
                                       holdout_fraction), {}),
    }  # fmt: skip
    res = _run_tasks(tasks, n_jobs)
    eq5_used = res["eq5_free"] if used == "free" else res["eq5_e_zero"]
    try:
        eq7 = eq7_with_intervals(eq5_used, kappa, label)
    except ValueError as err:
        # A non-positive fitted exponent is a result, not bad input: no compute-optimal
        # allocation exists for these runs. Record why; tables show NaN with the reason.
        logger.warning("%s", err)
        eq7 = _no_eq7(str(err))
    extrap = {"eq4_flops": res["holdout_eq4"], "eq5": res["holdout_eq5"]}
    eq4_f, eq4_h, eq5_free, eq5_e0 = (
        res[k] for k in ("eq4_flops", "eq4_hours", "eq5_free", "eq5_e_zero")
    )
    return {
        "arch": arch,
        "variant": variant,
        "kappa": float(kappa),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "warmup": float(warmup),
        "ema": ema,
        "n_runs": int(curves["run"].nunique()),
        "n_frontier_flops": int(len(fr_f)),
        "n_frontier_hours": int(len(fr_h)),
        "eq4_flops": eq4_f,
        "eq4_hours": eq4_h,
        "eq5_free": eq5_free,
        "eq5_e_zero": eq5_e0,
        "eq5_used": used,
        "eq5_used_reason": reason,
        "eq7": eq7,
        "extrapolation": extrap,
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


def read_fits(paths: Iterable[str | Path]) -> dict[str, dict]:
    """Read ``results/fits/*.json`` files (or a folder) -> {label: fit dict}.

    The label is the arch, or ``arch/variant`` for non-base variants.
    """
    fits = {}
    files = []
    for p in [paths] if isinstance(paths, str | Path) else paths:
        p = Path(p)
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    if not files:
        raise ValueError(f"no fit JSON files in {paths}")
    for f in files:
        d = json.loads(Path(f).read_text())
        for key in ("arch", "eq4_flops", "eq7", "eq5_used"):
            if key not in d:
                raise ValueError(f"{f}: missing key {key!r}; not a fit_arch output")
        label = d["arch"] if d.get("variant", "base") == "base" else f"{d['arch']}/{d['variant']}"
        fits[label] = d
    return fits


def _nan(v):
    return float("nan") if v is None else float(v)


def table1(fits: Mapping[str, dict]) -> pd.DataFrame:
    """Table 1: F_c and gamma_c from the frontier (eq. 4) and from eq. (5) via eq. (7).

    Returns
    -------
    DataFrame
        Columns ``arch, param`` ("F_c" or "gamma_c"), ``eq4, eq4_lo, eq4_hi, eq7,
        eq7_lo, eq7_hi, eq5_fit`` (which eq. 5 fit eq. 7 uses). F_c for C in PFLOPs.
    """
    rows = []
    for arch, f in fits.items():
        e4, e7 = f["eq4_flops"], f["eq7"]
        for param, k4, k7 in (("F_c", "F", "F_c"), ("gamma_c", "gamma", "gamma_c")):
            rows.append(
                {
                    "arch": arch,
                    "param": param,
                    "eq4": _nan(e4[k4]),
                    "eq4_lo": _nan(e4["ci"][k4][0]),
                    "eq4_hi": _nan(e4["ci"][k4][1]),
                    "eq7": _nan(e7[k7]),
                    "eq7_lo": _nan(e7["ci"][k7][0]),
                    "eq7_hi": _nan(e7["ci"][k7][1]),
                    "eq5_fit": f["eq5_used"],
                    "note": e7.get("error", ""),
                }
            )
    return pd.DataFrame(rows)


def table7(fits: Mapping[str, dict]) -> pd.DataFrame:
    """Table 7: eq. (5) parameters with 95 % intervals (the fit Table 1 uses).

    Returns
    -------
    DataFrame
        ``arch, eq5_fit, log10_A(_lo, _hi), log10_B(..), alpha(..), beta(..), E(..),
        n_boot_failed``.
    """
    rows = []
    for arch, f in fits.items():
        used = f["eq5_used"]
        s = f["eq5_free"] if used == "free" else f["eq5_e_zero"]
        row = {"arch": arch, "eq5_fit": used}
        for name, key, tf in (
            ("log10_A", "A", np.log10),
            ("log10_B", "B", np.log10),
            ("alpha", "alpha", float),
            ("beta", "beta", float),
            ("E", "E", float),
        ):
            row[name] = float(tf(_nan(s[key])))
            lo, hi = s["ci"][key]
            row[f"{name}_lo"] = float(tf(_nan(lo)))
            row[f"{name}_hi"] = float(tf(_nan(hi)))
        row["n_boot_failed"] = int(s["n_boot_failed"])
        rows.append(row)
    return pd.DataFrame(rows)


def allocation(fits: Mapping[str, dict], budgets_pflops) -> pd.DataFrame:
    """Compute-optimal N, D and loss at given budgets, with 95 % bootstrap intervals.

    Parameters
    ----------
    fits : {label: fit dict}
        :func:`fit_arch` outputs (with eq. 5 bootstrap samples).
    budgets_pflops : float or sequence of float
        Training compute budgets in PFLOPs.

    Returns
    -------
    DataFrame
        One row per (arch, budget): ``arch, budget_pflops, n_opt, n_opt_lo, n_opt_hi,
        d_opt`` (atoms), ``d_opt_lo, d_opt_hi, loss, loss_lo, loss_hi, eq5_fit,
        extrapolated`` (budget outside the observed frontier compute range).
    """
    budgets = np.atleast_1d(np.asarray(budgets_pflops, dtype=np.float64))
    if budgets.size == 0 or np.any(~np.isfinite(budgets)) or np.any(budgets <= 0):
        raise ValueError(f"budgets must be finite and > 0 PFLOPs, got {budgets.tolist()}")
    rows = []
    for arch, f in fits.items():
        if "error" in f["eq7"]:
            logger.warning("%s: no allocation: %s", arch, f["eq7"]["error"])
            continue
        used = f["eq5_used"]
        s = f["eq5_free"] if used == "free" else f["eq5_e_zero"]
        kappa = f["kappa"]
        pt = optimal_allocation(s["A"], s["B"], s["alpha"], s["beta"], kappa, budgets, E=s["E"])
        smp = _samples(s)
        bs = optimal_allocation(
            smp["A"], smp["B"], smp["alpha"], smp["beta"], kappa, budgets, E=smp["E"]
        )
        lo_c, hi_c = f["eq4_flops"]["x_range"]
        for j, c in enumerate(budgets):
            row = {"arch": arch, "budget_pflops": float(c)}
            for key in ("n_opt", "d_opt", "loss"):
                row[key] = float(np.ravel(pt[key])[j])
                col = bs[key][:, j] if smp["A"].size else np.empty(0)
                row[f"{key}_lo"], row[f"{key}_hi"] = _percentile_ci(col)
            row["eq5_fit"] = used
            row["extrapolated"] = bool(c < lo_c or c > hi_c)
            rows.append(row)
    return pd.DataFrame(rows)


def write_tables(
    fit_paths: Iterable[str | Path],
    table1_csv: str | Path | None = None,
    table7_csv: str | Path | None = None,
    allocation_csv: str | Path | None = None,
    budgets_pflops=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3),
) -> None:
    """Read fit JSONs; write whichever of table1, table7 and allocation CSVs are given."""
    fits = read_fits(fit_paths)
    for path, fn in (
        (table1_csv, lambda: table1(fits)),
        (table7_csv, lambda: table7(fits)),
        (allocation_csv, lambda: allocation(fits, budgets_pflops)),
    ):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fn().to_csv(path, index=False)
            logger.info("wrote %s", path)
