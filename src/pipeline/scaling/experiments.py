"""Analyses of the experiments (paper fig. 4, 7-9, 12, 13, 15): one function per experiment.

The figures in :mod:`pipeline.plots` only draw what these return. Every fit takes
its settings from one mapping, ``config['fit']`` (contract 3: ``n_boot, seed,
skip_fraction, e_mode, ema, compute``, plus ``config['kappa']['flops']``), read by
:func:`pipeline.scaling.fits.fit_options`, so an experiment's exponent is computed
as the fit stage computes the main study's: the same warm-up, smoothing, compute
mode and bootstrap unit (whole training passes, the frontier re-extracted in each
resample), and the same identification (contract 4: ``identified`` and
``not_identified_reason`` on every fit dict).

Fits that cannot be made (too few frontier points or runs) are not silent: the
fit is None and a warning names the reason; figures then say ``no fit``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from pipeline.scaling.fit import fit_power_law, fit_sum_law, run_counts
from pipeline.scaling.fits import fit_options, identify_on_runs
from pipeline.scaling.frontier import (
    X_COLUMNS,
    add_compute,
    frontier_candidates,
    load_curves,
    resampled_frontier_weights,
    sum_law_points,
)
from pipeline.scaling.identify import choose_e_mode

logger = logging.getLogger(__name__)

KappaArg = float | Mapping[str, float]
GROUP_AVERAGE_COLUMNS = ("arch", "width", "n_params", "num_rotations", "val_loss")


# --------------------------------------------------------------------------- inputs


def load_runs_with_meta(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """:func:`load_curves` plus the run's ``meta.json`` training settings on every row.

    Returns
    -------
    DataFrame
        The curves with ``lr`` (after muP), ``lr_base`` (NaN when absent),
        ``batch_size`` (molecules per step), ``depth`` (``hparams.num_layers``),
        ``vector_channels`` and ``lmax`` (NaN when absent) and ``hp_<key>`` for
        every scalar entry of ``hparams``.

    Raises
    ------
    ValueError
        A meta.json without ``lr`` or ``batch_size``, or not a JSON object (named).
    """
    run_dirs = [Path(p) for p in run_dirs]
    curves = load_curves(run_dirs)
    rows = []
    for rd in run_dirs:
        path = rd / "meta.json"
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: not a JSON object")
        missing = [k for k in ("lr", "batch_size") if k not in meta]
        if missing:
            raise ValueError(f"{path}: missing key(s) {missing}")
        hp = meta.get("hparams") or {}
        if not isinstance(hp, dict):
            raise ValueError(f"{path}: 'hparams' must be an object, got {type(hp).__name__}")
        row = {
            "run": str(rd),
            "lr": float(meta["lr"]),
            "lr_base": float(meta.get("lr_base", np.nan)),
            "batch_size": int(meta["batch_size"]),
        }
        for col, key in (
            ("depth", "num_layers"),
            ("vector_channels", "vector_channels"),
            ("lmax", "lmax"),
        ):
            value = hp.get(key)
            if value is not None and not isinstance(value, int | float):
                raise ValueError(f"{path}: hparams.{key} must be a number, got {value!r}")
            row[col] = np.nan if value is None else float(value)
        for k, v in hp.items():
            if isinstance(v, int | float | str | bool) or v is None:
                row[f"hp_{k}"] = v
        rows.append(row)
    out = curves.merge(pd.DataFrame(rows), on="run", how="left", validate="many_to_one")
    out.attrs = curves.attrs
    return out


def final_losses(curves: pd.DataFrame) -> pd.DataFrame:
    """Last evaluation (largest step) of every run: one row per run, sorted by arch, N."""
    if curves.empty:
        raise ValueError("final_losses: no curve rows")
    last = curves.loc[curves.groupby("run", sort=False)["step"].idxmax()]
    return last.sort_values(["arch", "n_params", "run"], kind="stable").reset_index(drop=True)


def read_group_average(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate test-time group-averaging CSVs (``arch, width, n_params, num_rotations,
    val_loss``, one row per (model, M)); a missing column raises naming the file."""
    frames = []
    for p in paths:
        df = pd.read_csv(p)
        require(df, GROUP_AVERAGE_COLUMNS, str(p))
        frames.append(df)
    if not frames:
        raise ValueError("no test-time group-averaging CSVs given")
    return pd.concat(frames, ignore_index=True)


