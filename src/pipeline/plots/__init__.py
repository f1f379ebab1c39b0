"""Figures of the paper, one function per figure, each writing a PDF.

Figures 1, 2, 3, 5 and 6 (the main study) live in :mod:`pipeline.plots.figures`,
figures 4 and 7-16 (the experiments) in :mod:`pipeline.plots.experiments`.
Uses matplotlib's Agg backend; depends on :mod:`pipeline.scaling` only.
"""

from pipeline.plots.experiments import (
    final_losses,
    load_runs_with_meta,
    plot_fig4,
    plot_fig7,
    plot_fig8,
    plot_fig9,
    plot_fig10,
    plot_fig11,
    plot_fig12,
    plot_fig13,
    plot_fig14,
    plot_fig15,
    plot_fig16,
)
from pipeline.plots.figures import (
    make_fig1,
    make_fig2,
    make_fig3,
    make_fig5,
    make_fig6,
    plot_fig1,
    plot_fig2,
    plot_fig3,
    plot_fig5,
    plot_fig6,
)

__all__ = [
    "final_losses",
    "load_runs_with_meta",
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
    "plot_fig4",
    "plot_fig7",
    "plot_fig8",
    "plot_fig9",
    "plot_fig10",
    "plot_fig11",
    "plot_fig12",
    "plot_fig13",
    "plot_fig14",
    "plot_fig15",
    "plot_fig16",
]
