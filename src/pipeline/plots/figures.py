"""Figures 1, 2, 3, 5 and 6 of the paper, one function per figure, each writing a PDF.

``plot_fig*`` take in-memory tables and fit dicts; ``make_fig*`` read the result
files (frontier CSVs, fit JSONs, run folders, kappa CSVs) and call them, so a
workflow script is one call. Fitted laws are drawn with 95 % bands: the
pointwise 2.5-97.5 percentiles of the law over the bootstrap samples stored in
the fit JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from pipeline.scaling.fit import optimal_allocation  # noqa: E402
from pipeline.scaling.frontier import add_compute, load_curves, smooth_curves  # noqa: E402
from pipeline.scaling.kappa import read_kappa_points  # noqa: E402
from pipeline.scaling.report import read_fits  # noqa: E402

logger = logging.getLogger(__name__)

X_LABELS = {"compute_pflops": "Training compute [PFLOPs]", "hours": "Training time [GPU-hours]"}


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"pdf.fonttype": 42, "axes.spines.top": False,
                         "axes.spines.right": False, "legend.frameon": False})  # fmt: skip


def _colors(keys: Sequence[str]) -> dict[str, tuple]:
    pal = sns.color_palette("colorblind", max(len(keys), 1))
    return {k: pal[i] for i, k in enumerate(keys)}


def _save(fig, out_path: str | Path) -> Path:
    for ax in fig.axes:
        # log axes: decade labels only when the axis spans more than two decades (minor
        # labels collide in print), also labels at 2x and 5x when it spans less
        for axis, scale, lim in (
            (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
            (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
        ):
            if scale != "log":
                continue
            if np.log10(max(lim) / min(lim)) > 2.0:
                axis.set_minor_formatter(NullFormatter())
            else:
                axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
                axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote %s", out)
    return out


def _band(samples_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise 95 % band from predictions [S, X]; None without samples."""
    if samples_pred.size == 0 or samples_pred.shape[0] < 2:
        return None
    lo, hi = np.percentile(samples_pred, [2.5, 97.5], axis=0)
    return lo, hi


def _power_law_band(fit: dict, x: np.ndarray):
    s = fit.get("samples")
    if not s:
        return None
    F, g = np.asarray(s["F"]), np.asarray(s["gamma"])
    return _band(F[:, None] * x[None, :] ** -g[:, None])


def _sum_law_fit(fit: dict) -> dict:
    used = fit["eq5_used"]
    return fit["eq5_free"] if used == "free" else fit["eq5_e_zero"]


def _sum_law(p: Mapping, n, d):
    return p["E"] + p["A"] * np.asarray(n) ** -p["alpha"] + p["B"] * np.asarray(d) ** -p["beta"]


