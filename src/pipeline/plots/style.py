"""The figures' shared style: theme, colours, axis labels, one log-axis formatter, saving.

Every figure module uses these public names and nothing private from another module.
:func:`save` formats every log axis with :func:`format_log_axis` before writing, so
tick labels are alike across figures: decades as ``10^e`` (or plain numbers when
every tick lies in [1e-3, 1e4)), 1-2-5 ticks on axes spanning about a decade, and
never overlapping (ticks are thinned until the labels' extents are disjoint).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator, Formatter, MaxNLocator, NullFormatter  # noqa: E402

logger = logging.getLogger(__name__)

X_LABELS = {
    "compute_pflops": "Training compute [PFLOPs]",
    "hours": "Training time [GPU-hours]",
    "atoms_seen": "Training atoms seen D",
    "step": "Optimizer step",
}
D_LABEL = "Training atoms seen D"
N_LABEL = "Parameters N"
SIZE_CMAP = "viridis"

#: tick multipliers per decade, densest first; thinned until labels do not overlap
_SUBS = ((1, 2, 3, 5), (1, 2, 5), (1, 3), (1,))


def apply_style() -> None:
    """Seaborn paper theme, colour-blind palette, embedded TrueType fonts, no top/right spines."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update(
        {
            "pdf.fonttype": 42,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )


def colors(keys: Sequence[str]) -> dict[str, tuple]:
    """One colour-blind-safe colour per key, in order."""
    pal = sns.color_palette("colorblind", max(len(keys), 1))
    return {k: pal[i % len(pal)] for i, k in enumerate(keys)}


class LogTickFormatter(Formatter):
    """Tick labels of a log axis: plain (``0.02``, ``300``) or ``m x 10^e``, one style per axis.

    Parameters
    ----------
    plain : bool
        Plain decimal numbers (the axis lies in [1e-3, 1e4)); else mathtext powers.
    """

    def __init__(self, plain: bool):
        self.plain = plain

    def __call__(self, v: float, pos=None) -> str:
        if v <= 0 or not math.isfinite(v):
            return ""
        if self.plain:
            return np.format_float_positional(
                v, precision=3, unique=True, fractional=False, trim="-"
            )
        e = int(math.floor(math.log10(v) + 1e-9))
        m = v / 10**e
        if math.isclose(m, 1.0, rel_tol=1e-6):
            return rf"$10^{{{e}}}$"
        return rf"${m:.2g}\times10^{{{e}}}$"


def _ticks(lo: float, hi: float, subs: Sequence[float], step: int = 1) -> list[float]:
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    out = [s * 10.0**e for e in range(e0, e1 + 1) if (e - e0) % step == 0 for s in subs]
    return [t for t in out if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]


def _tick_options(lo: float, hi: float):
    """Candidate tick lists from dense to sparse, each with at least two ticks when possible."""
    options = [_ticks(lo, hi, subs) for subs in _SUBS]
    options += [_ticks(lo, hi, (1,), step) for step in (2, 3, 5, 10)]
    options = [t for t in options if len(t) <= 9]
    good = [t for t in options if len(t) >= 2]
    if good:
        return good
    # a short axis (less than a factor ~2): round linear steps inside it
    short = []
    for nbins in (5, 4, 3, 2):
        ticks = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        ticks = [float(t) for t in ticks if lo <= t <= hi and t > 0]
        if len(ticks) >= 2:
            short.append(ticks)
    return short or [[float(f"{math.sqrt(lo * hi):.2g}")]]


def format_number(v: float) -> str:
    """A number as tick labels show it: plain in [1e-3, 1e4), else ``m x 10^e`` (mathtext)."""
    return LogTickFormatter(plain=1e-3 <= abs(v) < 1e4)(v)


def _overlap(labels) -> bool:
    boxes = [t.get_window_extent().padded(2.0) for t in labels if t.get_visible() and t.get_text()]
    for a, b in zip(boxes, boxes[1:], strict=False):
        if a.overlaps(b):
            return True
    return False


def format_log_axis(ax, which: str) -> None:
    """Ticks and labels of ``ax``'s ``which`` ("x" or "y") axis when it is logarithmic."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    if axis.get_scale() != "log":
        return
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    if not (lo > 0 and math.isfinite(hi)):
        return
    for ticks in _tick_options(lo, hi):
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(LogTickFormatter(plain=1e-3 <= min(ticks) and max(ticks) < 1e4))
        axis.set_minor_formatter(NullFormatter())
        ax.figure.canvas.draw()
        labels = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
        if not _overlap(
            sorted(
                labels,
                key=lambda t: (
                    t.get_window_extent().x0 if which == "x" else t.get_window_extent().y0
                ),
            )
        ):
            return


def legend_outside(ax, **kw) -> None:
    """Legend to the right of ``ax``, outside the data (only when it has labelled artists)."""
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
            fontsize=kw.pop("fontsize", 7),
            **kw,
        )


def legend_below(fig, axes, **kw) -> None:
    """One legend under the figure collecting the labelled artists of ``axes`` (no repeats)."""
    entries: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(lab, h)
    if entries:
        fig.legend(
            list(entries.values()),
            list(entries),
            loc="outside lower center",
            ncol=kw.pop("ncol", min(3, len(entries))),
            fontsize=kw.pop("fontsize", 7),
            **kw,
        )


def save(fig, out_path: str | Path) -> Path:
    """Format every log axis (:func:`format_log_axis`), write ``out_path`` (PDF), close."""
    fig.canvas.draw()  # settle limits and layout
    for _ in range(2):  # the layout moves once labels change: check again at the new size
        for ax in fig.axes:
            format_log_axis(ax, "x")
            format_log_axis(ax, "y")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote %s", out)
    return out
