"""Figures of the main study (paper figs. 1, 2, 3, 5, 6), one function per figure.

``plot_fig*`` take in-memory tables and fit dicts and only draw; ``make_fig*`` read
the result files (frontier CSVs, fit JSONs, run folders, kappa CSVs) and call them,
so a workflow script is one call. Every number printed comes from the fit stage's
JSON; a law the fit flags ``identified: False`` is shown as "not identified
(<reason>)" instead of an exponent.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipeline.plots import draw
from pipeline.plots.style import (
    X_LABELS,
    apply_style,
    colors,
    format_number,
    legend_below,
    save,
)
from pipeline.scaling.fit import optimal_allocation
from pipeline.scaling.frontier import add_compute, load_curves, sum_law_points
from pipeline.scaling.identify import describe_estimate
from pipeline.scaling.kappa import read_kappa_points
from pipeline.scaling.tables import read_fits
from pipeline.workflow_io import read_frontiers, read_kappas

logger = logging.getLogger(__name__)


def used_sum_fit(fit: Mapping) -> dict:
    """The eq. (5) fit Table 1 uses (``eq5_used``: free or e_zero) of a fit JSON."""
    return fit["eq5_free"] if fit["eq5_used"] == "free" else fit["eq5_e_zero"]


def _wrap(text: str, width: int = 48) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


# --------------------------------------------------------------------------- figure 1


def plot_fig1(
    frontiers_flops: Mapping[str, pd.DataFrame],
    frontiers_hours: Mapping[str, pd.DataFrame],
    fits: Mapping[str, dict],
    out_path: str | Path,
) -> Path:
    """Figure 1: loss-compute frontiers of all archs with fitted eq. (4), log-log.

    Parameters
    ----------
    frontiers_flops, frontiers_hours : {arch: DataFrame}
        Frontier files (``compute_pflops`` / ``hours``, ``val_loss``).
    fits : {arch: dict}
        Fit JSONs (``eq4_flops``, ``eq4_hours``).
    out_path : path
        PDF to write.
    """
    apply_style()
    archs = list(frontiers_flops)
    col = colors(archs)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True, layout="constrained")
    for ax, frs, xcol, key in (
        (axes[0], frontiers_flops, "compute_pflops", "eq4_flops"),
        (axes[1], frontiers_hours, "hours", "eq4_hours"),
    ):
        for arch in archs:
            if arch in frs:
                draw.draw_frontier(
                    ax, frs[arch], fits.get(arch, {}).get(key), col[arch], arch, xcol
                )
        ax.set(xscale="log", yscale="log", xlabel=X_LABELS[xcol])
    axes[0].set_ylabel("Validation loss")
    axes[0].set_title("FLOPs-optimal frontier")
    axes[1].set_title("Train-time-optimal frontier")
    legend_below(fig, axes[:1], ncol=2)
    return save(fig, out_path)


# --------------------------------------------------------------------------- figure 2


def plot_fig2(points: pd.DataFrame, kappas: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 2: measured forward FLOPs per (N x atom) per width and batch, with kappa.

    Each panel (one arch) shows ``flops_per_param_atom`` of every measured model
    size and batch (marker size: molecules per batch), the fitted kappa (a log-
    residual fit, the horizontal line), and the fit's ``r2_log`` and
    ``worst_rel_residual``: how well one kappa describes every width.

    Parameters
    ----------
    points : DataFrame
        ``arch, width, n_params, molecules, atoms, flops_counted, flops_total,
        flops_per_param_atom`` (the kappa stage's points).
    kappas : DataFrame
        ``arch, kappa, flops_mode, r2_log, worst_rel_residual, n_points``.
    out_path : path
        PDF to write.
    """
    apply_style()
    archs = sorted(points["arch"].unique())
    col = colors(archs)
    kap = kappas.set_index("arch")
    ncols = min(len(archs), 2)
    nrows = -(-len(archs) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[len(archs) :]:
        ax.remove()
    for ax, arch in zip(axes.ravel(), archs, strict=False):
        g = points[points["arch"] == arch]
        nd = (g["n_params"] * g["atoms"]).to_numpy(float)
        batch = g["molecules"] if "molecules" in g else g["atoms"]
        sizes = 12 + 30 * (batch - batch.min()) / max(float(batch.max() - batch.min()), 1.0)
        ax.scatter(g["n_params"], g["flops_total"] / nd, s=sizes, color=col[arch], label="total")
        ax.scatter(
            g["n_params"],
            g["flops_counted"] / nd,
            s=sizes,
            facecolors="none",
            edgecolors=col[arch],
            label="counted (matmul/conv)",
        )
        title = arch
        if arch in kap.index:
            row = kap.loc[arch]
            k = float(row["kappa"])
            mode = row.get("flops_mode", "total")
            ax.axhline(k, color="k", lw=1.2, label=r"fitted $\kappa$ (log residuals)")
            r2, worst = row.get("r2_log", np.nan), row.get("worst_rel_residual", np.nan)
            title += (
                rf": $\kappa$ = {k:.3g} ({mode})"
                f"\n$r^2_{{log}}$ = {r2:.3f}, worst residual {100 * worst:.0f} %"
            )
        ax.set(xscale="log", yscale="log", xlabel="Parameters N", title=title)
        ax.title.set_fontsize(9)
        ax.set_ylabel(r"Forward FLOPs / ($N \times$ atoms)")
    legend_below(fig, axes.ravel()[: len(archs)], ncol=3)
    return save(fig, out_path)


# --------------------------------------------------------------------------- figure 3


def plot_fig3(
    curves: pd.DataFrame,
    frontiers_flops: Mapping[str, pd.DataFrame],
    frontiers_hours: Mapping[str, pd.DataFrame],
    out_path: str | Path,
) -> Path:
    """Figure 3: per arch, every learning curve coloured by model size, frontier on top.

    ``curves`` carry ``compute_pflops`` (:func:`pipeline.scaling.frontier.add_compute`)
    and ``hours``; top row against FLOPs, bottom against hours.
    """
    apply_style()
    archs = list(frontiers_flops)
    fig, axes = plt.subplots(
        2, len(archs), figsize=(3.0 * len(archs) + 0.8, 5.8), squeeze=False, layout="constrained"
    )
    norm = draw.size_norm(curves[curves["arch"].isin(archs)])
    for j, arch in enumerate(archs):
        c = curves[curves["arch"] == arch]
        for i, (xcol, frs) in enumerate(
            (("compute_pflops", frontiers_flops), ("hours", frontiers_hours))
        ):
            ax = axes[i][j]
            draw.draw_curves(ax, c, xcol, "val_loss", norm)
            if arch in frs:
                ax.plot(frs[arch][xcol], frs[arch]["val_loss"], color="k", lw=1.6, label="frontier")
            draw.loglog(ax, X_LABELS[xcol], "Validation loss" if j == 0 else None)
            if i == 0:
                ax.set_title(arch)
    draw.size_colorbar(fig, axes, norm)
    legend_below(fig, axes[0][:1])
    return save(fig, out_path)


# --------------------------------------------------------------------------- figure 5


def _seed_spread(p: pd.DataFrame) -> pd.DataFrame:
    """Mean, min and max loss over seeds per (n, fraction); ``n_seeds``."""
    return p.groupby(["n", "fraction"], as_index=False).agg(
        d=("d", "median"),
        loss=("loss", "mean"),
        lo=("loss", "min"),
        hi=("loss", "max"),
        n_seeds=("loss", "size"),
    )


def plot_fig5(
    points: Mapping[str, pd.DataFrame], fits: Mapping[str, dict], out_path: str | Path
) -> Path:
    """Figure 5: eq. (5) fits. Top: loss vs D coloured by N; bottom: loss vs N coloured by D.

    Points are the runs' final losses (:func:`pipeline.scaling.frontier.sum_law_points`);
    with several seeds per rung the mean is drawn with a bar from the lowest to
    the highest seed. The eq. (5) fit Table 1 uses is drawn with its band; the
    panel title gives its exponent, or "not identified (<reason>)".
    """
    apply_style()
    archs = list(points)
    fig, axes = plt.subplots(
        2, len(archs), figsize=(3.3 * len(archs), 6.4), squeeze=False, layout="constrained"
    )
    for j, arch in enumerate(archs):
        p = _seed_spread(points[arch])
        fit = used_sum_fit(fits[arch]) if arch in fits else None
        for i, (xk, ck, grp) in enumerate((("d", "n", "n"), ("n", "d", "fraction"))):
            ax = axes[i][j]
            levels = sorted(p[grp].unique())
            cmap = plt.get_cmap("viridis" if i == 0 else "magma_r")
            for lev, shade in zip(levels, cmap(np.linspace(0.1, 0.9, len(levels))), strict=True):
                g = p[p[grp] == lev].sort_values(xk)
                ax.errorbar(
                    g[xk],
                    g["loss"],
                    yerr=[g["loss"] - g["lo"], g["hi"] - g["loss"]],
                    fmt="o",
                    ms=3.5,
                    color=shade,
                    elinewidth=0.8,
                    capsize=0,
                    zorder=3,
                    label=f"N = {format_number(lev)}" if i == 0 else f"r = {lev:g}",
                )
                if draw.identified(fit):
                    xs = np.geomspace(p[xk].min(), p[xk].max(), 60)
                    other = np.full_like(xs, float(np.median(g[ck])))
                    n_, d_ = (other, xs) if xk == "d" else (xs, other)
                    ax.plot(xs, draw.sum_law(fit, n_, d_), color=shade, lw=1.2)
                    b = draw.sum_law_band(fit, n_, d_)
                    if b is not None:
                        ax.fill_between(xs, *b, color=shade, alpha=0.15, linewidth=0)
            ax.set(xscale="log", yscale="log")
            ax.set_xlabel("Training atoms D" if xk == "d" else "Parameters N")
            name, sym = ("beta", r"\beta") if xk == "d" else ("alpha", r"\alpha")
            text = describe_estimate(fit, name, "{:.2f}") if fit else "no fit"
            title = (
                f"{arch}: ${sym}$ = {text}"
                if fit and fit.get("identified", True)
                else (f"{arch}: ${sym}$ {text}")
            )
            ax.set_title(_wrap(title, 40), fontsize=8)
            if j == 0:
                ax.set_ylabel("Validation loss")
            if len(levels) <= 8:
                draw_legend = ax.legend(
                    fontsize=6, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0)
                )
                draw_legend.set_title(None)
    return save(fig, out_path)