def _sum_law_band(fit: dict, n, d):
    s = fit.get("samples")
    if not s:
        return None
    sp = {k: np.asarray(v)[:, None] for k, v in s.items()}
    return _band(_sum_law(sp, np.asarray(n)[None, :], np.asarray(d)[None, :]))


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
        :func:`pipeline.scaling.frontier.pareto_frontier` outputs for
        ``x="flops"`` (column ``compute_pflops``) and ``x="hours"``.
    fits : {arch: dict}
        :func:`pipeline.scaling.report.fit_arch` outputs (``eq4_flops``, ``eq4_hours``).
    out_path : path
        PDF to write.
    """
    _style()
    archs = list(frontiers_flops)
    col = _colors(archs)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, frs, xcol, key, unit in (
        (axes[0], frontiers_flops, "compute_pflops", "eq4_flops", "C"),
        (axes[1], frontiers_hours, "hours", "eq4_hours", "H"),
    ):
        for arch in archs:
            if arch not in frs:
                continue
            fr = frs[arch]
            x = fr[xcol].to_numpy()
            ax.scatter(x, fr["val_loss"], s=6, color=col[arch], alpha=0.45, linewidths=0)
            fit = fits.get(arch, {}).get(key)
            if fit is None:
                ax.plot([], [], color=col[arch], label=arch)
                continue
            xs = np.geomspace(x.min(), x.max(), 100)
            band = _power_law_band(fit, xs)
            if band is not None:
                ax.fill_between(xs, *band, color=col[arch], alpha=0.2, linewidth=0)
            lab = rf"{arch}: $L={fit['F']:.3g}\,{unit}^{{-{fit['gamma']:.3f}}}$"
            ax.plot(xs, fit["F"] * xs ** -fit["gamma"], color=col[arch], lw=1.8, label=lab)
        ax.set(xscale="log", yscale="log", xlabel=X_LABELS[xcol])
        ax.legend(fontsize=7.5, loc="lower left")
    axes[0].set_ylabel("Validation loss")
    axes[0].set_title("FLOPs-optimal frontier")
    axes[1].set_title("Train-time-optimal frontier")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 2


def plot_fig2(points: pd.DataFrame, kappas: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 2: forward FLOPs against N * D per arch, with the fitted C = kappa N D.

    Parameters
    ----------
    points : DataFrame
        Raw kappa points: ``arch, n_params, atoms, flops_counted, flops_total``.
    kappas : DataFrame
        :func:`pipeline.scaling.kappa.kappa_table` output (``arch, kappa, kappa_counted``).
    out_path : path
        PDF to write.
    """
    _style()
    archs = sorted(points["arch"].unique())
    col = _colors(archs)
    kap = kappas.set_index("arch")
    fig, axes = plt.subplots(1, len(archs), figsize=(3.0 * len(archs), 3.0), squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=True):
        g = points[points["arch"] == arch]
        nd = (g["n_params"] * g["atoms"]).to_numpy(dtype=float)
        ax.scatter(nd, g["flops_total"], color=col[arch], s=18, label="total")
        ax.scatter(nd, g["flops_counted"], facecolors="none", edgecolors=col[arch], s=18,
                   label="counted (matmul/conv)")  # fmt: skip
        xs = np.geomspace(nd.min(), nd.max(), 50)
        if arch in kap.index:
            k = float(kap.loc[arch, "kappa"])
            ax.plot(xs, k * xs, color="k", lw=1.2, label=rf"$\kappa={k:.3g}$")
            if "kappa_counted" in kap.columns:
                kc = float(kap.loc[arch, "kappa_counted"])
                ax.plot(xs, kc * xs, color="k", lw=1.0, ls="--",
                        label=rf"$\kappa_{{counted}}={kc:.3g}$")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel=r"$N \times D$", title=arch)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("Forward FLOPs")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 3


def plot_fig3(
    curves: pd.DataFrame,
    frontiers_flops: Mapping[str, pd.DataFrame],
    frontiers_hours: Mapping[str, pd.DataFrame],
    out_path: str | Path,
) -> Path:
    """Figure 3: per arch, every learning curve coloured by model size, frontier on top.

    Parameters
    ----------
    curves : DataFrame
        All runs, with ``compute_pflops`` (see
        :func:`pipeline.scaling.frontier.add_compute`) and ``hours``.
    frontiers_flops, frontiers_hours : {arch: DataFrame}
        Frontiers drawn over the curves (top row FLOPs, bottom row hours).
    out_path : path
        PDF to write.
    """
    _style()
    archs = list(frontiers_flops)
    fig, axes = plt.subplots(
        2, len(archs), figsize=(3.0 * len(archs) + 0.8, 5.6), squeeze=False, layout="constrained"
    )
    sizes = curves.loc[curves["arch"].isin(archs), "n_params"]
    norm = LogNorm(sizes.min(), max(sizes.max(), sizes.min() * 1.01))
    cmap = plt.get_cmap("viridis")
    for j, arch in enumerate(archs):
        c = curves[curves["arch"] == arch]
        for i, (xcol, frs) in enumerate(
            (("compute_pflops", frontiers_flops), ("hours", frontiers_hours))
        ):
            ax = axes[i][j]
            for _, run in c.groupby("run", sort=False):
                run = run[run[xcol] > 0]
                ax.plot(run[xcol], run["val_loss"], color=cmap(norm(run["n_params"].iloc[0])),
                        lw=0.8, alpha=0.7)  # fmt: skip
            if arch in frs:
                fr = frs[arch]
                ax.plot(fr[xcol], fr["val_loss"], color="k", lw=1.6, label="frontier")
            ax.set(xscale="log", yscale="log", xlabel=X_LABELS[xcol])
            if j == 0:
                ax.set_ylabel("Validation loss")
            if i == 0:
                ax.set_title(arch)
                ax.legend(fontsize=7, loc="upper right")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=axes.ravel().tolist(), label="Parameters N", fraction=0.03)
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 5


