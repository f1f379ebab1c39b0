"""fit_arch, fit JSON, Tables 1 and 7, allocation and its command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.scaling import allocation, compute_optimal, table1, table7
from pipeline.scaling.allocate import main as allocate_main
from pipeline.scaling.fits import write_fit
from pipeline.scaling.synthetic import write_synthetic_runs
from pipeline.scaling.tables import read_fits, write_tables

TRUTH = {"A": 10**2.109, "B": 10**3.261, "alpha": 0.524, "beta": 0.499}
KAPPA = 12.0


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = write_synthetic_runs(
        root,
        "gemnet",
        n_params=(3e5, 1e6, 3e6, 1e7),
        fractions=(0.01, 0.1, 0.3, 1.0),
        d_max=3e9,
        noise=0.01,
        n_evals=12,
        seed=3,
        **TRUTH,
    )
    out = root / "fits" / "gemnet.json"
    write_fit(dirs, KAPPA, out, n_boot=60, seed=0)
    return out


def test_fit_json_contents(fit_json):
    fit = json.loads(fit_json.read_text())  # valid JSON (no NaN tokens)
    for key in ("eq4_flops", "eq4_hours", "eq5_free", "eq5_e_zero", "eq7", "extrapolation"):
        assert key in fit
    # the truth has E = 0: AICc does not prefer the free fit by the margin
    assert fit["eq5_used"] == "e_zero"
    assert fit["e_mode_decision"]["delta_aicc"] <= fit["e_mode_decision"]["margin"]
    assert fit["bootstrap_unit"] == "run" and fit["seeds"] == [0]
    assert fit["eq7"]["identified"] and fit["eq4_flops"]["identified"]
    assert fit["eq5_e_zero"]["interval_includes_e_mode_choice"]
    assert 0 <= fit["e_mode_decision"]["share_resamples_free"] <= 1
    assert fit["eq5_free"]["d_span_decades"] == pytest.approx(2.0)
    assert fit["eq5_free"]["alpha"] == pytest.approx(TRUTH["alpha"], abs=0.05)
    assert fit["eq5_free"]["beta"] == pytest.approx(TRUTH["beta"], abs=0.05)
    # the compute-optimal frontier exponent of the data's frontier and of eq. 7 agree
    g_true = TRUTH["alpha"] * TRUTH["beta"] / (TRUTH["alpha"] + TRUTH["beta"])
    assert fit["eq7"]["gamma_c"] == pytest.approx(g_true, abs=0.02)
    assert fit["eq4_flops"]["gamma"] == pytest.approx(g_true, abs=0.03)
    lo, hi = fit["eq7"]["ci"]["gamma_c"]
    assert lo <= fit["eq7"]["gamma_c"] <= hi
    ex = fit["extrapolation"]
    assert ex["eq5"]["held_out"].startswith("all runs of the largest model")
    assert len(ex["eq5"]["points"]) == 4
    for p in ex["eq5"]["points"] + ex["eq4_flops"]["points"]:
        assert p["predicted"] > 0 and p["observed"] > 0
    # held-out largest model is predicted to within 10 % on this clean synthetic law
    assert max(abs(p["rel_error"]) for p in ex["eq5"]["points"]) < 0.1


def test_tables_are_consistent(fit_json):
    fits = read_fits([fit_json])
    t1 = table1(fits)
    assert list(t1.columns)[:10] == [
        "arch",
        "param",
        "eq4",
        "eq4_lo",
        "eq4_hi",
        "eq7",
        "eq7_lo",
        "eq7_hi",
        "eq5_fit",
        "note",
    ]
    assert {"e_mode_note", "seeds", "n_runs", "bootstrap_unit", "compute"} <= set(t1.columns)
    assert t1["note"].tolist() == ["", ""] and t1["eq7_identified"].all()
    assert t1["e_mode_note"].iloc[0].startswith("auto: free fit does not beat E = 0")
    assert t1["param"].tolist() == ["F_c", "gamma_c"]
    t7 = table7(fits)
    row = t7.iloc[0]
    co = compute_optimal(
        10 ** row["log10_A"], 10 ** row["log10_B"], row["alpha"], row["beta"], KAPPA
    )
    assert t1.set_index("param").loc["F_c", "eq7"] == pytest.approx(co["F_c"], rel=1e-9)
    assert t1.set_index("param").loc["gamma_c", "eq7"] == pytest.approx(co["gamma_c"], rel=1e-9)
    for name in ("log10_A", "log10_B", "alpha", "beta"):
        assert row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"]


def test_allocation_and_cli(fit_json, tmp_path, capsys):
    fits = read_fits([fit_json])
    al = allocation(fits, [1.0, 1e3])
    assert al["budget_pflops"].tolist() == [1.0, 1e3]
    for key in ("n_opt", "d_opt", "loss"):
        assert (al[f"{key}_lo"] <= al[key]).all() and (al[key] <= al[f"{key}_hi"]).all()
    # the budget is spent: 3 kappa N D = C
    np.testing.assert_allclose(3 * KAPPA * al["n_opt"] * al["d_opt"] / 1e15, al["budget_pflops"])
    out_csv = tmp_path / "alloc.csv"
    assert (
        allocate_main(["--fits", str(fit_json.parent), "--budget", "1e3", "--out", str(out_csv)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "gemnet" in printed and "N* [params]" in printed
    assert out_csv.read_text().count("\n") == 2
    write_tables([fit_json], tmp_path / "t1.csv", tmp_path / "t7.csv", tmp_path / "a.csv")
    assert (tmp_path / "t7.csv").read_text().startswith("arch,eq5_fit,log10_A")


def test_allocation_rejects_bad_budget(fit_json):
    with pytest.raises(ValueError, match="budgets must be finite and > 0"):
        allocation(read_fits([fit_json]), [0.0])


def test_fit_arch_rejects_mixed_archs(tmp_path):
    from pipeline.scaling import fit_arch, load_curves

    a = write_synthetic_runs(tmp_path, "a", n_params=(1e5, 1e6), fractions=(0.5, 1.0))
    b = write_synthetic_runs(tmp_path, "b", n_params=(1e5, 1e6), fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="2 \\(arch, variant\\) groups"):
        fit_arch(load_curves(a + b), 2.0, n_boot=0)


def test_eq7_without_positive_exponents_is_a_clear_error():
    from pipeline.scaling.fits import eq7_with_intervals

    flat = {"A": 1.0, "B": 1.0, "alpha": -0.03, "beta": 0.1, "samples": {}}
    with pytest.raises(ValueError, match="mpnn: eq. 5 fit .*alpha = -0.03.* no compute-optimal"):
        eq7_with_intervals(flat, 2.0, "mpnn")


def test_runs_without_a_compute_optimal_law_are_reported_not_fatal(tmp_path):
    """Loss growing with N (alpha < 0) is a result: table 1 shows NaN and the reason."""
    dirs = write_synthetic_runs(
        tmp_path, "flat", n_params=(1e4, 3e4, 1e5), fractions=(0.25, 0.5, 1.0),
        d_max=1e5, A=1e-3, alpha=-0.3, B=10**1.5, beta=0.4, noise=0.005, n_evals=8, seed=2,
    )  # fmt: skip
    out = tmp_path / "flat.json"
    write_fit(dirs, KAPPA, out, n_boot=30, seed=0)
    fits = read_fits([out])
    assert "no compute-optimal" in fits["flat"]["eq7"]["error"]
    row = table1(fits).set_index("param").loc["gamma_c"]
    assert np.isnan(row["eq7"]) and np.isfinite(row["eq4"])
    assert "no compute-optimal" in row["note"]
    alloc = allocation(fits, [1.0])
    assert alloc["note"].iloc[0].startswith("not identified (") and np.isnan(alloc["n_opt"][0])


def test_an_eq5_fit_that_runs_away_is_reported_not_fatal(tmp_path, monkeypatch):
    """A family whose free eq. 5 fit runs away keeps its row: E = 0 is used, and a
    study where both eq. 5 fits fail still writes Table 1 with the reason."""
    from pipeline.scaling import fits as fits_module

    dirs = write_synthetic_runs(
        tmp_path, "away", n_params=(1e4, 3e4, 1e5), fractions=(0.25, 0.5, 1.0),
        d_max=1e6, noise=0.005, n_evals=8, seed=2, **TRUTH,
    )  # fmt: skip
    real = fits_module.fit_sum_law
    fail_free = {"free": True, "e_zero": False}

    def runaway(*args, fix_e_zero=False, **kwargs):
        if fail_free["e_zero" if fix_e_zero else "free"]:
            raise ValueError("away: eq. 5 fit: the best fit runs away (log-space parameters)")
        return real(*args, fix_e_zero=fix_e_zero, **kwargs)

    monkeypatch.setattr(fits_module, "fit_sum_law", runaway)
    out = tmp_path / "away.json"
    write_fit(dirs, KAPPA, out, n_boot=20, seed=0, extrapolation=False)
    fit = read_fits([out])["away"]
    assert fit["eq5_used"] == "e_zero" and "runs away" in fit["eq5_free"]["fit_error"]
    assert not fit["eq5_free"]["identified"]

    fail_free["e_zero"] = True
    write_fit(dirs, KAPPA, out, n_boot=20, seed=0, extrapolation=False)
    fit = read_fits([out])["away"]
    row = table1({"away": fit}).set_index("param").loc["gamma_c"]
    assert np.isnan(row["eq7"]) and np.isfinite(row["eq4"])
    assert "runs away" in row["note"]
