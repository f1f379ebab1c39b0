"""Figures of the symmetry experiments (paper figs. 4, 7, 8, 9, 12, 13, 15).

Each ``plot_fig*`` draws what an analysis of :mod:`pipeline.scaling.experiments`
returns (frontiers, eq. 4 / eq. 5 / eq. 24 fits with bootstrap samples); the fit
settings come from ``config['fit']`` (the ``fit`` keyword), as for the main study.
Legends give each exponent with its 95 % interval, or "not identified (<reason>)".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.plots import draw
from pipeline.plots.style import (
    D_LABEL,
    N_LABEL,
    SIZE_CMAP,
    X_LABELS,
    apply_style,
    colors,
    legend_below,
    legend_outside,
    save,
)
from pipeline.scaling import experiments as ex
from pipeline.scaling.frontier import load_curves

RunDirs = Iterable[str | Path]
KappaArg = float | Mapping[str, float]


def _frontier_axes(ax, fits: Mapping[str, tuple], cols) -> None:
    for label, (fr, fit) in fits.items():
        draw.draw_frontier(ax, fr, fit, cols[label], label)
    draw.loglog(ax, X_LABELS["compute_pflops"])


def _curves_frontier_panel(ax, curves, kappa, label, norm, fit_settings, kappa_config, color="k"):
    """Fig. 3-style panel: learning curves coloured by N, frontier and eq. 4 fit on top."""
    cc = ex.with_compute(curves, kappa, fit=fit_settings, kappa_config=kappa_config)
    draw.draw_curves(ax, cc, "compute_pflops", "val_loss", norm, alpha=0.5)
    fr, fit = ex.frontier_fit(
        curves, kappa, fit=fit_settings, kappa_config=kappa_config, label=label
    )
    draw.draw_frontier(ax, fr, fit, color, label)
    draw.loglog(ax, X_LABELS["compute_pflops"])
    ax.set_title(label)
    return fr, fit


def plot_fig4(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: KappaArg,
    out_path: str | Path,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
) -> Path:
    """Figure 4: eSEN loss-compute frontiers for two l_max with eq. (4) fits.

    ``curves_by_label``: {"l_max 2": curves, "l_max 4": curves}; ``kappa`` a float or
    {label or arch: kappa}; ``fit``: ``config['fit']``.
    """
    apply_style()
    fits = ex.compare_frontiers(curves_by_label, kappa, fit=fit, kappa_config=kappa_config)
    cols = colors(list(fits))
    fig, ax = plt.subplots(figsize=(5.2, 4.2), layout="constrained")
    for label, c in curves_by_label.items():
        cc = ex.with_compute(c, ex.kappa_for(label, c, kappa), fit=fit, kappa_config=kappa_config)
        for _, run in cc.groupby("run", sort=False):
            ax.plot(run["compute_pflops"], run["val_loss"], color=cols[label], lw=0.6, alpha=0.25)
    _frontier_axes(ax, fits, cols)
    ax.set_title(r"eSEN: tensor order $\ell_{max}$")
    legend_below(fig, [ax], ncol=1)
    return save(fig, out_path)


def plot_fig7(
    base: pd.DataFrame,
    symmetry: pd.DataFrame,
    kappa: float,
    out_path: str | Path,
    *,
    compute_factor: float = 6.0,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    labels: tuple[str, str] = ("MPNN", "MPNN + symmetry loss"),
) -> Path:
    """Figure 7: MPNN with and without the symmetry loss.

    Left: frontiers with eq. (4); middle: final loss vs D for the largest model
    with eq. (5) at that N (legend: beta); right: final loss vs N at the largest
    fraction with eq. (5) at its median D (legend: alpha). ``compute_factor`` (M + 1
    for M rotated copies) scales the symmetry arm's kappa compute.
    """
    apply_style()
    arms = dict(zip(labels, (base, symmetry), strict=True))
    res = ex.symmetry_loss_analysis(
        arms, kappa, fit=fit, kappa_config=kappa_config, compute_factors={labels[1]: compute_factor}
    )
    cols = colors(list(arms))
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), layout="constrained")
    for label, r in res.items():
        draw.draw_frontier(axes[0], r["frontier"], r["eq4"], cols[label], label)
        pts, f5 = r["points"], r["eq5"]
        for ax, xk, fixed_k, sym, name in (
            (axes[1], "d", "n", r"\beta", "beta"),
            (axes[2], "n", "d", r"\alpha", "alpha"),
        ):
            key = "n" if fixed_k == "n" else "fraction"
            sel = (pts[key] == pts[key].max()).to_numpy()
            ax.scatter(
                pts.loc[~sel, xk],
                pts.loc[~sel, "loss"],
                color=cols[label],
                s=10,
                alpha=0.25,
                linewidths=0,
            )
            ax.scatter(pts.loc[sel, xk], pts.loc[sel, "loss"], color=cols[label], s=18, zorder=3)
            lab = draw.estimate_label(label, f5, name, sym)
            if not draw.identified(f5):
                ax.plot([], [], color=cols[label], label=lab)
                continue
            xs = np.geomspace(pts[xk].min(), pts[xk].max(), 80)
            other = np.full_like(xs, float(np.median(pts.loc[sel, fixed_k])))
            n_, d_ = (other, xs) if xk == "d" else (xs, other)
            b = draw.sum_law_band(f5, n_, d_)
            if b is not None:
                ax.fill_between(xs, *b, color=cols[label], alpha=0.2, linewidth=0)
            ax.plot(xs, draw.sum_law(f5, n_, d_), color=cols[label], lw=1.8, label=lab)
    draw.loglog(axes[0], X_LABELS["compute_pflops"])
    axes[0].set_title("Loss-compute frontier")
    draw.loglog(axes[1], D_LABEL, None)
    axes[1].set_title("Data scaling (largest N)")
    draw.loglog(axes[2], N_LABEL, None)
    axes[2].set_title("Parameter scaling (largest D)")
    for ax in axes:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return save(fig, out_path)


def plot_fig8(
    no_aug: pd.DataFrame,
    aug: pd.DataFrame,
    kappa: float,
    out_path: str | Path,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
    fit_share: float = 0.5,
    tol: float = 0.05,
) -> Path:
    """Figure 8: multi-epoch MPNN frontiers without (left) and with (middle) augmentation.

    Right: both frontiers with eq. (4) fitted to their early part
    (:func:`pipeline.scaling.experiments.trend_break`) and extrapolated (dashed); a
    dotted line marks where a frontier leaves its early power law by more than ``tol``.
    """
    apply_style()
    arms = {"without augmentation": no_aug, "with augmentation": aug}
    res = ex.multi_epoch_analysis(
        arms, kappa, fit=fit, kappa_config=kappa_config, fit_share=fit_share, tol=tol
    )
    cols = colors(list(arms))
    norm = draw.size_norm(no_aug, aug)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), layout="constrained")
    for ax, (label, c) in zip(axes[:2], arms.items(), strict=True):
        cc = ex.with_compute(c, kappa, fit=fit, kappa_config=kappa_config)
        draw.draw_curves(ax, cc, "compute_pflops", "val_loss", norm, alpha=0.5)
        draw.draw_frontier(ax, res[label]["frontier"], res[label]["eq4"], "k", label)
        draw.loglog(ax, X_LABELS["compute_pflops"])
        ax.set_title(label)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax = axes[2]
    for label, r in res.items():
        x = r["frontier"]["compute_pflops"].to_numpy(float)
        ax.scatter(
            x,
            r["frontier"]["val_loss"],
            s=9,
            color=cols[label],
            zorder=3,
            linewidths=0,
            label=label,
        )
        tb = r["trend"]
        if tb["fit"] is None:
            continue
        xs = np.geomspace(x.min(), x.max(), 100)
        ax.plot(
            xs,
            draw.power_law(tb["fit"], xs),
            color=cols[label],
            lw=1.2,
            ls="--",
            label=rf"early power law, $\gamma$ = {tb['fit']['gamma']:.3f}",
        )
        ax.axvspan(x.min(), tb["x_fit_max"], color="0.92", zorder=0)
        if tb["break_x"] is not None:
            ep = tb["break_epoch"]
            ax.axvline(
                tb["break_x"],
                color=cols[label],
                lw=1.0,
                ls=":",
                label="trend breaks" + (f" (epoch {ep:.0f})" if ep is not None else ""),
            )
    draw.loglog(ax, X_LABELS["compute_pflops"], None)
    ax.set_title("Log-log trend (grey: fitted range)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    draw.size_colorbar(fig, axes[:2], norm)
    return save(fig, out_path)


def plot_fig9(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: KappaArg,
    out_path: str | Path,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
) -> Path:
    """Figure 9: multi-epoch frontiers, MPNN with augmentation vs eSEN, with eq. (4)."""
    apply_style()
    fits = ex.compare_frontiers(curves_by_label, kappa, fit=fit, kappa_config=kappa_config)
    fig, ax = plt.subplots(figsize=(5.2, 4.2), layout="constrained")
    _frontier_axes(ax, fits, colors(list(fits)))
    ax.set_title("Multi-epoch training on a small fraction")
    legend_below(fig, [ax], ncol=1)
    return save(fig, out_path)


def plot_fig12(
    curves_by_label: Mapping[str, pd.DataFrame],
    kappa: KappaArg,
    out_path: str | Path,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
) -> Path:
    """Figure 12: diverse split (charged and open-shell kept), one panel per arm + comparison."""
    apply_style()
    if not curves_by_label:
        raise ValueError("fig 12: no curves given")
    labels = list(curves_by_label)
    cols = colors(labels)
    norm = draw.size_norm(*curves_by_label.values())
    fig, axes = plt.subplots(
        1, len(labels) + 1, figsize=(4.2 * (len(labels) + 1), 4.2), layout="constrained"
    )
    fits = {}
    for ax, label in zip(axes[:-1], labels, strict=True):
        c = curves_by_label[label]
        ex.require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
        fits[label] = _curves_frontier_panel(
            ax, c, ex.kappa_for(label, c, kappa), label, norm, fit, kappa_config, cols[label]
        )
    _frontier_axes(axes[-1], fits, cols)
    axes[-1].set_title("Compute-optimal power laws")
    draw.size_colorbar(fig, axes[:-1], norm)
    legend_below(fig, axes[-1:], ncol=2)
    return save(fig, out_path)


def plot_fig13(
    tta: pd.DataFrame, out_path: str | Path, L_D: float | None = None, *, fit: Mapping | None = None
) -> Path:
    """Figure 13: test-time group averaging (GA) of an unconstrained model.

    Left: validation loss vs rotations M, one line per model size; right: ``L - L_D``
    vs N with eq. (24) fitted for the baseline (M = 1) and GA at the largest M
    (:func:`pipeline.scaling.experiments.group_average_analysis`).
    """
    res = ex.group_average_analysis(tta, L_D, fit=fit)
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 4.0), layout="constrained")
    norm = draw.size_norm(tta)
    cmap = plt.get_cmap(SIZE_CMAP)
    for n in sorted(tta["n_params"].unique()):
        g = tta[tta["n_params"] == n].groupby("num_rotations", as_index=False)["val_loss"].mean()
        axes[0].plot(g["num_rotations"], g["val_loss"], "o-", ms=3, color=cmap(norm(n)))
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="Rotations M",
        ylabel="Validation loss",
        title="Group averaging at test time",
    )
    draw.size_colorbar(fig, axes[:1], norm)
    cols = colors(list(res["arms"]))
    for name, arm in res["arms"].items():
        g = arm["points"]
        n = g["n_params"].to_numpy(float)
        axes[1].scatter(n, g["val_loss"] - res["L_D"], color=cols[name], s=16, zorder=3)
        draw.draw_power_law(
            axes[1], np.geomspace(n.min(), n.max(), 60), arm["fit"], cols[name], name, sym=r"\alpha"
        )
    draw.loglog(axes[1], N_LABEL, r"$L - L_D$")
    axes[1].set_title(
        rf"$L - L_D = A N^{{-\alpha}}$ ($L_D$ = {res['L_D']:.3g}, {res['how']})", fontsize=9
    )
    legend_outside(axes[1])
    return save(fig, out_path)


def plot_fig15(
    invariant: pd.DataFrame,
    absolute: pd.DataFrame,
    out_path: str | Path,
    *,
    labels: tuple[str, str] = ("relative vectors (translation invariant)", "absolute positions"),
) -> Path:
    """Figure 15: MPNN with relative vectors vs absolute positions.

    Left: learning curves (solid: relative, dashed: absolute) coloured by size;
    right: final validation loss vs N of both arms (mean and seed range).
    """
    arms = dict(zip(labels, (invariant, absolute), strict=True))
    for label, c in arms.items():
        ex.require(c, ("run", "n_params", "atoms_seen", "val_loss"), f"curves of {label!r}")
    apply_style()
    norm = draw.size_norm(invariant, absolute)
    cols = colors(labels)
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 4.2), layout="constrained")
    for (label, c), ls in zip(arms.items(), ("-", "--"), strict=True):
        draw.draw_curves(axes[0], c, "atoms_seen", "val_loss", norm, ls=ls, alpha=0.85)
        axes[0].plot([], [], color="0.3", ls=ls, label=label)
        last = (
            ex.final_losses(c)
            .groupby("n_params", as_index=False)["val_loss"]
            .agg(["mean", "min", "max"])
        )
        axes[1].errorbar(
            last["n_params"],
            last["mean"],
            yerr=[last["mean"] - last["min"], last["max"] - last["mean"]],
            fmt="o" + ls,
            color=cols[label],
            ms=4,
            label=label,
        )
    draw.loglog(axes[0], D_LABEL)
    axes[0].set_title("Learning curves")
    draw.loglog(axes[1], N_LABEL, "Final validation loss")
    axes[1].set_title("Translation invariance ablation")
    draw.size_colorbar(fig, axes, norm)
    legend_below(fig, axes, ncol=2)
    return save(fig, out_path)


# --------------------------------------------------------------------------- from files


def make_fig4(runs_by_label: Mapping[str, RunDirs], kappa: KappaArg, out_pdf, **kw) -> Path:
    """Read each arm's run folders; write figure 4."""
    return plot_fig4({k: load_curves(v) for k, v in runs_by_label.items()}, kappa, out_pdf, **kw)


