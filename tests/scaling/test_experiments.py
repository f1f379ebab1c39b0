"""Analyses of the experiment figures: exact helpers, fits that use config['fit']."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.scaling import experiments as ex
from pipeline.scaling import load_curves
from pipeline.scaling.frontier import pareto_frontier, sum_law_points
from pipeline.scaling.synthetic import (
    COVERAGE_LAYOUTS,
    write_synthetic_runs,
    write_synthetic_study,
)

FIT = {"n_boot": 8, "seed": 0, "skip_fraction": 0.1, "compute": "kappa"}


def _runs(root, arch, *, alpha=0.3, beta=0.3, A=10**1.4, B=10**2.2, seed=0, n=(1e4, 1e5, 1e6)):
    return write_synthetic_runs(
        root,
        arch,
        n_params=n,
        fractions=(0.2, 1.0),
        A=A,
        B=B,
        alpha=alpha,
        beta=beta,
        d_max=1e8,
        n_evals=10,
        seed=seed,
    )


def _with_meta(dirs, **fields):
    for i, rd in enumerate(dirs):
        meta = json.loads((rd / "meta.json").read_text())
        for k, v in fields.items():
            meta[k] = v(i) if callable(v) else v
        (rd / "meta.json").write_text(json.dumps(meta))
    return dirs


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    return load_curves(_runs(root, "esen", alpha=0.8, beta=0.75, A=10**3.7, B=10**5, seed=2))


def test_load_runs_with_meta_and_final_losses(tmp_path):
    dirs = _runs(tmp_path, "mpnn")
    hp = {"vector_channels": 2, "radial": "g"}
    _with_meta(
        dirs,
        lr=lambda i: 1e-3 * (i + 1),
        batch_size=lambda i: 16 * (1 + i % 2),
        hparams=lambda i: {"num_layers": 3 + i, **hp},
    )
    curves = ex.load_runs_with_meta(dirs)
    assert len(curves) == len(load_curves(dirs))
    last = ex.final_losses(curves)
    assert len(last) == len(dirs)
    for i, rd in enumerate(dirs):
        row = last[last["run"] == str(rd)].iloc[0]
        assert row["val_loss"] == pytest.approx(pd.read_csv(rd / "curve.csv")["val_loss"].iloc[-1])
        assert row["lr"] == pytest.approx(1e-3 * (i + 1))
        assert row["batch_size"] == 16 * (1 + i % 2) and row["depth"] == 3 + i
        assert row["hp_radial"] == "g"
    assert np.isnan(last["lmax"]).all()


def test_load_runs_with_meta_names_bad_meta(tmp_path):
    dirs = _runs(tmp_path, "mpnn", n=(1e4,))
    with pytest.raises(ValueError, match=r"meta.json: missing key\(s\) \['lr', 'batch_size'\]"):
        ex.load_runs_with_meta(dirs)
    _with_meta(dirs, lr=1e-3, batch_size=8, hparams={"num_layers": "five"})
    with pytest.raises(ValueError, match=r"hparams.num_layers must be a number"):
        ex.load_runs_with_meta(dirs)


def test_frontier_fit_recovers_gamma_and_scales_compute(fast):
    fr, fit = ex.frontier_fit(fast, 10.0, fit=FIT, label="fast")
    ref = pareto_frontier(fast.assign(variant="x"), 10.0)
    np.testing.assert_allclose(fr["compute_pflops"], ref["compute_pflops"])
    assert fit is not None and 0.2 < fit["gamma"] < 0.8
    assert "identified" in fit and len(fit["samples"]["gamma"]) == FIT["n_boot"]
    fr6, fit6 = ex.frontier_fit(fast, 10.0, fit=FIT, n_boot=0, compute_factor=6.0)
    np.testing.assert_allclose(fr6["compute_pflops"], 6 * fr["compute_pflops"])
    # a rightward shift by 6x leaves gamma unchanged and scales F by 6**gamma
    assert fit6["gamma"] == pytest.approx(fit["gamma"], rel=1e-4)
    assert fit6["F"] == pytest.approx(fit["F"] * 6 ** fit["gamma"], rel=1e-3)


def test_frontier_fit_takes_its_settings_from_config_fit(fast):
    """skip_fraction and n_boot come from the fit mapping (one source of fit settings)."""
    fr_a, fit_a = ex.frontier_fit(fast, 10.0, fit={**FIT, "skip_fraction": 0.0, "n_boot": 4})
    fr_b, _ = ex.frontier_fit(fast, 10.0, fit={**FIT, "skip_fraction": 0.5, "n_boot": 0})
    assert fr_a["atoms_seen"].min() < fr_b["atoms_seen"].min()
    assert len(fit_a["samples"]["gamma"]) == 4
    # measured compute: each run's own FLOPs per atom, whatever kappa says
    measured = fast.assign(
        forward_flops_per_atom_total=3.0 * fast["n_params"],
        forward_flops_per_atom_counted=3.0 * fast["n_params"],
        forward_passes_per_step=1,
    )
    fr_m, _ = ex.frontier_fit(
        measured, 99.0, fit={**FIT, "compute": "measured", "n_boot": 0}, kappa_config={}
    )
    fr_k, _ = ex.frontier_fit(measured, 1.0, fit={**FIT, "n_boot": 0})
    np.testing.assert_allclose(fr_m["compute_pflops"], 3 * fr_k["compute_pflops"])


def test_sum_law_fit_respects_e_mode(fast):
    pts = sum_law_points(fast)
    f0 = ex.sum_law_fit(pts, fit={**FIT, "e_mode": "e_zero"}, label="x")
    assert f0["eq5_fit"] == "e_zero" and f0["E"] == 0.0
    ff = ex.sum_law_fit(pts, fit={**FIT, "e_mode": "free"}, label="x")
    assert ff["eq5_fit"] == "free" and "identified" in ff


def test_sum_law_fit_applies_the_tests_on_runs_like_the_fit_stage(tmp_path):
    """Figs. 7 and others: widths that do not separate are not identified there either."""
    kind, seeds, design = COVERAGE_LAYOUTS["separate_2seeds"]
    flat = write_synthetic_study(tmp_path, layout=kind, seeds=seeds, **design, A=1e-3)
    fit = ex.sum_law_fit(sum_law_points(load_curves(flat)), fit={**FIT, "n_boot": 20})
    assert not fit["width_separation"]["separated"] and not fit["identified"]
    assert "widths do not separate" in fit["not_identified_reason"]
    assert fit["rung_jackknife"]["checked"]


def test_trend_break_finds_the_departure():
    x = np.geomspace(1e-3, 1e3, 25)
    y = 0.9 * x**-0.15
    y[x > 10] *= (x[x > 10] / 10) ** 0.2  # loss stops falling: overfitting
    tb = ex.trend_break(pd.DataFrame({"compute_pflops": x, "val_loss": y, "epoch": np.arange(25)}))
    assert tb["fit"]["gamma"] == pytest.approx(0.15, rel=1e-3)
    assert 10 < tb["break_x"] < 100
    assert tb["break_epoch"] == int(np.flatnonzero(x == tb["break_x"])[0])
    clean = ex.trend_break(pd.DataFrame({"compute_pflops": x, "val_loss": 0.9 * x**-0.15}))
    assert clean["break_x"] is None


def test_estimate_floor_recovers_offset():
    n = np.geomspace(1e4, 1e7, 8)
    groups = [(n, 0.2 + 30 * n**-0.4), (n, 0.2 + 25 * n**-0.4)]
    assert ex.estimate_floor(groups) == pytest.approx(0.2, rel=1e-3)
    assert ex.estimate_floor([(n[:2], 1 + n[:2] ** -0.4)]) == 0.0


def _tta():
    n = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
    return pd.DataFrame(
        [
            {
                "arch": "mpnn",
                "width": int(w),
                "n_params": w,
                "num_rotations": m,
                "val_loss": 0.22 + 30 * w**-0.4 * (1 - 0.05 * (1 - 1 / m)),
            }
            for w in n
            for m in (1, 2, 4, 8, 16)
        ]
    )


def test_group_average_analysis():
    res = ex.group_average_analysis(_tta(), fit=FIT)
    assert res["how"] == "estimated" and res["m_ga"] == 16
    assert 0.15 < res["L_D"] < 0.23
    for arm in res["arms"].values():
        assert arm["fit"] is not None and 0.3 < arm["fit"]["gamma"] < 0.5
    given = ex.group_average_analysis(_tta(), 0.2, fit={**FIT, "n_boot": 0})
    assert given["how"] == "given" and given["L_D"] == 0.2
    with pytest.raises(ValueError, match="not below every"):
        ex.group_average_analysis(_tta(), 0.3, fit=FIT)
    with pytest.raises(ValueError, match="num_rotations == 1"):
        ex.group_average_analysis(_tta().query("num_rotations > 1"), fit=FIT)


def test_read_group_average_names_bad_file(tmp_path):
    _tta().to_csv(tmp_path / "a.csv", index=False)
    _tta().drop(columns="val_loss").to_csv(tmp_path / "b.csv", index=False)
    assert len(ex.read_group_average([tmp_path / "a.csv"])) == 25
    with pytest.raises(ValueError, match=r"b.csv: missing column\(s\) \['val_loss'\]"):
        ex.read_group_average([tmp_path / "a.csv", tmp_path / "b.csv"])


def test_compare_frontiers_kappa_by_label_or_arch(fast):
    by = {"A": fast, "B": fast.assign(arch="mpnn")}
    out = ex.compare_frontiers(by, {"A": 10.0, "mpnn": 20.0}, fit={**FIT, "n_boot": 0})
    np.testing.assert_allclose(out["B"][0]["compute_pflops"], 2 * out["A"][0]["compute_pflops"])
    with pytest.raises(ValueError, match="no kappa for 'B'"):
        ex.compare_frontiers(by, {"A": 10.0}, fit=FIT)
