"""Figures of the experiments (paper fig. 4 and 7-16), one function per figure, each a PDF.

Every ``plot_fig*`` is "data in, file out": it takes the learning curves of
:func:`pipeline.scaling.frontier.load_curves` (or :func:`load_runs_with_meta`,
which adds the run's ``meta.json`` fields), fits what the paper's figure shows
(eq. 4 on loss-compute frontiers, eq. 5 on final losses, eq. 24 on test-time
group averaging) with bootstrap 95 % bands, and writes ``out_path``.

Fits that cannot be made (too few frontier points or runs) are not silent: the
figure shows the data, the legend says ``no fit`` and a warning names the reason.
Compute is ``C = 3 kappa N D`` in PFLOPs with ``D`` the atoms seen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402

from pipeline.plots.figures import (  # noqa: E402
    X_LABELS,
    _colors,
    _power_law_band,
    _style,
    _sum_law,
    _sum_law_band,
)
from pipeline.plots.figures import _save as _save_figure  # noqa: E402
from pipeline.scaling.fit import fit_power_law, fit_sum_law  # noqa: E402
from pipeline.scaling.frontier import (  # noqa: E402
    add_compute,
    load_curves,
    pareto_frontier,
    sum_law_points,
)

logger = logging.getLogger(__name__)

D_LABEL = "Training atoms seen D"
N_LABEL = "Parameters N"
CMAP = "viridis"

# --------------------------------------------------------------------------- output


def _tick_label(v: float, _pos=None) -> str:
    """Plain numbers between 1e-3 and 1e4, ``m x 10^e`` outside."""
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:g}"
    e = int(np.floor(np.log10(abs(v))))
    m = v / 10**e
    return rf"$10^{{{e}}}$" if np.isclose(m, 1) else rf"${m:.2g}\times10^{{{e}}}$"


def _save(fig, out_path: str | Path) -> Path:
    """Label short log axes with 1-2-5 ticks, then save as the other figures do.

    A log axis spanning less than 2 decades has one or two decade ticks, and
    the shared saver hides minor labels; such axes get major ticks at 1-2-5 (y;
    1-3 on x) times powers of ten, more below one decade, labelled in plain
    numbers, so the values stay readable in print.
    """
    fig.canvas.draw()  # settle limits
    for ax in fig.axes:
        for axis, scale, lim in (
            (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
            (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
        ):
            lo, hi = sorted(lim)
            if scale == "log" and lo > 0 and np.log10(hi / lo) < 2.0:
                short = np.log10(hi / lo) < 1.0
                if axis is ax.xaxis:  # horizontal labels are wide: fewer ticks
                    subs = (1.0, 2.0, 3.0, 5.0) if short else (1.0, 3.0)
                else:
                    subs = (1.0, 1.5, *range(2, 10)) if short else (1.0, 2.0, 5.0)
                axis.set_major_locator(LogLocator(base=10, subs=subs))
                axis.set_major_formatter(FuncFormatter(_tick_label))
    return _save_figure(fig, out_path)


# --------------------------------------------------------------------------- inputs


def load_runs_with_meta(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """:func:`load_curves` plus the run's ``meta.json`` training settings on every row.

    Parameters
    ----------
    run_dirs : iterable of path
        Run folders holding ``curve.csv`` and ``meta.json``.

    Returns
    -------
    DataFrame
        The curves with extra columns ``lr`` (the learning rate used, after muP),
        ``lr_base`` (eta* at the base width; NaN when meta has none),
        ``batch_size`` (molecules per step), ``depth`` (``hparams.num_layers``),
        ``vector_channels`` and ``lmax`` (from ``hparams``; NaN when absent) and
        ``hp_<key>`` for every scalar entry of ``hparams``.

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
        for col, key in (("depth", "num_layers"), ("vector_channels", "vector_channels"),
                         ("lmax", "lmax")):  # fmt: skip
            value = hp.get(key)
            if value is not None and not isinstance(value, int | float):
                raise ValueError(f"{path}: hparams.{key} must be a number, got {value!r}")
            row[col] = np.nan if value is None else float(value)
        for k, v in hp.items():
            if isinstance(v, int | float | str | bool) or v is None:
                row[f"hp_{k}"] = v
        rows.append(row)
    meta_df = pd.DataFrame(rows)
    out = curves.merge(meta_df, on="run", how="left", validate="many_to_one")
    out.attrs = curves.attrs
    return out


def final_losses(curves: pd.DataFrame) -> pd.DataFrame:
    """Last evaluation (largest step) of every run: one row per run, all columns kept.

    Parameters
    ----------
    curves : DataFrame
        :func:`load_runs_with_meta` (or :func:`load_curves`) output.

    Returns
    -------
    DataFrame
        One row per ``run`` with that run's final ``val_loss`` and, when present,
        ``batch_size``, ``lr``, ``depth`` and the other meta columns; sorted by
        ``arch, n_params``.
    """
    if curves.empty:
        raise ValueError("final_losses: no curve rows")
    last = curves.loc[curves.groupby("run", sort=False)["step"].idxmax()]
    return last.sort_values(["arch", "n_params", "run"], kind="stable").reset_index(drop=True)