def make_fig7(base_runs: RunDirs, symmetry_runs: RunDirs, kappa: float, out_pdf, **kw) -> Path:
    """Read the baseline and symmetry-loss run folders; write figure 7."""
    return plot_fig7(load_curves(base_runs), load_curves(symmetry_runs), kappa, out_pdf, **kw)


def make_fig8(no_aug_runs: RunDirs, aug_runs: RunDirs, kappa: float, out_pdf, **kw) -> Path:
    """Read the multi-epoch run folders without/with augmentation; write figure 8."""
    return plot_fig8(load_curves(no_aug_runs), load_curves(aug_runs), kappa, out_pdf, **kw)


def make_fig9(runs_by_label: Mapping[str, RunDirs], kappa: KappaArg, out_pdf, **kw) -> Path:
    """Read each arm's multi-epoch run folders; write figure 9."""
    return plot_fig9({k: load_curves(v) for k, v in runs_by_label.items()}, kappa, out_pdf, **kw)


def make_fig12(runs_by_label: Mapping[str, RunDirs], kappa: KappaArg, out_pdf, **kw) -> Path:
    """Read each arm's run folders on the diverse split; write figure 12."""
    curves = {k: load_curves(v) for k, v in runs_by_label.items()}
    return plot_fig12(curves, kappa, out_pdf, **kw)


def make_fig13(tta_csvs: Iterable[str | Path], out_pdf, L_D: float | None = None, **kw) -> Path:
    """Read the group-averaging CSVs; write figure 13."""
    return plot_fig13(ex.read_group_average(tta_csvs), out_pdf, L_D, **kw)


def make_fig15(invariant_runs: RunDirs, absolute_runs: RunDirs, out_pdf, **kw) -> Path:
    """Read the relative-vector and absolute-position run folders; write figure 15."""
    return plot_fig15(load_curves(invariant_runs), load_curves(absolute_runs), out_pdf, **kw)
