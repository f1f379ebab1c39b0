"""Figures of the paper (1, 2, 3, 5, 6), one function per figure, each writing a PDF.

Uses matplotlib's Agg backend; depends on :mod:`pipeline.scaling` only.
"""

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
]
