"""kappa (eq. 3): FLOPs at two batch sizes, fitted on log residuals, misstatement flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.scaling.kappa import add_flops_per_param_atom, fit_kappa, kappa_table
from pipeline.train.kappa import measure_flop_points


def test_log_residual_fit_weighs_every_width_equally():
    # small models do 2x more FLOPs per (N x atom) than the largest: raw least squares
    # would follow the largest model, the log fit sits between them
    n = np.array([1e4, 1e5, 1e7])
    d = np.full(3, 1e3)
    f = np.array([4.0, 4.0, 2.0]) * n * d
    r = fit_kappa(n, d, f)
    assert r["kappa"] == pytest.approx(np.exp(np.mean(np.log([4.0, 4.0, 2.0]))))
    assert r["worst_rel_residual"] == pytest.approx(
        max(abs(4 / r["kappa"] - 1), abs(2 / r["kappa"] - 1))
    )
    assert 0 < r["r2_log"] < 1


def test_kappa_table_columns_mode_and_warning(caplog):
    rows = []
    for n, per in ((1e4, 3.0), (1e5, 2.0), (1e6, 2.0)):
        for molecules, atoms in ((16, 300), (64, 1200)):
            rows.append({"arch": "mpnn", "width": int(n), "n_params": n, "molecules": molecules,
                         "atoms": atoms, "flops_counted": 0.5 * per * n * atoms,
                         "flops_total": per * n * atoms})  # fmt: skip
    points = pd.DataFrame(rows)
    t = kappa_table(points, "counted").iloc[0]
    assert t["flops_mode"] == "counted"
    assert t["kappa"] == pytest.approx(t["kappa_counted"]) == pytest.approx(0.5 * t["kappa_total"])
    assert t["n_batch_sizes"] == 2 and t["n_widths"] == 3 and t["n_points"] == 6
    assert t["worst_rel_residual"] > 0.10
    assert "misstates a measured point" in caplog.text
    pts = add_flops_per_param_atom(points, "total")
    np.testing.assert_allclose(pts["flops_per_param_atom"], [3, 3, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="kappa.flops"):
        kappa_table(points, "all")


def test_flop_points_vary_the_batch(tiny_dataset):
    points = measure_flop_points(
        "mpnn", [4, 8], {"num_layers": 2}, tiny_dataset / "val.h5", num_molecules=8
    )
    assert sorted(points["molecules"].unique()) == [2, 8]
    assert len(points) == 4
    assert points.groupby("width")["atoms"].nunique().tolist() == [2, 2]
    assert np.all(points["flops_total"] >= points["flops_counted"])
    # FLOPs grow with the batch (D) at fixed N
    for _, g in points.groupby("width"):
        assert g.sort_values("atoms")["flops_counted"].is_monotonic_increasing
