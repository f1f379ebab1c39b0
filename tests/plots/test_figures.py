"""Figure pieces: the one log-axis formatter, and "not identified" instead of an exponent."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from pipeline.plots import draw, main, style
from pipeline.scaling.frontier import load_curves, sum_law_points


@pytest.mark.parametrize(
    ("lo", "hi"),
    [(2e3, 5e3), (3e-6, 5e-6), (1e-7, 1e3), (0.4, 0.9), (4.1, 4.9), (1e-3, 2e-1), (20, 3e4)],
)
def test_log_axis_labels_never_overlap_or_mix_styles(lo, hi):
    fig, ax = plt.subplots(figsize=(2.2, 1.8))
    ax.plot([lo, hi], [lo, hi])
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi))
    fig.canvas.draw()
    for which in ("x", "y"):
        style.format_log_axis(ax, which)
    fig.canvas.draw()
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        shown = [t for t in labels if t.get_visible() and t.get_text()]
        assert len(shown) >= 1
        texts = [t.get_text() for t in shown]
        assert not any("e+" in t or "e-" in t for t in texts), texts
        # one style per axis: all plain numbers or all powers of ten
        assert len({"$" in t for t in texts}) == 1, texts
        boxes = [t.get_window_extent() for t in shown]
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                assert not boxes[a].overlaps(boxes[b]), texts
    plt.close(fig)


def test_formatter_styles():
    assert style.LogTickFormatter(plain=True)(0.02) == "0.02"
    assert style.LogTickFormatter(plain=False)(1e-6) == "$10^{-6}$"
    assert style.LogTickFormatter(plain=False)(3e-6) == r"$3\times10^{-6}$"


def test_estimate_label_says_not_identified():
    ok = {"gamma": 0.31, "ci": {"gamma": [0.25, 0.38]}, "identified": True}
    bad = {**ok, "identified": False, "not_identified_reason": "gamma interval includes 0"}
    assert draw.estimate_label("MPNN", ok, "gamma", r"\gamma") == (
        r"MPNN: $\gamma$ = 0.31 [0.25, 0.38]"
    )
    text = " ".join(draw.estimate_label("MPNN", bad, "gamma", r"\gamma").split())
    assert "not identified (gamma interval includes 0)" in text and "0.31" not in text
    assert draw.estimate_label("MPNN", None, "gamma", r"\gamma") == "MPNN (no fit)"


def test_not_identified_fit_is_not_drawn():
    bad = {
        "F": 1.0,
        "gamma": 30.0,
        "ci": {"gamma": [0.1, 50]},
        "identified": False,
        "not_identified_reason": "gamma = 30 outside the plausible range",
    }
    fig, ax = plt.subplots()
    draw.draw_power_law(ax, np.geomspace(1, 10, 5), bad, "C0", "x")
    assert all(len(line.get_xdata()) == 0 for line in ax.get_lines())  # legend entry only
    assert "not identified" in ax.get_legend_handles_labels()[1][0]
    plt.close(fig)


def test_fig5_and_6_print_not_identified(synthetic_tree, tmp_path):
    """A fit flagged not identified shows its reason in fig. 5's titles and fig. 6's legend."""
    from pipeline.scaling.tables import read_fits

    fits = read_fits(synthetic_tree.fits)
    arch = next(iter(fits))
    f = json.loads(json.dumps(fits[arch]))
    used = "eq5_free" if f["eq5_used"] == "free" else "eq5_e_zero"
    f[used].update(identified=False, not_identified_reason="widths do not separate")
    f["eq7"].update(identified=False, not_identified_reason="eq. 5 not identified")
    fits[arch] = f
    captured = []
    real_close = plt.close
    plt.close = captured.append
    try:
        dirs = [d for d in synthetic_tree.run_dirs["base"] if d.parts[-4] == arch]
        main.plot_fig5({arch: sum_law_points(load_curves(dirs))}, {arch: f}, tmp_path / "f5.pdf")
        main.plot_fig6(fits, tmp_path / "f6.pdf")
    finally:
        plt.close = real_close
    fig5, fig6 = captured[-2], captured[-1]
    titles = " ".join(" ".join(ax.get_title() for ax in fig5.axes).split())
    assert "not identified" in titles and "widths do not" in titles
    labels = " ".join(
        " ".join(t.get_text() for leg in fig6.legends for t in leg.get_texts()).split()
    )
    assert f"{arch}: not identified" in labels
    for fig in captured:
        real_close(fig)
