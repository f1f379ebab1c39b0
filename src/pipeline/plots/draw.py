"""Drawing pieces shared by the figures: laws with 95 % bands, frontiers, curves, legends.

Fitted laws are drawn with the pointwise 2.5-97.5 percentiles of the law over the
bootstrap samples stored with the fit. A fit that says ``identified: False``
(contract 4) is drawn as data only and its legend reads "not identified (<reason>)".
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from pipeline.plots.style import SIZE_CMAP
from pipeline.scaling.identify import describe_estimate


def band(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise 95 % band of predictions [S, X]; None with fewer than 2 samples."""
    if pred.size == 0 or pred.shape[0] < 2:
        return None
    lo, hi = np.nanpercentile(pred, [2.5, 97.5], axis=0)
    return lo, hi


def power_law(fit: Mapping, x) -> np.ndarray:
    """``F x^-gamma`` of an eq. (4) fit dict."""
    return fit["F"] * np.asarray(x, float) ** -fit["gamma"]


def power_law_band(fit: Mapping, x: np.ndarray):
    s = fit.get("samples")
    if not s:
        return None
    F, g = np.asarray(s["F"], float), np.asarray(s["gamma"], float)
    return band(F[:, None] * x[None, :] ** -g[:, None])


def sum_law(p: Mapping, n, d) -> np.ndarray:
    """``E + A N^-alpha + B D^-beta`` of an eq. (5) parameter mapping (arrays broadcast)."""
    return p["E"] + p["A"] * np.asarray(n) ** -p["alpha"] + p["B"] * np.asarray(d) ** -p["beta"]


def sum_law_band(fit: Mapping, n, d):
    s = fit.get("samples")
    if not s:
        return None
    sp = {
        k: np.asarray(v, float)[:, None]
        for k, v in s.items()
        if k in ("E", "A", "B", "alpha", "beta")
    }
    return band(sum_law(sp, np.asarray(n)[None, :], np.asarray(d)[None, :]))


def identified(fit: Mapping | None) -> bool:
    """A fit to draw: present and not flagged ``identified: False``."""
    return fit is not None and fit.get("identified", True) is not False


def estimate_label(label: str, fit: Mapping | None, name: str, sym: str) -> str:
    """``"label: $sym$ = 0.31 [0.25, 0.38]"`` or ``"label: sym not identified (reason)"``."""
    if fit is None:
        return f"{label} (no fit)"
    text = describe_estimate(dict(fit), name)
    if text.startswith("not identified"):
        # long reasons wrap, so that a legend never squeezes its panel
        return "\n".join(textwrap.wrap(f"{label}: ${sym}$ {text}", 48))
    return f"{label}: ${sym}$ = {text}"


def draw_power_law(
    ax,
    xs: np.ndarray,
    fit: Mapping | None,
    color,
    label: str,
    *,
    ls: str = "-",
    sym: str = r"\gamma",
) -> None:
    """The fitted law with its band over ``xs``; only a legend entry when not identified."""
    if not identified(fit):
        ax.plot([], [], color=color, ls=ls, label=estimate_label(label, fit, "gamma", sym))
        return
    b = power_law_band(fit, xs)
    if b is not None:
        ax.fill_between(xs, *b, color=color, alpha=0.2, linewidth=0)
    ax.plot(
        xs,
        power_law(fit, xs),
        color=color,
        lw=1.8,
        ls=ls,
        label=estimate_label(label, fit, "gamma", sym),
    )


def draw_frontier(
    ax, fr: pd.DataFrame, fit: Mapping | None, color, label: str, xcol: str = "compute_pflops"
) -> None:
    """Frontier points and the fitted eq. (4) with band; the legend carries gamma."""
    x = fr[xcol].to_numpy(float)
    ax.scatter(x, fr["val_loss"], s=9, color=color, alpha=0.6, linewidths=0, zorder=3)
    draw_power_law(ax, np.geomspace(x.min(), x.max(), 100), fit, color, label)


def size_norm(*frames: pd.DataFrame, column: str = "n_params") -> LogNorm:
    n = pd.concat([f[column] for f in frames]).astype(float)
    return LogNorm(float(n.min()), float(max(n.max(), n.min() * 1.01)))


def draw_curves(
    ax,
    curves: pd.DataFrame,
    xcol: str,
    ycol: str,
    norm,
    *,
    ls="-",
    alpha=0.7,
    cmap: str = SIZE_CMAP,
    color_by: str = "n_params",
) -> None:
    """One line per run, coloured by ``color_by`` (log norm)."""
    cm = plt.get_cmap(cmap)
    for _, run in curves.groupby("run", sort=False):
        run = run[(run[xcol] > 0) & (run[ycol] > 0)]
        if not run.empty:
            ax.plot(
                run[xcol],
                run[ycol],
                color=cm(norm(run[color_by].iloc[0])),
                lw=0.8,
                alpha=alpha,
                ls=ls,
            )


def size_colorbar(fig, axes, norm, label: str = "Parameters N", cmap: str = SIZE_CMAP) -> None:
    sm = plt.cm.ScalarMappable(norm=norm, cmap=plt.get_cmap(cmap))
    fig.colorbar(sm, ax=np.ravel(axes).tolist(), label=label, fraction=0.03, pad=0.02)


def loglog(ax, xlabel: str, ylabel: str | None = "Validation loss") -> None:
    ax.set(xscale="log", yscale="log", xlabel=xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