def data_limited_loss(sum_fit: Mapping, d: float) -> float:
    """L_D = E + B D^-beta of an eq. (5) fit: the loss floor at D training atoms (eq. 24)."""
    return float(sum_fit["E"] + sum_fit["B"] * float(d) ** -sum_fit["beta"])


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: no rows")


def _kappa_for(label: str, curves: pd.DataFrame, kappa: float | Mapping[str, float]) -> float:
    """kappa of a label: a float, ``kappa[label]`` or ``kappa[arch]`` of the label's runs."""
    if not isinstance(kappa, Mapping):
        return float(kappa)
    if label in kappa:
        return float(kappa[label])
    archs = sorted(set(curves["arch"]))
    if len(archs) == 1 and archs[0] in kappa:
        return float(kappa[archs[0]])
    raise ValueError(f"no kappa for {label!r} (arch {archs}); have {sorted(kappa)}")


# --------------------------------------------------------------------------- fitting


def _fmt_ci(value: float, ci) -> str:
    lo, hi = ci
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{value:.3f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def frontier_fit(
    curves: pd.DataFrame,
    kappa: float,
    *,
    x: str = "flops",
    label: str = "",
    n_boot: int = 200,
    seed: int = 0,
    warmup: float = 0.1,
    compute_factor: float = 1.0,
) -> tuple[pd.DataFrame, dict | None]:
    """Pareto frontier of all runs in ``curves`` (as one group) and its eq. (4) fit.

    Parameters
    ----------
    curves : DataFrame
        Learning curves of one experiment arm (any archs/variants: one envelope).
    kappa : float
        Forward FLOPs per parameter per atom.
    x : {"flops", "hours"}
        Compute axis.
    label : str
        Name in logs and error messages.
    n_boot, seed : int
        Bootstrap resamples of the fit and their seed.
    warmup : float
        Fraction of each run's atoms excluded (as the frontier stage does).
    compute_factor : float
        Multiplies the FLOPs of every row (e.g. M + 1 for a symmetry loss over M
        rotated copies that ``atoms_seen`` does not count).

    Returns
    -------
    (DataFrame, dict or None)
        The frontier (``compute_pflops``, ``hours``, ``val_loss`` ...) and the
        :func:`fit_power_law` result with bootstrap samples, or None (logged) when
        the frontier is too small to fit.
    """
    c = curves.copy()
    c["arch"] = label or "curves"
    c["variant"] = "frontier"
    fr = pareto_frontier(c, float(kappa) * float(compute_factor), x, warmup=warmup)
    col = fr.attrs["x"]
    try:
        fit = fit_power_law(fr[col], fr["val_loss"], n_boot, seed, label=label,
                            return_samples=True)  # fmt: skip
    except ValueError as err:
        logger.warning("%s: no eq. 4 fit (%s)", label, err)
        fit = None
    return fr, fit


def _eq5_fit(points: pd.DataFrame, label: str, n_boot: int, seed: int) -> dict | None:
    """Eq. (5) on (n, d, loss); E = 0 when D spans < 1 decade (as the fit stage). None: too few."""
    try:
        fit = fit_sum_law(points["n"], points["d"], points["loss"], n_boot, seed, label=label,
                          return_samples=True)  # fmt: skip
    except ValueError as err:
        logger.warning("%s: no free eq. 5 fit (%s); fitting with E = 0", label, err)
        try:
            fit = fit_sum_law(points["n"], points["d"], points["loss"], n_boot, seed,
                              label=label, fix_e_zero=True, return_samples=True)  # fmt: skip
        except ValueError as err2:
            logger.warning("%s: no eq. 5 fit with E = 0 either (%s)", label, err2)
            return None
    if fit.get("table1_fit") == "e_zero" and "e_zero" in fit:
        fit = fit["e_zero"]
    return fit


def _draw_fit(ax, xs: np.ndarray, fit: dict, color, label: str, *, ls="-", sym=r"\gamma"):
    band = _power_law_band(fit, xs)
    if band is not None:
        ax.fill_between(xs, *band, color=color, alpha=0.2, linewidth=0)
    lab = rf"{label}: ${sym}$ = {_fmt_ci(fit['gamma'], fit['ci']['gamma'])}"
    ax.plot(xs, fit["F"] * xs ** -fit["gamma"], color=color, lw=1.8, ls=ls, label=lab)


def _draw_frontier(ax, fr: pd.DataFrame, fit: dict | None, color, label: str, xcol: str):
    """Frontier points and its fitted law with band; legend carries gamma and its CI."""
    x = fr[xcol].to_numpy()
    ax.scatter(x, fr["val_loss"], s=9, color=color, alpha=0.6, linewidths=0, zorder=3)
    if fit is None:
        ax.plot([], [], color=color, label=f"{label} (no fit)")
        return
    _draw_fit(ax, np.geomspace(x.min(), x.max(), 100), fit, color, label)


def _size_norm(*frames: pd.DataFrame) -> LogNorm:
    n = pd.concat([f["n_params"] for f in frames])
    return LogNorm(float(n.min()), float(max(n.max(), n.min() * 1.01)))


def _draw_curves(ax, curves: pd.DataFrame, xcol: str, ycol: str, norm, *, ls="-", alpha=0.7):
    cmap = plt.get_cmap(CMAP)
    for _, run in curves.groupby("run", sort=False):
        run = run[(run[xcol] > 0) & (run[ycol] > 0)]
        if run.empty:
            continue
        ax.plot(run[xcol], run[ycol], color=cmap(norm(run["n_params"].iloc[0])), lw=0.8,
                alpha=alpha, ls=ls)  # fmt: skip


def _size_colorbar(fig, axes, norm) -> None:
    sm = plt.cm.ScalarMappable(norm=norm, cmap=plt.get_cmap(CMAP))
    fig.colorbar(sm, ax=np.ravel(axes).tolist(), label=N_LABEL, fraction=0.03, pad=0.02)


def _loglog(ax, xlabel: str, ylabel: str | None = "Validation loss") -> None:
    ax.set(xscale="log", yscale="log", xlabel=xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)


def _curves_frontier_panel(ax, curves, kappa, label, norm, n_boot, seed, color="k"):
    """Fig. 3-style panel: learning curves coloured by N, frontier and eq. 4 fit on top."""
    c = add_compute(curves, float(kappa))
    _draw_curves(ax, c, "compute_pflops", "val_loss", norm, alpha=0.5)
    fr, fit = frontier_fit(curves, kappa, label=label, n_boot=n_boot, seed=seed)
    _draw_frontier(ax, fr, fit, color, label, "compute_pflops")
    _loglog(ax, X_LABELS["compute_pflops"])
    ax.set_title(label)
    ax.legend(fontsize=7, loc="lower left")
    return fr, fit


def _compare_frontiers(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: float | Mapping[str, float],
    n_boot: int,
    seed: int,
) -> dict[str, tuple[pd.DataFrame, dict | None]]:
    if not curves_by_label:
        raise ValueError("no curves given")
    out = {}
    for i, (label, c) in enumerate(curves_by_label.items()):
        _require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
        out[label] = frontier_fit(c, _kappa_for(label, c, kappa), label=label, n_boot=n_boot,
                                  seed=seed + i)  # fmt: skip
    return out


def _frontier_comparison_axes(ax, fits, colors) -> None:
    for label, (fr, fit) in fits.items():
        _draw_frontier(ax, fr, fit, colors[label], label, "compute_pflops")
    _loglog(ax, X_LABELS["compute_pflops"])
    ax.legend(fontsize=7.5, loc="lower left")


# --------------------------------------------------------------------------- figure 4


def plot_fig4(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: float | Mapping[str, float],
    out_path: str | Path,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> Path:
    """Figure 4: eSEN loss-compute frontiers for l_max = 2 and 4 with eq. (4) fits.

    Parameters
    ----------
    curves_by_label : {label: DataFrame}
        Curves of each arm, e.g. ``{"eSEN lmax=2": .., "eSEN lmax=4": ..}``.
    kappa : float or {label or arch: float}
        Forward FLOPs per parameter per atom of each arm (kappa depends on l_max, so
        key it by label when the arms share an arch).
    out_path : path
        PDF to write.
    n_boot, seed : int
        Bootstrap resamples of each fit (bands, CI in the legend) and the seed.
    """
    _style()
    fits = _compare_frontiers(curves_by_label, kappa, n_boot, seed)
    colors = _colors(list(fits))
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for label, c in curves_by_label.items():
        cc = add_compute(c, _kappa_for(label, c, kappa))
        for _, run in cc.groupby("run", sort=False):
            ax.plot(run["compute_pflops"], run["val_loss"], color=colors[label], lw=0.6,
                    alpha=0.25)  # fmt: skip
    _frontier_comparison_axes(ax, fits, colors)
    ax.set_title(r"eSEN: tensor order $\ell_{max}$")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 7


def plot_fig7(
    base: pd.DataFrame,
    symmetry: pd.DataFrame,
    kappa: float,
    out_path: str | Path,
    *,
    compute_factor: float = 6.0,
    n_boot: int = 200,
    seed: int = 0,
    labels: tuple[str, str] = ("MPNN", "MPNN + symmetry loss"),
) -> Path:
    """Figure 7: MPNN with and without the symmetry loss.

    Left: loss-compute frontiers with eq. (4); middle: final loss vs D for the
    largest model with eq. (5) at that N (legend: beta); right: final loss vs N
    at the largest data fraction with eq. (5) at its median D (legend: alpha).
    Fainter points: the other runs. Eq. (5) is fitted to all runs of an arm, with
    E = 0 when D spans less than a decade (as the fit stage does).

    Parameters
    ----------
    base, symmetry : DataFrame
        Curves of the runs without and with the symmetry loss; ``val_loss`` is the
        task loss only.
    kappa : float
        Forward FLOPs per parameter per atom of the MPNN.
    out_path : path
        PDF to write.
    compute_factor : float
        Training FLOPs of a symmetry-loss step relative to a plain one, M + 1 = 6
        for the paper's M = 5 rotated copies (section 4.4). Set it to 1 when the
        run's ``atoms_seen`` already counts the rotated copies.
    n_boot, seed : int
        Bootstrap resamples of every fit and the seed.
    labels : (str, str)
        Legend names of the two arms.
    """
    _style()
    arms = dict(zip(labels, (base, symmetry), strict=True))
    factors = dict(zip(labels, (1.0, float(compute_factor)), strict=True))
    colors = _colors(list(arms))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.7))
    for i, (label, c) in enumerate(arms.items()):
        _require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
        fr, fit = frontier_fit(c, kappa, label=label, n_boot=n_boot, seed=seed + i,
                               compute_factor=factors[label])  # fmt: skip
        _draw_frontier(axes[0], fr, fit, colors[label], label, "compute_pflops")
        pts = sum_law_points(c)
        f5 = _eq5_fit(pts, label, n_boot, seed + i)
        for ax, xk, fixed_k, sym, name in (
            (axes[1], "d", "n", r"\beta", "beta"),
            (axes[2], "n", "d", r"\alpha", "alpha"),
        ):
            # the largest model, or the largest fraction (whose D differs slightly per run)
            key = "n" if fixed_k == "n" else "fraction"
            sel = (pts[key] == pts[key].max()).to_numpy()
            fixed = float(np.median(pts.loc[sel, fixed_k]))
            ax.scatter(pts.loc[~sel, xk], pts.loc[~sel, "loss"], color=colors[label], s=10,
                       alpha=0.25, linewidths=0)  # fmt: skip
            ax.scatter(pts.loc[sel, xk], pts.loc[sel, "loss"], color=colors[label], s=18,
                       zorder=3)  # fmt: skip
            if f5 is None:
                ax.plot([], [], color=colors[label], label=f"{label} (no fit)")
                continue
            xs = np.geomspace(pts[xk].min(), pts[xk].max(), 80)
            other = np.full_like(xs, fixed)
            n_, d_ = (other, xs) if xk == "d" else (xs, other)
            band = _sum_law_band(f5, n_, d_)
            if band is not None:
                ax.fill_between(xs, *band, color=colors[label], alpha=0.2, linewidth=0)
            ax.plot(xs, _sum_law(f5, n_, d_), color=colors[label], lw=1.8,
                    label=rf"{label}: ${sym}$ = {_fmt_ci(f5[name], f5['ci'][name])}")  # fmt: skip
    _loglog(axes[0], X_LABELS["compute_pflops"])
    axes[0].set_title("Loss-compute frontier")
    _loglog(axes[1], D_LABEL, None)
    axes[1].set_title("Data scaling (largest N)")
    _loglog(axes[2], N_LABEL, None)
    axes[2].set_title("Parameter scaling (largest D)")
    for ax in axes:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 8