def require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    """Raise ValueError naming ``what`` when ``df`` lacks a column or has no rows."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: no rows")


def kappa_for(label: str, curves: pd.DataFrame, kappa: KappaArg) -> float:
    """kappa of an arm: a float, ``kappa[label]`` or ``kappa[arch]`` of the arm's runs."""
    if not isinstance(kappa, Mapping):
        return float(kappa)
    if label in kappa:
        return float(kappa[label])
    archs = sorted(set(curves["arch"]))
    if len(archs) == 1 and archs[0] in kappa:
        return float(kappa[archs[0]])
    raise ValueError(f"no kappa for {label!r} (arch {archs}); have {sorted(kappa)}")


# --------------------------------------------------------------------------- fits


def _options(fit: Mapping | None, curves: pd.DataFrame, kappa_config: Mapping | None) -> dict:
    archs = sorted(set(curves["arch"])) if "arch" in curves.columns else []
    return fit_options(fit, archs[0] if len(archs) == 1 else None, kappa_config)


def with_compute(
    curves: pd.DataFrame,
    kappa: float,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    compute_factor: float = 1.0,
) -> pd.DataFrame:
    """``curves`` with ``compute_pflops`` as :func:`frontier_fit` computes it (``fit.compute``)."""
    opt = _options(fit, curves, kappa_config)
    factor = 1.0 if opt["compute"] == "measured" else float(compute_factor)
    return add_compute(curves, float(kappa) * factor, compute=opt["compute"], flops=opt["flops"])


def frontier_fit(
    curves: pd.DataFrame,
    kappa: float,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    x: str = "flops",
    label: str = "",
    compute_factor: float = 1.0,
    n_boot: int | None = None,
    seed_offset: int = 0,
) -> tuple[pd.DataFrame, dict | None]:
    """Pareto frontier of all runs in ``curves`` (one envelope) and its eq. (4) fit.

    Parameters
    ----------
    curves : DataFrame
        Learning curves of one experiment arm (:func:`load_curves`).
    kappa : float
        Forward FLOPs per parameter per atom (used when ``fit.compute`` is kappa).
    fit : mapping, optional
        ``config['fit']``; warm-up, EMA of the arm's arch, compute mode, n_boot,
        seed and bootstrap unit come from it.
    kappa_config : mapping, optional
        ``config['kappa']`` (``flops``: counted or total, for measured compute).
    x : {"flops", "hours"}
        Compute axis.
    label : str
        Name in logs.
    compute_factor : float
        Multiplies every row's FLOPs when kappa compute is used (M + 1 for a
        symmetry loss over M rotated copies); measured compute already counts
        the extra forward passes (``forward_passes_per_step``).
    n_boot : int, optional
        Overrides ``fit['n_boot']`` (e.g. 0 for a frontier drawn without a band).
    seed_offset : int
        Added to ``fit['seed']`` (distinct resamples per arm).

    Returns
    -------
    (DataFrame, dict or None)
        The frontier (``compute_pflops`` or ``hours``, ``val_loss``, run columns) and
        the :func:`fit_power_law` result with bootstrap samples and
        ``identified``, or None (logged) when the frontier is too small to fit.
    """
    opt = _options(fit, curves, kappa_config)
    nb = opt["n_boot"] if n_boot is None else int(n_boot)
    seed = opt["seed"] + seed_offset
    c = curves.copy()
    c["arch"], c["variant"] = label or "curves", "frontier"
    if "run_id" not in c.columns:
        c["run_id"] = c["run"]
    factor = 1.0 if opt["compute"] == "measured" else float(compute_factor)
    cand = frontier_candidates(
        c,
        float(kappa) * factor,
        x,
        warmup=opt["warmup"],
        ema=opt["ema"],
        compute=opt["compute"],
        flops=opt["flops"],
    )
    col = X_COLUMNS[x]
    xs, ls = cand[col].to_numpy(float), cand["val_loss"].to_numpy(float)
    run_ids, codes = np.unique(cand["run_id"].astype(str).to_numpy(), return_inverse=True)
    w_full = resampled_frontier_weights(xs, ls, codes, np.ones((1, run_ids.size)))[0]
    fr = cand.loc[w_full > 0].sort_values(col, kind="stable").reset_index(drop=True)
    fr.attrs["x"] = col
    kw: dict = {"label": label, "return_samples": True}
    if nb > 0 and opt["unit"] != "point" and run_ids.size > 1:
        counts = run_counts(run_ids.size, nb, seed)
        w_boot = resampled_frontier_weights(xs, ls, codes, counts)
        keep = (w_full > 0) | (w_boot > 0).any(axis=0)
        xs, ls = xs[keep], ls[keep]
        kw.update(weights=w_full[keep], boot_weights=w_boot[:, keep], unit="run")
    else:
        keep = w_full > 0
        xs, ls = xs[keep], ls[keep]
    try:
        result = fit_power_law(xs, ls, nb, seed, **kw)
    except ValueError as err:
        logger.warning("%s: no eq. 4 fit (%s)", label, err)
        result = None
    return fr, result