# --------------------------------------------------------------------------- figure 6


def plot_fig6(
    fits: Mapping[str, dict], out_path: str | Path, compute_range: Sequence[float] | None = None
) -> Path:
    """Figure 6: compute-optimal N*(C) (left) and D*(C) (right) per arch, with 95 % bands.

    An arch whose eq. (7) is not identified (or absent) gets a legend entry with
    the reason and no line. ``compute_range`` (PFLOPs) defaults to the union of the
    fitted frontiers' ranges, widened by a decade on each side.
    """
    apply_style()
    archs = list(fits)
    col = colors(archs)
    if compute_range is None:
        ranges = [f["eq4_flops"].get("x_range") for f in fits.values()]
        ranges = [r for r in ranges if r and None not in r]
        lo = min(r[0] for r in ranges) / 10 if ranges else 1e-6
        hi = max(r[1] for r in ranges) * 10 if ranges else 1e3
    else:
        lo, hi = compute_range
    cs = np.geomspace(lo, hi, 80)
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.9), layout="constrained")
    for arch in archs:
        f = fits[arch]
        eq7 = f["eq7"]
        if "error" in eq7 or eq7.get("identified") is False:
            why = eq7.get("not_identified_reason") or eq7.get("error")
            logger.warning("figure 6: %s left out: %s", arch, why)
            axes[0].plot([], [], color=col[arch], label=_wrap(f"{arch}: not identified ({why})"))
            continue
        s = used_sum_fit(f)
        pt = optimal_allocation(s["A"], s["B"], s["alpha"], s["beta"], f["kappa"], cs)
        smp, bs = s.get("samples"), None
        if smp:
            sa = {k: np.asarray(v, float) for k, v in smp.items()}
            ok = (sa["alpha"] > 0) & (sa["beta"] > 0)
            bs = optimal_allocation(
                sa["A"][ok], sa["B"][ok], sa["alpha"][ok], sa["beta"][ok], f["kappa"], cs
            )
        for ax, key, name in ((axes[0], "n_opt", "a"), (axes[1], "d_opt", "b")):
            label = f"{arch} ({name} = {describe_estimate(eq7, name, '{:.2f}')})"
            ax.plot(cs, np.ravel(pt[key]), color=col[arch], lw=1.8, label=_wrap(label))
            b = draw.band(bs[key]) if bs is not None else None
            if b is not None:
                ax.fill_between(cs, *b, color=col[arch], alpha=0.2, linewidth=0)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel=X_LABELS["compute_pflops"],
        ylabel=r"Optimal parameters $N^*$",
    )
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel=X_LABELS["compute_pflops"],
        ylabel=r"Optimal training atoms $D^*$",
    )
    legend_below(fig, axes, ncol=2)
    return save(fig, out_path)


