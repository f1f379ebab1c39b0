"""Figures of the sweeps and learning curves (paper figs. 10, 11, 14, 16): no fits, data only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from pipeline.plots import draw
from pipeline.plots.style import (
    D_LABEL,
    X_LABELS,
    apply_style,
    colors,
    format_number,
    legend_outside,
    save,
)
from pipeline.scaling.experiments import final_losses, load_runs_with_meta, require
from pipeline.scaling.frontier import load_curves

RunDirs = Iterable[str | Path]


def plot_fig10(grid: pd.DataFrame, sweep: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 10: batch size x learning rate (top) and depth x width (bottom) per arch.

    Parameters
    ----------
    grid : DataFrame
        ``arch, batch_size, lr, val_loss``: final loss of each run of the batch/lr
        sweep (:func:`pipeline.scaling.experiments.final_losses`); repeats averaged.
    sweep : DataFrame
        ``arch, depth, width, n_params, val_loss`` of the depth/width sweep at about
        equal N (repeats averaged).
    out_path : path
        PDF to write.
    """
    require(grid, ("arch", "batch_size", "lr", "val_loss"), "fig 10 grid")
    require(sweep, ("arch", "depth", "width", "n_params", "val_loss"), "fig 10 sweep")
    apply_style()
    archs = list(dict.fromkeys([*sorted(grid["arch"].unique()), *sorted(sweep["arch"].unique())]))
    fig, axes = plt.subplots(
        2, len(archs), figsize=(4.4 * len(archs), 6.4), squeeze=False, layout="constrained"
    )
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
            ax.scatter(
                [best["lr"]],
                [best["val_loss"]],
                marker="*",
                s=90,
                color="C3",
                zorder=4,
                label="best",
            )
        ax.set(xscale="log", yscale="log", xlabel="Learning rate", title=arch)
        legend_outside(ax)
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
                ax.annotate(
                    f"w={int(r['width'])}, N={format_number(r['n_params'])}",
                    (r["depth"], r["val_loss"]),
                    fontsize=6,
                    xytext=(0, 6),
                    textcoords="offset points",
                    ha="center",
                )
            ax.set_xticks(sorted(s["depth"].unique()))
            pad = 0.5 * max(float(np.ptp(s["depth"])), 1.0) * 0.4
            ax.set_xlim(s["depth"].min() - pad, s["depth"].max() + pad)
        ax.set(yscale="log", xlabel="Depth (layers)")
        if j == 0:
            axes[0][j].set_ylabel("Validation loss")
            ax.set_ylabel("Validation loss")
    return save(fig, out_path)


def plot_fig11(curves: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 11: EGNN with a growing number of vector channels E.

    Left: learning curves coloured by E; right: final validation loss vs E, one
    line per width. ``curves`` come from
    :func:`pipeline.scaling.experiments.load_runs_with_meta` with ``vector_channels``
    set for every run.
    """
    require(curves, ("run", "width", "atoms_seen", "val_loss", "vector_channels"), "fig 11")
    missing = curves.loc[curves["vector_channels"].isna(), "run"].unique()
    if missing.size:
        raise ValueError(
            f"fig 11: run(s) {list(missing)[:5]} have no hparams.vector_channels in meta.json"
        )
    apply_style()
    es = sorted(curves["vector_channels"].unique())
    norm = LogNorm(min(es), max(max(es), min(es) * 1.01))
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 3.9), layout="constrained")
    draw.draw_curves(
        axes[0],
        curves,
        "atoms_seen",
        "val_loss",
        norm,
        alpha=0.9,
        cmap="magma_r",
        color_by="vector_channels",
    )
    draw.loglog(axes[0], D_LABEL)
    axes[0].set_title("Learning curves")
    draw.size_colorbar(fig, axes[:1], norm, label="Vector channels E", cmap="magma_r")
    last = final_losses(curves)
    widths = sorted(last["width"].unique())
    wcol = colors([str(w) for w in widths])
    for w in widths:
        g = last[last["width"] == w].groupby("vector_channels", as_index=False)["val_loss"].mean()
        axes[1].plot(
            g["vector_channels"], g["val_loss"], "o-", color=wcol[str(w)], ms=4, label=f"width {w}"
        )
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="Vector channels E",
        ylabel="Final val. loss",
        title="Final loss vs E",
    )
    legend_outside(axes[1])
    return save(fig, out_path)


def plot_fig14(curves: pd.DataFrame, out_path: str | Path, *, x: str = "atoms_seen") -> Path:
    """Figure 14: energy (top) and force (bottom) validation learning curves per arch."""
    require(curves, ("arch", "run", "n_params", x, "val_energy_loss", "val_force_loss"), "fig 14")
    apply_style()
    archs = list(dict.fromkeys(curves["arch"]))
    fig, axes = plt.subplots(
        2, len(archs), figsize=(3.2 * len(archs) + 0.8, 5.8), squeeze=False, layout="constrained"
    )
    norm = draw.size_norm(curves)
    for j, arch in enumerate(archs):
        c = curves[curves["arch"] == arch]
        for i, (col, name) in enumerate(
            (("val_energy_loss", "Energy"), ("val_force_loss", "Force"))
        ):
            ax = axes[i][j]
            draw.draw_curves(ax, c, x, col, norm, alpha=0.8)
            draw.loglog(ax, X_LABELS.get(x, x), f"{name} validation loss" if j == 0 else None)
            if i == 0:
                ax.set_title(arch)
    draw.size_colorbar(fig, axes, norm)
    return save(fig, out_path)


def plot_fig16(curves: pd.DataFrame, out_path: str | Path) -> Path:
    """Figure 16: vanilla transformer learning curves (train and validation loss vs step)."""
    require(curves, ("run", "n_params", "step", "val_loss", "train_loss"), "fig 16")
    apply_style()
    norm = draw.size_norm(curves)
    fig, axes = plt.subplots(1, 2, figsize=(9.4, 3.8), layout="constrained", sharey=True)
    for ax, col, title in (
        (axes[0], "train_loss", "Training loss"),
        (axes[1], "val_loss", "Validation loss"),
    ):
        draw.draw_curves(ax, curves, "step", col, norm, alpha=0.9)
        draw.loglog(ax, X_LABELS["step"], "Loss" if col == "train_loss" else None)
        ax.set_title(title)
    draw.size_colorbar(fig, axes, norm)
    return save(fig, out_path)


def make_fig10(grid_runs: RunDirs, sweep_runs: RunDirs, out_pdf) -> Path:
    """Final losses of the batch/lr sweep and the depth/width sweep runs; write figure 10."""
    grid = final_losses(load_runs_with_meta(grid_runs))
    sweep = final_losses(load_runs_with_meta(sweep_runs))
    return plot_fig10(grid, sweep, out_pdf)


def make_fig11(runs: RunDirs, out_pdf) -> Path:
    """Read the EGNN vector-channel sweep run folders; write figure 11."""
    return plot_fig11(load_runs_with_meta(runs), out_pdf)


def make_fig14(runs: RunDirs, out_pdf, **kw) -> Path:
    """Read every run folder of the main study; write figure 14."""
    return plot_fig14(load_curves(runs), out_pdf, **kw)


def make_fig16(runs: RunDirs, out_pdf) -> Path:
    """Read the transformer run folders; write figure 16."""
    return plot_fig16(load_curves(runs), out_pdf)
