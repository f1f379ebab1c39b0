"""Figures of the paper, one function per figure, each writing a PDF; they only draw.

* :mod:`pipeline.plots.main`: the main study (figs. 1, 2, 3, 5, 6);
* :mod:`pipeline.plots.symmetry`: the symmetry experiments (figs. 4, 7, 8, 9, 12, 13, 15);
* :mod:`pipeline.plots.sweeps`: sweeps and learning curves (figs. 10, 11, 14, 16);

around :mod:`pipeline.plots.style` (theme, colours, the one log-axis formatter, saving)
and :mod:`pipeline.plots.draw` (laws with bands, frontiers, curves). Every fit a figure
shows is made by :mod:`pipeline.scaling` (the fit stage's JSONs, or
:mod:`pipeline.scaling.experiments` with ``config['fit']``). ``plot_fig*`` take tables
and fit dicts; ``make_fig*`` read result files and call them. Uses matplotlib's Agg
backend; depends on :mod:`pipeline.scaling` only (and the readers of workflow_io).
"""

from pipeline.plots.main import (
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
from pipeline.plots.sweeps import (
    make_fig10,
    make_fig11,
    make_fig14,
    make_fig16,
    plot_fig10,
    plot_fig11,
    plot_fig14,
    plot_fig16,
)
from pipeline.plots.symmetry import (
    make_fig4,
    make_fig7,
    make_fig8,
    make_fig9,
    make_fig12,
    make_fig13,
    make_fig15,
    plot_fig4,
    plot_fig7,
    plot_fig8,
    plot_fig9,
    plot_fig12,
    plot_fig13,
    plot_fig15,
)

__all__ = [
    "make_fig1",
    "make_fig2",
    "make_fig3",
    "make_fig4",
    "make_fig5",
    "make_fig6",
    "make_fig7",
    "make_fig8",
    "make_fig9",
    "make_fig10",
    "make_fig11",
    "make_fig12",
    "make_fig13",
    "make_fig14",
    "make_fig15",
    "make_fig16",
    "plot_fig1",
    "plot_fig2",
    "plot_fig3",
    "plot_fig4",
    "plot_fig5",
    "plot_fig6",
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
