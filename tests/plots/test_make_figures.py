"""File-to-file entry points the workflow scripts call: kappa, frontiers, fits, tables, figures."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline import plots
from pipeline.scaling.frontier import write_frontiers
from pipeline.scaling.kappa import write_kappa_table
from pipeline.scaling.report import write_fit, write_tables
from pipeline.scaling.synthetic import write_synthetic_runs


@pytest.mark.slow
def test_file_pipeline_writes_every_output(tmp_path):
    runs = write_synthetic_runs(
        tmp_path / "runs",
        "egnn",
        n_params=(1e5, 1e6, 1e7),
        fractions=(0.05, 0.3, 1.0),
        d_max=1e9,
        n_evals=8,
    )
    points = pd.DataFrame(
        [
            {
                "arch": "egnn",
                "width": w,
                "n_params": n,
                "atoms": d,
                "flops_counted": 4.0 * n * d,
                "flops_total": 6.0 * n * d,
            }
            for w, n in ((16, 1e5), (64, 1e6))
            for d in (500, 2000)
        ]
    )
    points.to_csv(tmp_path / "kappa_points.csv", index=False)
    res = tmp_path / "results"
    kappa = write_kappa_table(tmp_path / "kappa_points.csv", res / "kappa.csv")
    assert kappa.loc[0, "kappa"] == 6.0 and kappa.loc[0, "kappa_counted"] == 4.0
    ff, fh = res / "frontier" / "egnn_flops.csv", res / "frontier" / "egnn_hours.csv"
    write_frontiers(runs, res / "kappa.csv", ff, fh)
    fj = res / "fits" / "egnn.json"
    write_fit(runs, res / "kappa.csv", fj, n_boot=10)
    write_tables([fj], res / "table1.csv", res / "table7.csv", res / "allocation.csv")
    for name in ("table1.csv", "table7.csv", "allocation.csv"):
        assert len(pd.read_csv(res / name)) > 0
    figs = res / "figures"
    outs = [
        plots.make_fig1([ff], [fh], [fj], figs / "fig1.pdf"),
        plots.make_fig2(tmp_path / "kappa_points.csv", res / "kappa.csv", figs / "fig2.pdf"),
        plots.make_fig3(runs, res / "kappa.csv", [ff], [fh], figs / "fig3.pdf"),
        plots.make_fig5(runs, [fj], figs / "fig5.pdf"),
        plots.make_fig6([fj], figs / "fig6.pdf"),
    ]
    for p in outs:
        assert p.read_bytes().startswith(b"%PDF") and p.stat().st_size > 2000
