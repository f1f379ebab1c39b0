"""Kappa fit, learning-curve loading, Pareto frontier and (N, D, L) triplets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.scaling import fit_kappa, kappa_table, load_curves, pareto_frontier, sum_law_points
from pipeline.scaling.frontier import smooth_curves


def test_fit_kappa_recovers_slope_through_origin():
    rng = np.random.default_rng(0)
    n = np.repeat([1e5, 1e6, 1e7], 3)
    d = np.tile([1e3, 3e3, 1e4], 3)
    r = fit_kappa(n, d, 7.5 * n * d)
    assert r["kappa"] == pytest.approx(7.5, rel=1e-12)
    assert r["r2"] == pytest.approx(1.0) and r["max_rel_residual"] < 1e-12
    noisy = fit_kappa(n, d, 7.5 * n * d * np.exp(rng.normal(0, 0.02, n.size)))
    assert noisy["kappa"] == pytest.approx(7.5, rel=0.05)
    assert 0.9 < noisy["r2"] < 1.0


def test_kappa_table_separates_counted_and_total():
    rows = []
    for arch, k, frac in (("mpnn", 2.0, 0.9), ("esen", 40.0, 0.6)):
        for n in (1e5, 1e6):
            for d in (1e3, 1e4):
                rows.append(
                    {
                        "arch": arch,
                        "width": 1,
                        "n_params": n,
                        "atoms": d,
                        "flops_total": k * n * d,
                        "flops_counted": frac * k * n * d,
                    }
                )
    t = kappa_table(pd.DataFrame(rows), "total").set_index("arch")
    assert t.loc["esen", "kappa"] == pytest.approx(40.0)
    assert t.loc["esen", "kappa_counted"] == pytest.approx(24.0)
    assert t.loc["mpnn", "counted_fraction"] == pytest.approx(0.9)


def test_fit_kappa_bad_input():
    with pytest.raises(ValueError, match="esen: kappa fit: 1 row.*'flops'"):
        fit_kappa([1e5, 1e6], [1e3, 1e3], [1e9, np.nan], label="esen")
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_kappa([1e5], [1e3], [1e9])


def _write_run(root, name, n_params, rows, arch="mpnn", fraction=1.0):
    rd = root / name
    rd.mkdir(parents=True)
    cols = ["step", "atoms_seen", "val_loss"]
    df = pd.DataFrame(rows, columns=cols)
    df["epoch"] = 0
    df["molecules_seen"] = df["atoms_seen"] // 10
    df["train_seconds"] = df["atoms_seen"] * 1e-3
    df["eval_seconds"] = df["step"] * 0.5
    for c in ("val_energy_loss", "val_force_loss", "train_loss"):
        df[c] = df["val_loss"]
    df.to_csv(rd / "curve.csv", index=False)
    meta = {"arch": arch, "width": n_params, "fraction": fraction, "n_params": n_params}
    (rd / "meta.json").write_text(json.dumps(meta))
    return rd


@pytest.fixture
def two_runs(tmp_path):
    # kappa = 1e15 / 3 makes compute_pflops = N * D (in PFLOPs)
    small = _write_run(tmp_path, "small", 1, [(1, 1, 5.0), (2, 2, 3.0), (3, 4, 2.5), (4, 8, 2.4)])
    big = _write_run(tmp_path, "big", 2, [(1, 1, 4.0), (2, 2, 2.8), (3, 4, 2.0), (4, 8, 1.5)])
    return [small, big]


def test_frontier_on_hand_made_example(two_runs):
    curves = load_curves(two_runs)
    fr = pareto_frontier(curves, kappa=1e15 / 3, x="flops", warmup=0.0)
    # rows (compute, loss): small (1,5) (2,3) (4,2.5) (8,2.4); big (2,4) (4,2.8) (8,2) (16,1.5)
    # lower envelope: (1,5) (2,3) (4,2.5) (8,2) (16,1.5); big's (2,4), (4,2.8) and small's
    # (8,2.4) are dominated by a row with <= compute and lower loss
    assert fr["compute_pflops"].tolist() == [1, 2, 4, 8, 16]
    assert fr["val_loss"].tolist() == [5.0, 3.0, 2.5, 2.0, 1.5]
    assert fr["run"].str.endswith(("small", "small", "small", "big", "big")).all()
    # every frontier row: no row with <= compute has a lower loss
    c = pd.concat([curves.assign(x=curves["n_params"] * curves["atoms_seen"])])
    for _, row in fr.iterrows():
        assert not ((c["x"] <= row["compute_pflops"]) & (c["val_loss"] < row["val_loss"])).any()


def test_frontier_warmup_excludes_early_rows_per_run(two_runs):
    fr = pareto_frontier(load_curves(two_runs), kappa=1e15 / 3, x="flops", warmup=0.3)
    # rows with atoms_seen < 0.3 * 8 = 2.4 are dropped in each run
    assert fr["compute_pflops"].tolist() == [4, 8, 16]


def test_frontier_hours_axis_uses_train_plus_eval_seconds(two_runs):
    curves = load_curves(two_runs)
    expected = (curves["train_seconds"] + curves["eval_seconds"]) / 3600
    np.testing.assert_allclose(curves["hours"], expected)
    fr = pareto_frontier(curves, kappa=1.0, x="hours", warmup=0.0)
    assert fr.attrs["x"] == "hours"
    assert np.all(np.diff(fr["hours"]) >= 0) and np.all(np.diff(fr["val_loss"]) < 0)


def test_ema_smoothing_per_run(two_runs):
    curves = load_curves(two_runs)
    sm = smooth_curves(curves, 0.9)
    small = sm[sm["run"].str.endswith("small")]
    assert small["val_loss"].iloc[0] == 5.0
    assert small["val_loss"].iloc[1] == pytest.approx(0.9 * 5.0 + 0.1 * 3.0)
    assert (small["val_loss_raw"] == [5.0, 3.0, 2.5, 2.4]).all()
    big = sm[sm["run"].str.endswith("big")]
    assert big["val_loss"].iloc[0] == 4.0  # restarts per run


def test_sum_law_points_take_final_evaluation(two_runs):
    pts = sum_law_points(load_curves(two_runs)).set_index("n")
    assert pts.loc[1, "d"] == 8 and pts.loc[1, "loss"] == 2.4
    assert pts.loc[2, "d"] == 8 and pts.loc[2, "loss"] == 1.5


def test_load_curves_errors_name_the_file(tmp_path, two_runs):
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.DataFrame({"step": [1], "val_loss": [1.0]}).to_csv(bad / "curve.csv", index=False)
    meta = {"arch": "a", "width": 1, "fraction": 1, "n_params": 1}
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"bad/curve.csv: missing column\(s\) \['atoms_seen'"):
        load_curves([bad])
    with pytest.raises(ValueError, match="nothere/curve.csv: missing"):
        load_curves([tmp_path / "nothere"])


def test_load_curves_counts_dropped_nan_rows(tmp_path):
    rd = _write_run(tmp_path, "r", 1, [(1, 1, 5.0), (2, 2, float("nan")), (3, 4, 2.0)])
    curves = load_curves([rd])
    assert len(curves) == 2
    assert curves.attrs["dropped"] == {str(rd): 1}


def test_missing_kappa_for_arch_raises(two_runs):
    with pytest.raises(ValueError, match=r"no kappa for arch\(s\) \['mpnn'\]"):
        pareto_frontier(load_curves(two_runs), kappa={"esen": 3.0})