def trend_break(
    frontier: pd.DataFrame, *, fit_share: float = 0.5, tol: float = 0.05, xcol="compute_pflops"
) -> dict:
    """Where a log-log frontier leaves the power law of its early part.

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
    # first index from which all later points are above the law
    tail_all = np.flip(np.logical_and.accumulate(np.flip(above)))
    idx = np.flatnonzero(tail_all & ~early)
    if idx.size:
        out["break_x"] = float(x[idx[0]])
        if "epoch" in frontier.columns:
            out["break_epoch"] = float(frontier["epoch"].iloc[idx[0]])
    return out


def plot_fig8(
    no_aug: pd.DataFrame,
    aug: pd.DataFrame,
    kappa: float,
    out_path: str | Path,
    *,
    n_boot: int = 200,
    seed: int = 0,
    fit_share: float = 0.5,
    tol: float = 0.05,
) -> Path:
    """Figure 8: multi-epoch MPNN frontiers without (left) and with (middle) augmentation.

    Right: both frontiers with eq. (4) fitted to the early part of each
    (:func:`trend_break`, first ``fit_share`` of the log-compute range) and
    extrapolated (dashed); a vertical line marks where the frontier without
    augmentation leaves its early power law by more than ``tol``.

    Parameters
    ----------
    no_aug, aug : DataFrame
        Curves (with ``epoch``) of the runs on a small fraction for many epochs.
    kappa : float
        Forward FLOPs per parameter per atom (D counts atoms seen, repeats included).
    out_path : path
        PDF to write.
    n_boot, seed : int
        Bootstrap resamples of the full-frontier fits and the seed.
    fit_share, tol : float
        Early part and tolerance of the trend-break detection.
    """
    _style()
    arms = {"without augmentation": no_aug, "with augmentation": aug}
    colors = _colors(list(arms))
    norm = _size_norm(no_aug, aug)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for ax, (label, c) in zip(axes[:2], arms.items(), strict=True):
        _require(c, ("run", "n_params", "atoms_seen", "val_loss", "epoch"), f"curves {label!r}")
        _curves_frontier_panel(ax, c, kappa, label, norm, n_boot, seed)
    ax = axes[2]
    for label, c in arms.items():
        fr, _ = frontier_fit(c, kappa, label=label, n_boot=0)
        x = fr["compute_pflops"].to_numpy()
        ax.scatter(x, fr["val_loss"], s=9, color=colors[label], zorder=3, linewidths=0,
                   label=f"{label}")  # fmt: skip
        tb = trend_break(fr, fit_share=fit_share, tol=tol)
        if tb["fit"] is None:
            logger.warning("fig 8 %s: too few early frontier points for the trend", label)
            continue
        f = tb["fit"]
        xs = np.geomspace(x.min(), x.max(), 100)
        ax.plot(xs, f["F"] * xs ** -f["gamma"], color=colors[label], lw=1.2, ls="--",
                label=rf"early power law, $\gamma$ = {f['gamma']:.3f}")  # fmt: skip
        ax.axvspan(x.min(), tb["x_fit_max"], color="0.9", zorder=0)
        if tb["break_x"] is not None:
            ep = tb["break_epoch"]
            lab = "trend breaks" + (f" (epoch {ep:.0f})" if ep is not None else "")
            ax.axvline(tb["break_x"], color=colors[label], lw=1.0, ls=":", label=lab)
    _loglog(ax, X_LABELS["compute_pflops"], None)
    ax.set_title("Log-log trend (grey: fitted range)")
    ax.legend(fontsize=7, loc="lower left")
    _size_colorbar(fig, axes[:2], norm)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 9


def plot_fig9(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: float | Mapping[str, float],
    out_path: str | Path,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> Path:
    """Figure 9: multi-epoch frontiers, MPNN with augmentation vs eSEN, with eq. (4).

    Parameters
    ----------
    curves_by_label : {label: DataFrame}
        e.g. ``{"MPNN + augmentation": .., "eSEN": ..}``.
    kappa : float or {label or arch: float}
        Forward FLOPs per parameter per atom of each arm.
    out_path : path
        PDF to write.
    n_boot, seed : int
        Bootstrap resamples of each fit and the seed.
    """
    _style()
    fits = _compare_frontiers(curves_by_label, kappa, n_boot, seed)
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    _frontier_comparison_axes(ax, fits, _colors(list(fits)))
    ax.set_title("Multi-epoch training on a small fraction")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 10


def plot_fig10(grid: pd.DataFrame, sweep: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 10: batch size x learning rate (top) and depth x width (bottom) sweeps per arch.

    Parameters
    ----------
    grid : DataFrame
        ``arch, batch_size, lr, val_loss``: final validation loss of each run of
        the batch-size/learning-rate sweep (see :func:`final_losses`); repeated
        (batch_size, lr) rows are averaged.
    sweep : DataFrame
        ``arch, depth, width, n_params, val_loss`` of the depth/width sweep at
        about equal N (repeated (depth, width) rows are averaged).
    out_path : path
        PDF to write.
    """
    _require(grid, ("arch", "batch_size", "lr", "val_loss"), "fig 10 grid")
    _require(sweep, ("arch", "depth", "width", "n_params", "val_loss"), "fig 10 sweep")
    _style()
    archs = list(dict.fromkeys([*sorted(grid["arch"].unique()), *sorted(sweep["arch"].unique())]))
    fig, axes = plt.subplots(2, len(archs), figsize=(3.4 * len(archs), 5.8), squeeze=False)
    for j, arch in enumerate(archs):
        ax = axes[0][j]
        g = grid[grid["arch"] == arch]
        sizes = sorted(g["batch_size"].unique())
        shades = plt.get_cmap("crest")(np.linspace(0.1, 0.9, max(len(sizes), 1)))
        for bs, shade in zip(sizes, shades, strict=False):
            h = g[g["batch_size"] == bs].groupby("lr", as_index=False)["val_loss"].mean()
            ax.plot(h["lr"], h["val_loss"], "o-", color=shade, ms=4, label=f"batch {bs}")
        if not g.empty:
            best = g.loc[g["val_loss"].idxmin()]
            ax.scatter([best["lr"]], [best["val_loss"]], marker="*", s=90, color="C3", zorder=4,
                       label="best")  # fmt: skip
            ax.legend(fontsize=7)
        ax.set(xscale="log", yscale="log", xlabel="Learning rate", title=arch)
        ax = axes[1][j]
        s = (
            sweep[sweep["arch"] == arch]
            .groupby(["depth", "width"], as_index=False)
            .agg(n_params=("n_params", "median"), val_loss=("val_loss", "mean"))
            .sort_values("depth")
        )
        if not s.empty:
            ax.plot(s["depth"], s["val_loss"], "o-", color="C0", ms=4)
            for _, r in s.iterrows():
                ax.annotate(f"w={int(r['width'])}\nN={r['n_params']:.2g}",
                            (r["depth"], r["val_loss"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.set(yscale="log", xlabel="Depth (layers)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        if j == 0:
            axes[0][j].set_ylabel("Validation loss")
            ax.set_ylabel("Validation loss")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 11


def plot_fig11(curves: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 11: EGNN with a growing number of vector channels E.

    Left: learning curves (validation loss vs atoms seen) coloured by E; right:
    final validation loss vs E, one line per width.

    Parameters
    ----------
    curves : DataFrame
        :func:`load_runs_with_meta` output with ``vector_channels`` set for every run
        (``hparams.vector_channels`` of the runs).
    out_path : path
        PDF to write.
    """
    _require(curves, ("run", "width", "atoms_seen", "val_loss", "vector_channels"), "fig 11")
    missing = curves.loc[curves["vector_channels"].isna(), "run"].unique()
    if missing.size:
        raise ValueError(
            f"fig 11: run(s) {list(missing)[:5]} have no hparams.vector_channels in meta.json"
        )
    _style()
    es = sorted(curves["vector_channels"].unique())
    norm = LogNorm(min(es), max(max(es), min(es) * 1.01))
    cmap = plt.get_cmap("magma_r")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for _, run in curves.groupby("run", sort=False):
        e = run["vector_channels"].iloc[0]
        axes[0].plot(run["atoms_seen"], run["val_loss"], color=cmap(0.15 + 0.7 * norm(e)), lw=1)
    _loglog(axes[0], D_LABEL)
    axes[0].set_title("Learning curves")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=axes, label="Vector channels E (left)", fraction=0.04, pad=0.02)
    last = final_losses(curves)
    widths = sorted(last["width"].unique())
    wcol = _colors([str(w) for w in widths])
    for w in widths:
        g = last[last["width"] == w].groupby("vector_channels", as_index=False)["val_loss"].mean()
        axes[1].plot(g["vector_channels"], g["val_loss"], "o-", color=wcol[str(w)], ms=4,
                     label=f"width {w}")  # fmt: skip
    axes[1].set(xscale="log", yscale="log", xlabel="Vector channels E", ylabel="Final val. loss")
    axes[1].set_title("Final loss vs E")
    axes[1].legend(fontsize=7)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 12


def plot_fig12(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: float | Mapping[str, float],
    out_path: str | Path,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> Path:
    """Figure 12: diverse split (charged and open-shell kept), one panel per arm + comparison.

    Parameters
    ----------
    curves_by_label : {label: DataFrame}
        e.g. ``{"MPNN": .., "eSEN": ..}`` trained with ``neutral_only: false``.
    kappa : float or {label or arch: float}
        Forward FLOPs per parameter per atom of each arm.
    out_path : path
        PDF to write.
    n_boot, seed : int
        Bootstrap resamples of each fit and the seed.
    """
    _style()
    if not curves_by_label:
        raise ValueError("fig 12: no curves given")
    labels = list(curves_by_label)
    colors = _colors(labels)
    norm = _size_norm(*curves_by_label.values())
    fig, axes = plt.subplots(1, len(labels) + 1, figsize=(4.2 * (len(labels) + 1), 3.8),
                             layout="constrained")  # fmt: skip
    fits = {}
    for i, (ax, label) in enumerate(zip(axes[:-1], labels, strict=True)):
        c = curves_by_label[label]
        _require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
        fits[label] = _curves_frontier_panel(
            ax, c, _kappa_for(label, c, kappa), label, norm, n_boot, seed + i, colors[label]
        )
    _frontier_comparison_axes(axes[-1], fits, colors)
    axes[-1].set_title("Compute-optimal power laws")
    _size_colorbar(fig, axes[:-1], norm)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 13


def estimate_floor(groups: Iterable[tuple[np.ndarray, np.ndarray]], cap: float = 0.95) -> float:
    """Shared loss floor L_D of eq. (24) by profile least squares.

    For a candidate L_D, each group's ``log(L - L_D)`` is regressed linearly on
    ``log N`` (its own A and alpha); the estimate minimises the summed squared
    residuals over ``0 <= L_D <= cap * min(L)`` (bounded scalar search). With
    fewer than 3 sizes in every group the floor is not identifiable and 0 is
    returned (logged).

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
            "eq. 24: L_D estimate %.4g sits at its bound (%.0f %% of the lowest loss); "
            "the data do not pin the floor down, pass L_D explicitly",
            res.x,
            100 * cap,
        )
    return float(res.x)


def plot_fig13(
    tta: pd.DataFrame,
    out_path: str | Path,
    L_D: float | None = None,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> Path:
    """Figure 13: test-time group averaging (GA) of an unconstrained model.

    Left: validation loss vs number of rotations M, one line per model size;
    right: ``L - L_D`` vs N with eq. (24) ``L - L_D = A N^-alpha`` fitted for the
    baseline (M = 1) and GA at the largest M, with 95 % bands.

    Parameters
    ----------
    tta : DataFrame
        ``arch, width, n_params, num_rotations, val_loss``; one row per (model, M).
    out_path : path
        PDF to write.
    L_D : float, optional
        Data-limited loss floor (e.g. :func:`data_limited_loss` of the arch's eq. 5
        fit at its D). Default: :func:`estimate_floor` over the baseline and GA
        points (shared floor, profile least squares, capped at 95 % of the lowest
        loss); the value used is printed in the panel title.
    n_boot, seed : int
        Bootstrap resamples of the eq. 24 fits and the seed.
    """
    _require(tta, ("arch", "width", "n_params", "num_rotations", "val_loss"), "fig 13")
    ms = sorted(tta["num_rotations"].unique())
    if 1 not in ms:
        raise ValueError(f"fig 13: no baseline rows with num_rotations == 1 (have M = {ms})")
    m_ga = max(ms)
    if m_ga == 1:
        raise ValueError("fig 13: only M = 1 given; need group-averaged rows (M > 1)")
    _style()
    arms = {}
    for m, name in ((1, "baseline (M=1)"), (m_ga, f"GA (M={m_ga})")):
        g = tta[tta["num_rotations"] == m].groupby("n_params", as_index=False)["val_loss"].mean()
        arms[name] = g
    if L_D is None:
        L_D = estimate_floor([(g["n_params"], g["val_loss"]) for g in arms.values()])
        how = "estimated"
    else:
        how = "given"
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    sizes = sorted(tta["n_params"].unique())
    norm = LogNorm(min(sizes), max(max(sizes), min(sizes) * 1.01))
    cmap = plt.get_cmap(CMAP)
    for n in sizes:
        g = tta[tta["n_params"] == n].groupby("num_rotations", as_index=False)["val_loss"].mean()
        axes[0].plot(g["num_rotations"], g["val_loss"], "o-", ms=3, color=cmap(norm(n)),
                     label=f"N={n:.2g}")  # fmt: skip
    axes[0].set(xscale="log", yscale="log", xlabel="Rotations M", ylabel="Validation loss")
    axes[0].set_title("Group averaging at test time")
    if len(sizes) <= 8:
        axes[0].legend(fontsize=7)
    colors = _colors(list(arms))
    for i, (name, g) in enumerate(arms.items()):
        y = g["val_loss"].to_numpy() - L_D
        if np.any(y <= 0):
            raise ValueError(f"fig 13: L_D = {L_D:.4g} is not below every {name} loss")
        n = g["n_params"].to_numpy(dtype=float)
        axes[1].scatter(n, y, color=colors[name], s=16, zorder=3)
        try:
            fit = fit_power_law(n, y, n_boot, seed + i, label=f"eq. 24 {name}",
                                return_samples=True)  # fmt: skip
        except ValueError as err:
            logger.warning("fig 13 %s: no eq. 24 fit (%s)", name, err)
            axes[1].plot([], [], color=colors[name], label=f"{name} (no fit)")
            continue
        _draw_fit(axes[1], np.geomspace(n.min(), n.max(), 60), fit, colors[name], name,
                  sym=r"\alpha")  # fmt: skip
    _loglog(axes[1], N_LABEL, r"$L - L_D$")
    axes[1].set_title(rf"$L - L_D = A N^{{-\alpha}}$ ($L_D$ = {L_D:.3g}, {how})")
    axes[1].legend(fontsize=7, loc="lower left")
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 14


def plot_fig14(curves: pd.DataFrame, out_path: str | Path, *, x: str = "atoms_seen") -> Path:
    """Figure 14: energy (top) and force (bottom) validation learning curves per arch.

    Parameters
    ----------
    curves : DataFrame
        Curves of all archs with ``val_energy_loss`` and ``val_force_loss``.
    out_path : path
        PDF to write.
    x : str
        Column on the x axis: ``atoms_seen`` (default), ``step`` or
        ``compute_pflops`` (if added).
    """
    _require(curves, ("arch", "run", "n_params", x, "val_energy_loss", "val_force_loss"), "fig 14")
    _style()
    archs = list(dict.fromkeys(curves["arch"]))
    fig, axes = plt.subplots(2, len(archs), figsize=(3.2 * len(archs) + 0.8, 5.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    norm = _size_norm(curves)
    xl = {"atoms_seen": D_LABEL, "step": "Step"}.get(x, X_LABELS.get(x, x))
    for j, arch in enumerate(archs):
        c = curves[curves["arch"] == arch]
        for i, (col, name) in enumerate(
            (("val_energy_loss", "Energy"), ("val_force_loss", "Force"))
        ):
            ax = axes[i][j]
            _draw_curves(ax, c, x, col, norm, alpha=0.8)
            _loglog(ax, xl, f"{name} validation loss" if j == 0 else None)
            if i == 0:
                ax.set_title(arch)
    _size_colorbar(fig, axes, norm)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 15


def plot_fig15(
    invariant: pd.DataFrame,
    absolute: pd.DataFrame,
    out_path: str | Path,
    *,
    labels: tuple[str, str] = ("relative vectors (translation invariant)", "absolute positions"),
) -> Path:
    """Figure 15: MPNN with relative vectors vs absolute positions.

    Left: learning curves (solid: relative vectors, dashed: absolute positions),
    coloured by model size; right: final validation loss vs N of both arms.

    Parameters
    ----------
    invariant, absolute : DataFrame
        Curves of the two arms.
    out_path : path
        PDF to write.
    labels : (str, str)
        Legend names of the arms.
    """
    arms = dict(zip(labels, (invariant, absolute), strict=True))
    for label, c in arms.items():
        _require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
    _style()
    norm = _size_norm(invariant, absolute)
    colors = _colors(labels)
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 3.7), layout="constrained")
    for (label, c), ls in zip(arms.items(), ("-", "--"), strict=True):
        _draw_curves(axes[0], c, "atoms_seen", "val_loss", norm, ls=ls, alpha=0.85)
        axes[0].plot([], [], color="0.3", ls=ls, label=label)
        last = final_losses(c).groupby("n_params", as_index=False)["val_loss"].mean()
        axes[1].plot(last["n_params"], last["val_loss"], "o" + ls, color=colors[label], ms=4,
                     label=label)  # fmt: skip
    _loglog(axes[0], D_LABEL)
    axes[0].set_title("Learning curves")
    axes[0].legend(fontsize=7, loc="lower left")
    _loglog(axes[1], N_LABEL, "Final validation loss")
    axes[1].set_title("Translation invariance ablation")
    axes[1].legend(fontsize=7)
    _size_colorbar(fig, axes, norm)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 16


def plot_fig16(curves: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 16: vanilla transformer learning curves (train and validation loss vs step).

    Parameters
    ----------
    curves : DataFrame
        Transformer runs with ``train_loss`` and ``val_loss``.
    out_path : path
        PDF to write.
    """
    _require(curves, ("run", "n_params", "step", "val_loss", "train_loss"), "fig 16")
    _style()
    norm = _size_norm(curves)
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 3.6), layout="constrained", sharey=True)
    for ax, col, title in ((axes[0], "train_loss", "Training loss"),
                           (axes[1], "val_loss", "Validation loss")):  # fmt: skip
        _draw_curves(ax, curves, "step", col, norm, alpha=0.9)
        _loglog(ax, "Optimizer step", "Loss" if col == "train_loss" else None)
        ax.set_title(title)
    _size_colorbar(fig, axes, norm)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- from files

RunDirs = Iterable[str | Path]
KappaArg = float | Mapping[str, float] | str | Path


def _kappa_map(kappa: KappaArg) -> float | Mapping[str, float]:
    """A kappa value or mapping as given, or ``read_kappa`` of a ``kappa.csv`` path."""
    if isinstance(kappa, str | Path):
        from pipeline.scaling.kappa import read_kappa

        return read_kappa(kappa)
    return kappa


def _kappa_value(kappa: KappaArg, arch: str) -> float:
    k = _kappa_map(kappa)
    if isinstance(k, Mapping):
        if arch not in k:
            raise ValueError(f"no kappa for arch {arch!r} in {kappa}; have {sorted(k)}")
        return float(k[arch])
    return float(k)


def _load_by_label(runs_by_label: Mapping[str, RunDirs]) -> dict[str, pd.DataFrame]:
    return {label: load_curves(dirs) for label, dirs in runs_by_label.items()}


def make_fig4(runs_by_label: Mapping[str, RunDirs], kappa: KappaArg, out_pdf, **kw) -> Path:
    """Read each arm's run folders (and ``kappa.csv`` or kappas); write figure 4."""
    return plot_fig4(_load_by_label(runs_by_label), _kappa_map(kappa), out_pdf, **kw)


def make_fig7(
    base_runs: RunDirs, symmetry_runs: RunDirs, kappa: KappaArg, out_pdf, *, arch="mpnn", **kw
) -> Path:
    """Read the baseline and symmetry-loss run folders; write figure 7 (kappa of ``arch``)."""
    return plot_fig7(load_curves(base_runs), load_curves(symmetry_runs),
                     _kappa_value(kappa, arch), out_pdf, **kw)  # fmt: skip


def make_fig8(
    no_aug_runs: RunDirs, aug_runs: RunDirs, kappa: KappaArg, out_pdf, *, arch="mpnn", **kw
) -> Path:
    """Read the multi-epoch run folders without/with augmentation; write figure 8."""
    return plot_fig8(load_curves(no_aug_runs), load_curves(aug_runs),
                     _kappa_value(kappa, arch), out_pdf, **kw)  # fmt: skip


def make_fig9(runs_by_label: Mapping[str, RunDirs], kappa: KappaArg, out_pdf, **kw) -> Path:
    """Read each arm's multi-epoch run folders; write figure 9."""
    return plot_fig9(_load_by_label(runs_by_label), _kappa_map(kappa), out_pdf, **kw)


def make_fig10(grid_runs: RunDirs, sweep_runs: RunDirs, out_pdf) -> Path:
    """Final losses of the batch/lr sweep and the depth/width sweep runs; write figure 10."""
    grid = final_losses(load_runs_with_meta(grid_runs))
    sweep = final_losses(load_runs_with_meta(sweep_runs))
    return plot_fig10(grid, sweep, out_pdf)


def make_fig11(runs: RunDirs, out_pdf) -> Path:
    """Read the EGNN vector-channel sweep run folders; write figure 11."""
    return plot_fig11(load_runs_with_meta(runs), out_pdf)


def make_fig12(runs_by_label: Mapping[str, RunDirs], kappa: KappaArg, out_pdf, **kw) -> Path:
    """Read each arm's run folders on the diverse split; write figure 12."""
    return plot_fig12(_load_by_label(runs_by_label), _kappa_map(kappa), out_pdf, **kw)


def make_fig13(tta_csvs: Iterable[str | Path], out_pdf, L_D: float | None = None, **kw) -> Path:
    """Concatenate test-time averaging CSVs (``arch, width, n_params, num_rotations,
    val_loss``); write figure 13."""
    frames = []
    for p in tta_csvs:
        df = pd.read_csv(p)
        _require(df, ("arch", "width", "n_params", "num_rotations", "val_loss"), str(p))
        frames.append(df)
    if not frames:
        raise ValueError("fig 13: no test-time averaging CSVs given")
    return plot_fig13(pd.concat(frames, ignore_index=True), out_pdf, L_D, **kw)


def make_fig14(runs: RunDirs, out_pdf, **kw) -> Path:
    """Read every run folder of the main study; write figure 14."""
    return plot_fig14(load_curves(runs), out_pdf, **kw)


def make_fig15(invariant_runs: RunDirs, absolute_runs: RunDirs, out_pdf, **kw) -> Path:
    """Read the relative-vector and absolute-position run folders; write figure 15."""
    return plot_fig15(load_curves(invariant_runs), load_curves(absolute_runs), out_pdf, **kw)


def make_fig16(runs: RunDirs, out_pdf) -> Path:
    """Read the transformer run folders; write figure 16."""
    return plot_fig16(load_curves(runs), out_pdf)