def plot_fig5(
    points: Mapping[str, pd.DataFrame], fits: Mapping[str, dict], out_path: str | Path
) -> Path:
    """Figure 5: eq. (5) fits. Top: loss vs D coloured by N; bottom: loss vs N coloured by D.

    Parameters
    ----------
    points : {arch: DataFrame}
        :func:`pipeline.scaling.frontier.sum_law_points` outputs (``n, d, loss``,
        ``fraction``).
    fits : {arch: dict}
        :func:`pipeline.scaling.report.fit_arch` outputs (the eq. 5 fit Table 1 uses
        is drawn, with its band).
    out_path : path
        PDF to write.
    """
    _style()
    archs = list(points)
    fig, axes = plt.subplots(2, len(archs), figsize=(3.2 * len(archs), 5.6), squeeze=False)
    for j, arch in enumerate(archs):
        p = points[arch]
        fit = _sum_law_fit(fits[arch]) if arch in fits else None
        for i, (xk, ck, grp) in enumerate((("d", "n", "n"), ("n", "d", "fraction"))):
            ax = axes[i][j]
            levels = sorted(p[grp].unique())
            cmap = plt.get_cmap("viridis" if i == 0 else "magma_r")
            shades = cmap(np.linspace(0.1, 0.9, len(levels)))
            for lev, shade in zip(levels, shades, strict=True):
                g = p[p[grp] == lev].sort_values(xk)
                lab = f"N={lev:.2g}" if i == 0 else f"r={lev:g}"
                ax.scatter(g[xk], g["loss"], color=shade, s=14, zorder=3, label=lab)
                if fit is None:
                    continue
                xs = np.geomspace(p[xk].min(), p[xk].max(), 60)
                other = np.full_like(xs, float(np.median(g[ck])))
                n_, d_ = (other, xs) if xk == "d" else (xs, other)
                ax.plot(xs, _sum_law(fit, n_, d_), color=shade, lw=1.2)
                band = _sum_law_band(fit, n_, d_)
                if band is not None:
                    ax.fill_between(xs, *band, color=shade, alpha=0.15, linewidth=0)
            ax.set(xscale="log", yscale="log")
            ax.set_xlabel("Training atoms D" if xk == "d" else "Parameters N")
            if fit is not None:
                ex = fit["beta"] if xk == "d" else fit["alpha"]
                sym = r"\beta" if xk == "d" else r"\alpha"
                ax.set_title(rf"{arch}: ${sym}={ex:.2f}$")
            if j == 0:
                ax.set_ylabel("Validation loss")
            if len(levels) <= 8:
                ax.legend(fontsize=6, ncol=2, loc="upper right")
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- figure 6


def plot_fig6(
    fits: Mapping[str, dict], out_path: str | Path, compute_range: Sequence[float] | None = None
) -> Path:
    """Figure 6: compute-optimal N*(C) (left) and D*(C) (right) per arch, with 95 % bands.

    Parameters
    ----------
    fits : {arch: dict}
        :func:`pipeline.scaling.report.fit_arch` outputs.
    out_path : path
        PDF to write.
    compute_range : (lo, hi), optional
        Compute range in PFLOPs; default: the union of the fitted frontiers' ranges,
        widened by a decade on each side.
    """
    _style()
    archs = list(fits)
    col = _colors(archs)
    if compute_range is None:
        lo = min(f["eq4_flops"]["x_range"][0] for f in fits.values()) / 10
        hi = max(f["eq4_flops"]["x_range"][1] for f in fits.values()) * 10
    else:
        lo, hi = compute_range
    cs = np.geomspace(lo, hi, 80)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for arch in archs:
        f = fits[arch]
        if "error" in f["eq7"]:  # no compute-optimal law for this arch (stated in table 1)
            logger.warning("figure 6: %s left out: %s", arch, f["eq7"]["error"])
            continue
        s = _sum_law_fit(f)
        pt = optimal_allocation(s["A"], s["B"], s["alpha"], s["beta"], f["kappa"], cs)
        smp = s.get("samples")
        bs = None
        if smp:
            sa = {k: np.asarray(v) for k, v in smp.items()}
            ok = (sa["alpha"] > 0) & (sa["beta"] > 0)
            bs = optimal_allocation(sa["A"][ok], sa["B"][ok], sa["alpha"][ok], sa["beta"][ok],
                                    f["kappa"], cs)  # fmt: skip
        co = f["eq7"]
        for ax, key, exp in ((axes[0], "n_opt", co["a"]), (axes[1], "d_opt", co["b"])):
            ax.plot(cs, np.ravel(pt[key]), color=col[arch], lw=1.8,
                    label=f"{arch} ({'a' if key == 'n_opt' else 'b'}={exp:.2f})")  # fmt: skip
            band = _band(bs[key]) if bs is not None else None
            if band is not None:
                ax.fill_between(cs, *band, color=col[arch], alpha=0.2, linewidth=0)
    axes[0].set(xscale="log", yscale="log", xlabel=X_LABELS["compute_pflops"],
                ylabel=r"Optimal parameters $N^*$")  # fmt: skip
    axes[1].set(xscale="log", yscale="log", xlabel=X_LABELS["compute_pflops"],
                ylabel=r"Optimal training atoms $D^*$")  # fmt: skip
    for ax in axes:
        ax.legend(fontsize=7.5)
    fig.tight_layout()
    return _save(fig, out_path)