def compare_frontiers(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: KappaArg,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    compute_factors: Mapping[str, float] | None = None,
) -> dict[str, tuple[pd.DataFrame, dict | None]]:
    """:func:`frontier_fit` of every arm (figs. 4, 9, 12): {label: (frontier, fit)}."""
    if not curves_by_label:
        raise ValueError("no curves given")
    out = {}
    for i, (label, c) in enumerate(curves_by_label.items()):
        require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
        out[label] = frontier_fit(
            c,
            kappa_for(label, c, kappa),
            fit=fit,
            kappa_config=kappa_config,
            label=label,
            compute_factor=(compute_factors or {}).get(label, 1.0),
            seed_offset=i,
        )
    return out


def sum_law_fit(
    points: pd.DataFrame, *, fit: Mapping | None = None, label: str = "", seed_offset: int = 0
) -> dict | None:
    """Eq. (5) on an arm's (n, d, loss) points, the free or E = 0 fit as ``fit.e_mode`` says.

    The E choice is :func:`pipeline.scaling.identify.choose_e_mode` (AICc) for
    ``auto``, as in the fit stage; the bootstrap resamples training passes
    (``run_id``) when the points carry them; identification applies the fit stage's
    tests, those on the runs included (:func:`pipeline.scaling.fits.identify_on_runs`).
    Returns None (logged) with too few runs.
    """
    opt = _options(fit, points, None)
    groups = points["run_id"] if "run_id" in points.columns else None
    unit = opt["unit"] if groups is not None else "point"
    args = (points["n"], points["d"], points["loss"], opt["n_boot"], opt["seed"] + seed_offset)
    kw = {"label": label, "return_samples": True, "groups": groups, "unit": unit}
    fits = {}
    for name, extra in (("free", {"compare_e_zero": False}), ("e_zero", {"fix_e_zero": True})):
        try:
            fits[name] = fit_sum_law(*args, **kw, **extra)
        except ValueError as err:
            logger.warning("%s: no eq. 5 fit (%s, %s)", label, name, err)
    if not fits:
        return None
    if opt["e_mode"] in fits:
        used = opt["e_mode"]
    elif len(fits) == 2:
        used = choose_e_mode(fits["free"], fits["e_zero"])["used"]
    else:
        used = next(iter(fits))
    separation = None
    if "fraction" in points.columns:
        separation = identify_on_runs(points, fits, used, 1.0, label)  # gamma_c: any kappa
    return {**fits[used], "eq5_fit": used, "width_separation": separation}