# --------------------------------------------------------------------------- from files


def make_fig1(
    frontier_csvs: Iterable[str | Path], fit_jsons: Iterable[str | Path], out_pdf: str | Path
) -> Path:
    """Read ``frontier/{arch}_{flops,hours}.csv`` and the fit JSONs; write figure 1."""
    fr = read_frontiers(frontier_csvs)
    return plot_fig1(fr["flops"], fr["hours"], read_fits(fit_jsons), out_pdf)


def make_fig2(
    points_csvs: Iterable[str | Path], kappa_csvs: Iterable[str | Path], out_pdf: str | Path
) -> Path:
    """Read the kappa stage's points and kappa CSVs; write figure 2."""
    points = pd.concat([read_kappa_points(p) for p in points_csvs], ignore_index=True)
    kappas = pd.concat([pd.read_csv(p) for p in kappa_csvs], ignore_index=True)
    return plot_fig2(points, kappas, out_pdf)


def make_fig3(
    run_dirs: Iterable[str | Path],
    kappa_csvs: Iterable[str | Path],
    frontier_csvs: Iterable[str | Path],
    out_pdf: str | Path,
    *,
    fit: Mapping | None = None,
    kappa_config: Mapping | None = None,
) -> Path:
    """Read run folders, kappa and frontier CSVs; write figure 3 (compute as ``fit.compute``)."""
    from pipeline.scaling.fits import fit_options

    opt = fit_options(fit, None, kappa_config)
    curves = add_compute(
        load_curves(run_dirs), read_kappas(kappa_csvs), compute=opt["compute"], flops=opt["flops"]
    )
    fr = read_frontiers(frontier_csvs)
    return plot_fig3(curves, fr["flops"], fr["hours"], out_pdf)


def make_fig5(
    run_dirs: Iterable[str | Path],
    fit_jsons: Iterable[str | Path],
    out_pdf: str | Path,
    *,
    fit: Mapping | None = None,
) -> Path:
    """Read run folders and fit JSONs; write figure 5 (EMA per arch from ``fit.ema``)."""
    from pipeline.scaling.fits import fit_options

    curves = load_curves(run_dirs)
    points = {
        str(arch): sum_law_points(g, ema=fit_options(fit, str(arch))["ema"])
        for arch, g in curves.groupby("arch", sort=False)
    }
    return plot_fig5(points, read_fits(fit_jsons), out_pdf)


def make_fig6(fit_jsons: Iterable[str | Path], out_pdf: str | Path) -> Path:
    """Read fit JSONs; write figure 6."""
    return plot_fig6(read_fits(fit_jsons), out_pdf)


__all__ = [
    "make_fig1",
    "make_fig2",
    "make_fig3",
    "make_fig5",
    "make_fig6",
    "plot_fig1",
    "plot_fig2",
    "plot_fig3",
    "plot_fig5",
    "plot_fig6",
    "used_sum_fit",
]