# --------------------------------------------------------------------------- from files


def _arch_of(path: str | Path, suffix: str) -> str:
    name = Path(path).name
    if not name.endswith(suffix):
        raise ValueError(f"{path}: expected a file named {{arch}}{suffix}")
    return name[: -len(suffix)]


def _read_frontiers(paths: Iterable[str | Path], suffix: str) -> dict[str, pd.DataFrame]:
    out = {}
    for p in paths:
        df = pd.read_csv(p)
        for c in ("val_loss", "compute_pflops", "hours"):
            if c not in df.columns:
                raise ValueError(f"{p}: missing column {c!r}")
        out[_arch_of(p, suffix)] = df
    return out


def make_fig1(
    flops_csvs: Iterable[str | Path],
    hours_csvs: Iterable[str | Path],
    fit_jsons: Iterable[str | Path],
    out_pdf: str | Path,
) -> Path:
    """Read ``results/frontier/{arch}_{flops,hours}.csv`` and fit JSONs; write figure 1."""
    return plot_fig1(
        _read_frontiers(flops_csvs, "_flops.csv"),
        _read_frontiers(hours_csvs, "_hours.csv"),
        read_fits(fit_jsons),
        out_pdf,
    )


def make_fig2(points_csv: str | Path, kappa_csv: str | Path, out_pdf: str | Path) -> Path:
    """Read the raw kappa points and ``results/kappa.csv``; write figure 2."""
    return plot_fig2(read_kappa_points(points_csv), pd.read_csv(kappa_csv), out_pdf)


def make_fig3(
    run_dirs: Iterable[str | Path],
    kappa_csv: str | Path,
    flops_csvs: Iterable[str | Path],
    hours_csvs: Iterable[str | Path],
    out_pdf: str | Path,
    *,
    ema: float | None = None,
) -> Path:
    """Read run folders, kappa and frontier CSVs; write figure 3."""
    from pipeline.scaling.kappa import read_kappa

    curves = add_compute(smooth_curves(load_curves(run_dirs), ema), read_kappa(kappa_csv))
    return plot_fig3(
        curves,
        _read_frontiers(flops_csvs, "_flops.csv"),
        _read_frontiers(hours_csvs, "_hours.csv"),
        out_pdf,
    )


def make_fig5(
    run_dirs: Iterable[str | Path],
    fit_jsons: Iterable[str | Path],
    out_pdf: str | Path,
    *,
    ema: float | None = None,
) -> Path:
    """Read run folders and fit JSONs; write figure 5."""
    from pipeline.scaling.frontier import sum_law_points

    pts = sum_law_points(load_curves(run_dirs), ema=ema)
    points = {str(a): g for a, g in pts.groupby("arch", sort=True)}
    return plot_fig5(points, read_fits(fit_jsons), out_pdf)


def make_fig6(fit_jsons: Iterable[str | Path], out_pdf: str | Path) -> Path:
    """Read fit JSONs; write figure 6."""
    return plot_fig6(read_fits(fit_jsons), out_pdf)
