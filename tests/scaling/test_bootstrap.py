"""The bootstrap resamples training passes; frontier and eq. 5 points re-extracted per resample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.scaling import fit_arch, load_curves, pareto_frontier
from pipeline.scaling.fit import bootstrap_weights
from pipeline.scaling.frontier import (
    add_compute,
    frontier_candidates,
    resampled_frontier_weights,
    run_identity,
)
from pipeline.scaling.synthetic import (
    coverage_replicate,
    coverage_table,
    design_frontier_slope,
    study_design,
    study_truth,
    write_synthetic_runs,
    write_synthetic_study,
)


def test_run_identity_reads_meta_and_falls_back():
    meta = {"arch": "mpnn", "width": 32, "fraction": 0.25, "variant": "base"}
    assert run_identity(meta) == (0, "base/mpnn/w32/f0.25/seed0")
    shared = {**meta, "shared_run_fractions": [0.25, 1.0], "train": {"seed": 3}}
    assert run_identity(shared) == (3, "base/mpnn/w32/seed3")
    given = {**meta, "seed": 1, "run_id": "base/mpnn/w32/seed1"}
    assert run_identity(given) == (1, "base/mpnn/w32/seed1")


def test_shared_pass_folders_share_one_run_id(tmp_path):
    dirs = write_synthetic_study(
        tmp_path, layout="shared", n_params=(1e4, 1e5), fractions=(0.5, 1.0), seeds=(0, 1),
        seed_widths=(1e5,),
    )  # fmt: skip
    curves = load_curves(dirs)
    assert len(dirs) == 6  # 2 widths x 2 fractions for seed 0, 1 width x 2 for seed 1
    assert curves.groupby("run_id")["run"].nunique().tolist() == [2, 2, 2]
    assert sorted(curves["seed"].unique()) == [0, 1]
    meta = json.loads((dirs[0] / "meta.json").read_text())
    assert meta["run_id"].endswith("/seed0") and meta["shared_run_fractions"] == [0.5, 1.0]


def test_run_weights_move_whole_passes_together():
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    w = bootstrap_weights(groups, 6, 200, seed=0, unit="run")
    # every point of a pass has the pass's multiplicity; each resample draws 3 passes
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 4] == w[:, 5])
    assert np.all(w[:, [0, 3, 4]].sum(axis=1) == 3)
    pts = bootstrap_weights(groups, 6, 200, seed=0, unit="point")
    assert np.all(pts.sum(axis=1) == 6) and np.any(pts[:, 0] != pts[:, 1])


def test_resampled_frontier_of_all_passes_is_the_pareto_frontier(tmp_path):
    dirs = write_synthetic_study(tmp_path, layout="separate", n_params=(1e4, 1e5, 1e6),
                                 fractions=(0.3, 1.0), random_state=4)  # fmt: skip
    curves = load_curves(dirs)
    cand = frontier_candidates(curves, 2.0, "flops")
    ids = np.unique(cand["run_id"])
    codes = np.searchsorted(ids, cand["run_id"])
    w = resampled_frontier_weights(
        cand["compute_pflops"].to_numpy(), cand["val_loss"].to_numpy(), codes,
        np.ones((1, ids.size), dtype=int),
    )[0]  # fmt: skip
    front = pareto_frontier(curves, 2.0, "flops")
    assert np.count_nonzero(w) == len(front)
    np.testing.assert_allclose(
        np.sort(cand["compute_pflops"].to_numpy()[w > 0]), np.sort(front["compute_pflops"])
    )
    # dropping the pass of the frontier's first point puts other rows on the frontier
    first = np.searchsorted(ids, front["run_id"].iloc[0])
    counts = np.ones((1, ids.size), dtype=int)
    counts[0, first] = 0
    w2 = resampled_frontier_weights(
        cand["compute_pflops"].to_numpy(), cand["val_loss"].to_numpy(), codes, counts
    )[0]
    assert np.all(w2[codes == first] == 0) and np.count_nonzero(w2) > 0


def test_measured_compute_uses_meta_flops_and_passes(tmp_path):
    dirs = write_synthetic_study(tmp_path, n_params=(1e4, 1e5), fractions=(1.0,), kappa=3.0)
    curves = load_curves(dirs)
    measured = add_compute(curves, None, compute="measured", flops="total")
    by_kappa = add_compute(curves, 3.0)
    np.testing.assert_allclose(measured["compute_pflops"], by_kappa["compute_pflops"])
    counted = add_compute(curves, None, compute="measured", flops="counted")
    np.testing.assert_allclose(counted["compute_pflops"], 0.8 * by_kappa["compute_pflops"])
    curves["forward_passes_per_step"] = 3
    tripled = add_compute(curves, None, compute="measured")  # default: counted FLOPs
    np.testing.assert_allclose(tripled["compute_pflops"], 3 * 0.8 * by_kappa["compute_pflops"])


def test_measured_compute_without_meta_flops_names_the_run(tmp_path):
    dirs = write_synthetic_study(tmp_path, n_params=(1e4, 1e5), fractions=(1.0,))
    meta = json.loads((dirs[0] / "meta.json").read_text())
    del meta["forward_flops_per_atom_counted"]
    (dirs[0] / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="forward_flops_per_atom_counted.*set fit.compute: kappa"):
        add_compute(load_curves(dirs), None, compute="measured")


def test_kappa_misstating_measured_compute_is_recorded(tmp_path, caplog):
    dirs = write_synthetic_runs(tmp_path, "s", n_params=(2e4, 6e4, 2e5), noise=0.01, n_evals=8)
    fit = fit_arch(
        load_curves(dirs), 2.5, n_boot=0, compute="measured", flops="total", full_top_k=20
    )
    # meta says 2.0 N FLOPs per atom; kappa 2.5 overstates every run's compute by 25 %
    assert fit["compute_check"]["n_runs_over_10pct"] == 15
    assert fit["compute_check"]["max_rel_diff"] == pytest.approx(0.25)
    assert "misstates the measured compute of 15 run(s)" in caplog.text


def test_ema_and_settings_recorded(tmp_path):
    dirs = write_synthetic_study(tmp_path, n_params=(2e4, 2e5, 2e6), fractions=(0.3, 1.0),
                                 seeds=(0, 1))  # fmt: skip
    fit = fit_arch(load_curves(dirs), 2.0, n_boot=20, ema=0.9, compute="measured",
                   full_top_k=20, extrapolation=False)  # fmt: skip
    assert fit["ema"] == 0.9 and fit["compute"] == "measured" and fit["flops"] == "counted"
    assert fit["seeds"] == [0, 1] and fit["n_runs"] == 6 and fit["n_run_folders"] == 12
    assert fit["bootstrap_unit"] == "run"
    assert fit["eq5_free"]["bootstrap_unit"] == "run"
    assert fit["eq5_free"]["n_bootstrap_units"] == 6
    assert "whole training passes" in fit["eq4_flops"]["interval"]


def test_run_bootstrap_covers_where_point_bootstrap_is_too_narrow(tmp_path):
    """Fast simulation study: shared passes with a 3 % per-pass offset and AR(1) noise.

    A small ladder (4 widths x 3 fractions), 6 replicates. With a true coverage of
    0.95, at least 4 of 6 intervals hold the truth with probability 0.998 (binomial);
    the seeds are fixed, so the test is deterministic.
    """
    rows = []
    for rep in range(6):
        rows += coverage_replicate(
            tmp_path, "shared", ["run", "point"], rep, n_boot=50, full_top_k=20,
            n_params=(2e4, 2e5, 2e6, 6e6), fractions=(0.1, 0.3, 1.0), n_evals=10,
        )  # fmt: skip
    table = coverage_table(rows).set_index(["unit", "param"])
    for param in ("alpha", "beta", "gamma_c"):
        assert table.loc[("run", param), "coverage"] >= 4 / 6, param
    # the run intervals are wider than the point ones: the passes' noise is shared
    assert (
        table.loc[("run", "alpha"), "median_width"] > table.loc[("point", "alpha"), "median_width"]
    )


# the default study's MC-EGNN design and fitted law (five rungs, a second seed at two)
EGNN_DESIGN = {
    "n_params": (834, 1951, 5863, 14069, 43974),
    "fractions": (0.25, 0.5, 1.0),
    "seeds": (0, 1),
    "seed_widths": (1951, 43974),
    "d_max": 4e5,
    "n_evals": 24,
}
EGNN_TRUTH = {"E": 0.0, "A": 2895.0, "B": 48.7, "alpha": 1.26, "beta": 0.376}


def test_frontier_slope_of_a_discrete_ladder_approaches_gamma_c_as_the_ladder_fills(tmp_path):
    t = {"E": 0.0, "A": 40.0, "B": 91.0, "alpha": 0.40, "beta": 0.35}
    gamma_c = 0.4 * 0.35 / 0.75
    common = {"layout": "shared", "fractions": (0.25, 0.5, 1.0), "d_max": 5e7, "n_evals": 40}
    sparse = design_frontier_slope(tmp_path / "sparse", t, {**common, "n_params": (2e4, 2e6)})
    dense = design_frontier_slope(
        tmp_path / "dense", t, {**common, "n_params": np.geomspace(2e4, 2e6, 9).round()}
    )
    assert abs(dense - gamma_c) < abs(sparse - gamma_c)
    assert dense == pytest.approx(gamma_c, abs=0.01)
    # with an irreducible loss the frontier bends: its slope is no longer gamma_c
    bent = design_frontier_slope(
        tmp_path / "bent", {**t, "E": 0.5}, {**common, "n_params": (2e4, 2e6)}
    )
    assert bent < gamma_c - 0.05


def test_eq4_interval_covers_the_ladders_slope_which_sits_below_gamma_c(tmp_path):
    """On the MC-EGNN's five rungs the frontier slope is below gamma_c even without noise.

    Eq. 4's percentile interval covers that slope (what the frontier fit estimates);
    its misses of gamma_c are the ladder's bias (the simulation study: 98 and 75 of
    100). 6 replicates, fixed seeds.
    """
    gamma_c = EGNN_TRUTH["alpha"] * EGNN_TRUTH["beta"] / (EGNN_TRUTH["alpha"] + EGNN_TRUTH["beta"])
    slope = design_frontier_slope(
        tmp_path / "clean", EGNN_TRUTH, {"layout": "shared", **EGNN_DESIGN}
    )
    assert slope < gamma_c - 0.005
    rows = []
    for rep in range(6):
        rows += coverage_replicate(
            tmp_path, "shared", ["run"], rep, n_boot=60, full_top_k=20, truth=EGNN_TRUTH,
            run_offset=0.022, **EGNN_DESIGN,
        )  # fmt: skip
    assert rows[0]["gamma_eq4_design_true"] == pytest.approx(slope)
    cov = coverage_table(rows).set_index("param")["coverage"]
    assert cov["gamma_eq4_design"] >= 5 / 6
    assert cov["gamma_eq4"] < cov["gamma_eq4_design"]


@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_study_design_reads_back_the_design_a_study_was_written_with(tmp_path, layout):
    design = {"n_params": [1000, 5000, 30000], "fractions": [0.25, 0.5, 1.0],
              "seeds": [0, 3], "seed_widths": [1000, 30000], "layout": layout,
              "d_max": 4e5, "n_evals": 9}  # fmt: skip
    dirs = write_synthetic_study(tmp_path, **design)
    got = study_design(load_curves(dirs))
    assert {k: got[k] for k in ("n_params", "fractions", "seeds", "seed_widths", "layout")} == {
        k: design[k] for k in ("n_params", "fractions", "seeds", "seed_widths", "layout")
    }
    assert got["d_max"] == pytest.approx(4e5, rel=1e-5)
    one_seed = study_design(load_curves([d for d in dirs if d.name == "seed0"]))
    assert one_seed["seeds"] == [0] and one_seed["seed_widths"] is None


def test_study_truth_takes_table_1s_fit_and_the_measured_noise():
    s5 = {"E": 0.0, "A": 80.0, "B": 30.0, "alpha": 0.6, "beta": 0.3, "rss_log": 0.04,
          "n_points": 25}  # fmt: skip
    fit = {"eq5_used": "e_zero", "eq5_e_zero": s5, "eq5_free": {**s5, "alpha": 9.0},
           "seed_spread": {"sd_log": None}}  # fmt: skip
    truth = study_truth(fit)
    assert truth["alpha"] == 0.6 and truth["run_offset"] == pytest.approx(0.04)  # rms log
    # the larger of seed spread and residual: the residual holds the law's misfit too
    fit["seed_spread"] = {"sd_log": 0.02}
    assert study_truth(fit)["run_offset"] == pytest.approx(0.04)
    fit["seed_spread"] = {"sd_log": 0.07}
    assert study_truth(fit)["run_offset"] == 0.07