def symmetry_loss_analysis(
    arms: Mapping[str, pd.DataFrame],
    kappa: float,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    compute_factors: Mapping[str, float] | None = None,
) -> dict[str, dict]:
    """Fig. 7: per arm, the frontier with eq. (4) and the final-loss points with eq. (5).

    Returns
    -------
    {label: {"frontier", "eq4", "points", "eq5"}}
        ``eq4``/``eq5`` are fit dicts (with ``identified``) or None.
    """
    out = {}
    for i, (label, c) in enumerate(arms.items()):
        require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
        fr, eq4 = frontier_fit(
            c,
            kappa,
            fit=fit,
            kappa_config=kappa_config,
            label=label,
            compute_factor=(compute_factors or {}).get(label, 1.0),
            seed_offset=i,
        )
        pts = sum_law_points(c, ema=_options(fit, c, None)["ema"])
        out[label] = {
            "frontier": fr,
            "eq4": eq4,
            "points": pts,
            "eq5": sum_law_fit(pts, fit=fit, label=label, seed_offset=i),
        }
    return out


def trend_break(
    frontier: pd.DataFrame, *, fit_share: float = 0.5, tol: float = 0.05, xcol="compute_pflops"
) -> dict:
    """Where a log-log frontier leaves the power law of its early part (fig. 8).

    Eq. (4) is fitted (no bootstrap) to the frontier points in the first
    ``fit_share`` of its log-compute range; the break is the first point after
    which every later point lies more than ``tol`` (relative) above that law.

    Returns
    -------
    dict
        ``fit`` (eq. 4 dict of the early part, or None with fewer than 3 points),
        ``x_fit_max`` (compute limit of the early part), ``break_x`` and
        ``break_epoch`` (None when the law holds to the end).
    """
    x = frontier[xcol].to_numpy(dtype=float)
    y = frontier["val_loss"].to_numpy(dtype=float)
    lx = np.log(x)
    x_fit_max = float(np.exp(lx.min() + fit_share * (lx.max() - lx.min())))
    early = x <= x_fit_max
    out = {"fit": None, "x_fit_max": x_fit_max, "break_x": None, "break_epoch": None}
    if early.sum() < 3 or np.unique(x[early]).size < 2:
        return out
    fit = fit_power_law(x[early], y[early], 0, label="early frontier")
    out["fit"] = fit
    above = y > (1 + tol) * fit["F"] * x ** -fit["gamma"]
    tail_all = np.flip(np.logical_and.accumulate(np.flip(above)))
    idx = np.flatnonzero(tail_all & ~early)
    if idx.size:
        out["break_x"] = float(x[idx[0]])
        if "epoch" in frontier.columns:
            out["break_epoch"] = float(frontier["epoch"].iloc[idx[0]])
    return out


def multi_epoch_analysis(
    arms: Mapping[str, pd.DataFrame],
    kappa: float,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    fit_share: float = 0.5,
    tol: float = 0.05,
) -> dict[str, dict]:
    """Fig. 8: per arm, frontier, eq. (4) fit and :func:`trend_break` of the frontier."""
    out = {}
    for i, (label, c) in enumerate(arms.items()):
        require(c, ("run", "n_params", "atoms_seen", "val_loss", "epoch"), f"curves {label!r}")
        fr, eq4 = frontier_fit(
            c, kappa, fit=fit, kappa_config=kappa_config, label=label, seed_offset=i
        )
        tb = trend_break(fr, fit_share=fit_share, tol=tol)
        if tb["fit"] is None:
            logger.warning("%s: too few early frontier points for the trend", label)
        out[label] = {"frontier": fr, "eq4": eq4, "trend": tb}
    return out


