"""Every figure function writes a non-empty PDF from small synthetic results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import plots
from pipeline.scaling import kappa_table, load_curves, pareto_frontier, sum_law_points
from pipeline.scaling.fits import _jsonable, fit_arch
from pipeline.scaling.frontier import add_compute
from pipeline.scaling.synthetic import write_synthetic_runs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots")
    out = {"ff": {}, "fh": {}, "pts": {}, "fits": {}, "curves": []}
    for i, (arch, alpha, beta, kappa) in enumerate(
        (("mpnn", 0.28, 0.31, 2.0), ("esen", 0.8, 0.75, 40.0))
    ):
        dirs = write_synthetic_runs(
            root,
            arch,
            n_params=(1e5, 1e6, 1e7),
            fractions=(0.1, 1.0),
            A=10**1.4 * (1 + 50 * i),
            B=10**2.2 * (1 + 500 * i),
            alpha=alpha,
            beta=beta,
            d_max=1e9,
            n_evals=8,
            seed=i,
        )
        c = load_curves(dirs)
        out["curves"].append(add_compute(c, kappa))
        out["ff"][arch] = pareto_frontier(c, kappa, "flops")
        out["fh"][arch] = pareto_frontier(c, kappa, "hours")
        out["pts"][arch] = sum_law_points(c)
        out["fits"][arch] = json.loads(json.dumps(_jsonable(fit_arch(c, kappa, n_boot=20))))
    out["curves"] = pd.concat(out["curves"], ignore_index=True)
    return out


def _is_pdf(path):
    data = path.read_bytes()
    return data.startswith(b"%PDF") and len(data) > 2000


def test_fig1(results, tmp_path):
    p = plots.plot_fig1(results["ff"], results["fh"], results["fits"], tmp_path / "fig1.pdf")
    assert _is_pdf(p)


def test_fig2(tmp_path):
    rows = [
        {
            "arch": a,
            "width": 1,
            "n_params": n,
            "atoms": d,
            "flops_total": k * n * d,
            "flops_counted": 0.7 * k * n * d,
        }
        for a, k in (("mpnn", 2.0), ("esen", 40.0))
        for n in (1e5, 1e6)
        for d in (1e3, 1e4)
    ]
    pts = pd.DataFrame(rows)
    assert _is_pdf(plots.plot_fig2(pts, kappa_table(pts), tmp_path / "fig2.pdf"))


def test_fig3(results, tmp_path):
    p = plots.plot_fig3(results["curves"], results["ff"], results["fh"], tmp_path / "fig3.pdf")
    assert _is_pdf(p)


def test_fig5(results, tmp_path):
    assert _is_pdf(plots.plot_fig5(results["pts"], results["fits"], tmp_path / "fig5.pdf"))


def test_fig6(results, tmp_path):
    p = plots.plot_fig6(results["fits"], tmp_path / "sub" / "fig6.pdf")
    assert _is_pdf(p)
    assert np.isfinite(results["fits"]["esen"]["eq7"]["gamma_c"])