def estimate_floor(groups: Iterable[tuple[np.ndarray, np.ndarray]], cap: float = 0.95) -> float:
    """Shared loss floor L_D of eq. (24) by profile least squares.

    For a candidate L_D, each group's ``log(L - L_D)`` is regressed linearly on
    ``log N``; the estimate minimises the summed squared residuals over
    ``0 <= L_D <= cap * min(L)``. With fewer than 3 sizes in every group the floor
    is not identifiable and 0 is returned (logged).

    Parameters
    ----------
    groups : iterable of (n [k], loss [k])
        Parameter counts and losses of each curve (e.g. baseline and GA).
    cap : float
        Upper bound of L_D as a share of the smallest loss.
    """
    groups = [(np.log(np.asarray(n, float)), np.asarray(y, float)) for n, y in groups]
    if not groups or max(np.unique(ln).size for ln, _ in groups) < 3:
        logger.warning("eq. 24: fewer than 3 model sizes; L_D not identifiable, using 0")
        return 0.0
    y_min = min(float(y.min()) for _, y in groups)

    def sse(ld: float) -> float:
        tot = 0.0
        for ln, y in groups:
            if np.unique(ln).size < 2:
                continue
            ly = np.log(y - ld)
            coef = np.polyfit(ln, ly, 1)
            tot += float(np.sum((np.polyval(coef, ln) - ly) ** 2))
        return tot

    res = minimize_scalar(sse, bounds=(0.0, cap * y_min), method="bounded")
    if not res.success:
        raise ValueError(f"eq. 24: L_D search failed ({res.message})")
    if res.x > 0.99 * cap * y_min:
        logger.warning(
            "eq. 24: L_D estimate %.4g sits at its bound (%.0f %% of the lowest "
            "loss); the data do not pin the floor down",
            res.x,
            100 * cap,
        )
    return float(res.x)


def group_average_analysis(
    tta: pd.DataFrame, L_D: float | None = None, *, fit: Mapping | None = None
) -> dict:
    """Fig. 13: eq. (24) ``L - L_D = A N^-alpha`` for the baseline (M = 1) and GA (largest M).

    Returns
    -------
    dict
        ``L_D``, ``how`` ("given" or "estimated"), ``m_ga`` and ``arms``:
        {name: {"points": DataFrame (n_params, val_loss), "fit": dict or None}}.
    """
    require(tta, GROUP_AVERAGE_COLUMNS, "group averaging")
    ms = sorted(tta["num_rotations"].unique())
    if 1 not in ms:
        raise ValueError(f"group averaging: no baseline rows with num_rotations == 1 (M = {ms})")
    m_ga = max(ms)
    if m_ga == 1:
        raise ValueError("group averaging: only M = 1 given; need rows with M > 1")
    opt = fit_options(fit)
    arms = {}
    for m, name in ((1, "baseline (M=1)"), (m_ga, f"GA (M={m_ga})")):
        g = tta[tta["num_rotations"] == m].groupby("n_params", as_index=False)["val_loss"].mean()
        arms[name] = {"points": g, "fit": None}
    how = "given"
    if L_D is None:
        L_D = estimate_floor(
            [(a["points"]["n_params"], a["points"]["val_loss"]) for a in arms.values()]
        )
        how = "estimated"
    for i, (name, arm) in enumerate(arms.items()):
        g = arm["points"]
        y = g["val_loss"].to_numpy() - L_D
        if np.any(y <= 0):
            raise ValueError(f"group averaging: L_D = {L_D:.4g} is not below every {name} loss")
        try:
            arm["fit"] = fit_power_law(
                g["n_params"].to_numpy(float),
                y,
                opt["n_boot"],
                opt["seed"] + i,
                label=f"eq. 24 {name}",
                return_samples=True,
            )
        except ValueError as err:
            logger.warning("group averaging %s: no eq. 24 fit (%s)", name, err)
    return {"L_D": float(L_D), "how": how, "m_ga": int(m_ga), "arms": arms}
