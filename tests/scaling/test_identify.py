"""Identification criteria, describe_estimate, the e_mode decision and fit settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.scaling import describe_estimate, fit_arch, fit_options, load_curves, table1, table7
from pipeline.scaling.identify import (
    MAX_REL_WIDTH,
    choose_e_mode,
    exponent_problem,
    identify_eq7,
    identify_sum_law,
    max_rung_shift,
    rung_shift,
)
from pipeline.scaling.synthetic import (
    COVERAGE_LAYOUTS,
    write_synthetic_runs,
    write_synthetic_study,
)
from pipeline.scaling.tables import allocation, gamma_ordering


def test_exponent_outside_plausible_range_is_not_identified():
    assert "outside the plausible range" in exponent_problem("alpha", -55.0)
    assert "outside the plausible range" in exponent_problem("beta", 29.9, [0.155, 31.9])
    assert exponent_problem("alpha", 0.3, [0.2, 0.4]) is None


def test_interval_including_zero_or_too_wide_is_not_identified():
    assert "includes 0" in exponent_problem("alpha", 0.3, [-0.1, 0.5])
    wide = [0.01, 0.01 + 0.3 * (MAX_REL_WIDTH + 0.1)]
    assert "too wide to inform" in exponent_problem("alpha", 0.3, wide)
    # without a bootstrap only the range is checked
    assert exponent_problem("alpha", 0.3, [None, None], n_boot=0) is None


def test_eq7_inherits_eq5_verdict():
    s5 = {"alpha": 2.03, "beta": 0.3, "ci": {"alpha": [1.0, 3.0], "beta": [0.2, 0.4]},
          "n_boot": 100, "n_boot_failed": 0}  # fmt: skip
    s5.update(identify_sum_law(s5))
    assert not s5["identified"] and "alpha = 2.03" in s5["not_identified_reason"]
    e7 = {"gamma_c": 0.26, "ci": {"gamma_c": [0.2, 0.3]}, "n_samples": 100}
    v = identify_eq7(e7, s5)
    assert not v["identified"] and v["not_identified_reason"].startswith("eq. 5 not identified")


def test_more_than_2_5_percent_failed_resamples_is_not_identified():
    ok = {"alpha": 0.4, "beta": 0.3, "ci": {"alpha": [0.3, 0.5], "beta": [0.2, 0.4]},
          "n_boot": 200}  # fmt: skip
    assert identify_sum_law({**ok, "n_boot_failed": 5})["identified"]
    v = identify_sum_law({**ok, "n_boot_failed": 6})
    assert not v["identified"] and "6 of 200 bootstrap fits failed" in v["not_identified_reason"]


def test_three_passes_are_too_few_to_resample(tmp_path):
    """One in nine run resamples of three passes draws a single width and fails."""
    verdicts = {}
    for n_params in ((2e4, 2e5, 2e6), (2e4, 6e4, 2e5, 6e5, 2e6, 6e6)):
        dirs = write_synthetic_study(
            tmp_path / str(len(n_params)), n_params=n_params, fractions=(0.25, 0.5, 1.0),
            random_state=3,
        )  # fmt: skip
        fit = fit_arch(load_curves(dirs), 2.0, n_boot=100, seed=0, full_top_k=20,
                       compute="measured", flops="total", extrapolation=False)  # fmt: skip
        s5 = fit["eq5_" + fit["eq5_used"]]
        verdicts[len(n_params)] = (s5["n_boot_failed"], s5["not_identified_reason"])
    failed, reason = verdicts[3]
    assert failed > 5 and "bootstrap fits failed" in reason
    failed, reason = verdicts[6]
    assert failed == 0 and "failed" not in (reason or "")


def test_describe_estimate():
    fit = {"alpha": 0.3123, "ci": {"alpha": [0.25, 0.38]}, "identified": True}
    assert describe_estimate(fit, "alpha") == "0.312 [0.25, 0.38]"
    bad = {"alpha": -55.0, "identified": False, "not_identified_reason": "alpha = -55 outside"}
    assert describe_estimate(bad, "alpha") == "not identified (alpha = -55 outside)"


def test_choose_e_mode_margin():
    base = {"n_points": 30}
    free = {**base, "rss_log": 0.010, "n_params_fitted": 5}
    zero = {**base, "rss_log": 0.011, "n_params_fitted": 4}
    assert choose_e_mode(free, zero)["used"] == "e_zero"  # 10 % less RSS: not enough
    zero_bad = {**base, "rss_log": 0.02, "n_params_fitted": 4}
    d = choose_e_mode(free, zero_bad)
    assert d["used"] == "free" and d["delta_aicc"] > d["margin"]
    assert "AICc" in d["reason"]


@pytest.mark.parametrize("true_e", [0.0, 0.3])
def test_e_mode_auto_does_not_flip_at_one_decade_of_d(tmp_path, true_e):
    """The old rule flipped between D spans of 0.9998 and 1.0002 decades; AICc does not."""
    decisions = []
    for i, frac in enumerate((0.1 * 1.0005, 0.1 / 1.0005)):
        dirs = write_synthetic_runs(
            tmp_path / f"{true_e}_{i}", "synth", n_params=(2e4, 6e4, 2e5, 6e5, 2e6),
            fractions=(frac, 0.2, 0.4, 0.7, 1.0), E=true_e, noise=0.01, n_evals=10, seed=5,
        )  # fmt: skip
        fit = fit_arch(load_curves(dirs), 2.0, n_boot=0, full_top_k=30, extrapolation=False)
        span = fit["eq5_free"]["d_span_decades"]
        assert (span < 1.0) == (i == 0)  # the two studies sit on both sides of the old boundary
        decisions.append(fit["e_mode_decision"])
    assert decisions[0]["used"] == decisions[1]["used"]
    assert decisions[0]["delta_aicc"] == pytest.approx(decisions[1]["delta_aicc"], abs=0.5)


def test_e_mode_requested_is_used_and_noted(tmp_path):
    dirs = write_synthetic_runs(tmp_path, "synth", n_params=(2e4, 2e5, 2e6),
                                fractions=(0.1, 0.4, 1.0), noise=0.01, n_evals=8)  # fmt: skip
    fit = fit_arch(load_curves(dirs), 2.0, n_boot=10, e_mode="free", full_top_k=20,
                   extrapolation=False)  # fmt: skip
    assert fit["eq5_used"] == "free" and fit["eq5_used_reason"].startswith("e_mode = 'free'")
    t1 = table1({"synth": fit})
    assert t1["eq5_fit"].tolist() == ["free", "free"]
    assert t1["e_mode_note"].iloc[0].startswith("e_mode = 'free' requested")


def test_tables_print_not_identified_instead_of_numbers(tmp_path):
    """A ladder whose loss does not fall with N: alpha not identified anywhere."""
    dirs = write_synthetic_runs(
        tmp_path, "flat", n_params=(1e4, 3e4, 1e5), fractions=(0.25, 0.5, 1.0),
        d_max=1e5, A=1e-3, alpha=-0.3, B=10**1.5, beta=0.4, noise=0.005, n_evals=8, seed=2,
    )  # fmt: skip
    fit = fit_arch(load_curves(dirs), 2.0, n_boot=20, full_top_k=20, extrapolation=False)
    assert not fit["eq7"]["identified"]
    t1 = table1({"flat": fit}).set_index("param")
    assert (
        np.isnan(t1.loc["gamma_c", "eq7"])
        and "eq. 7: not identified (" in t1.loc["gamma_c", "note"]
    )
    t7 = table7({"flat": fit})
    s = fit["eq5_free"] if fit["eq5_used"] == "free" else fit["eq5_e_zero"]
    if not s["identified"]:
        assert np.isnan(t7["alpha"].iloc[0]) and t7["note"].iloc[0].startswith("eq. 5: not")
    alloc = allocation({"flat": fit}, [1.0])
    assert alloc["note"].iloc[0].startswith("not identified (")
    assert np.isnan(alloc.get("n_opt", np.array([np.nan]))[0])


def test_fit_options_defaults_and_ema_per_arch():
    opts = fit_options({"n_boot": 50, "seed": 1, "skip_fraction": 0.2,
                        "ema": {"gemnet_oc": 0.9}}, "gemnet_oc", {"flops": "counted"})  # fmt: skip
    assert opts == {
        "n_boot": 50,
        "seed": 1,
        "warmup": 0.2,
        "e_mode": "auto",
        "ema": 0.9,
        "compute": "measured",
        "flops": "counted",
        "unit": "run",
    }
    assert fit_options({}, "mpnn")["flops"] == "counted"  # the schema default
    assert fit_options({}, "mpnn")["ema"] is None
    with pytest.raises(ValueError, match="fit.ema"):
        fit_options({"ema": 0.9}, "mpnn")


def test_width_separation_against_seed_spread():
    import pandas as pd

    from pipeline.scaling.identify import seed_spread, width_separation

    rows = []
    for seed, jitter in ((0, 1.00), (1, 1.02)):
        for n, loss in ((1e4, 0.50), (1e5, 0.45), (1e6, 0.40)):
            rows.append({"n": n, "fraction": 1.0, "seed": seed, "loss": loss * jitter})
            rows.append({"n": n, "fraction": 0.5, "seed": seed, "loss": 1.2 * loss * jitter})
    pts = pd.DataFrame(rows)
    spread = seed_spread(pts)
    assert spread["n_cells"] == 6 and spread["sd_log"] == pytest.approx(np.log(1.02) / np.sqrt(2))
    assert width_separation(pts)["separated"]  # log(0.5 / 0.4) = 0.22 >> 3 x 0.014
    flat = pts.assign(loss=np.where(pts["n"] == 1e6, pts["loss"] * 1.24, pts["loss"]))
    sep = width_separation(flat)
    assert not sep["separated"] and sep["reason"].startswith("widths do not separate")


def test_e_mode_choice_is_repeated_in_every_resample():
    from pipeline.scaling.identify import choose_e_mode_per_resample

    free = {"n_points": 30, "n_params_fitted": 5, "samples": {"beta": [0.6, 0.61, 0.62]},
            "samples_resample": [0, 1, 2], "samples_rss_log": [0.010, 0.010, 0.010]}  # fmt: skip
    zero = {"n_points": 30, "n_params_fitted": 4, "samples": {"beta": [0.35, 0.36]},
            "samples_resample": [1, 2], "samples_rss_log": [0.0102, 0.02]}  # fmt: skip
    mixed = choose_e_mode_per_resample(free, zero)
    # resample 0 failed for E = 0; resample 1: free does not win by 2 AICc; 2: it does
    assert mixed["n_resamples"] == 2 and mixed["share_free"] == 0.5
    assert mixed["samples"]["beta"] == [0.35, 0.62]


def _gamma_rows(values: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    """table1-like gamma_c rows: {arch: (eq4, lo, hi)}, eq. 7 = eq. 4 shifted by 0.1."""
    rows = []
    for arch, (v, lo, hi) in values.items():
        rows.append({"arch": arch, "param": "gamma_c", "eq4": v, "eq4_lo": lo, "eq4_hi": hi,
                     "eq7": v + 0.1, "eq7_lo": lo + 0.1, "eq7_hi": hi + 0.1})  # fmt: skip
        rows.append({"arch": arch, "param": "F_c", "eq4": 9.0, "eq4_lo": 8.0, "eq4_hi": 10.0,
                     "eq7": 9.0, "eq7_lo": 8.0, "eq7_hi": 10.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_gamma_ordering_reports_order_separation_and_the_papers_order():
    table = _gamma_rows({
        "esen": (0.35, 0.30, 0.40),
        "mpnn": (0.20, 0.18, 0.22),
        "egnn": (0.21, 0.15, 0.32),
        "gemnet_oc": (0.30, 0.25, 0.45),
    })  # fmt: skip
    table.loc[(table["arch"] == "gemnet_oc"), ["eq7", "eq7_lo", "eq7_hi"]] = np.nan
    order = gamma_ordering(table)
    eq4 = order[order["law"] == "eq. 4"].set_index(["lower", "higher"])
    assert len(eq4) == 6  # every pair once, lower estimate first
    assert eq4.loc[("mpnn", "egnn"), "separated"] == False  # noqa: E712 (numpy bool)
    assert eq4.loc[("mpnn", "esen"), "separated"] == True  # noqa: E712
    assert eq4.loc[("mpnn", "esen"), "paper_order"] == "agrees"
    assert eq4.loc[("gemnet_oc", "esen"), "paper_order"] == "not ordered by the paper"
    assert eq4.loc[("egnn", "gemnet_oc"), "lower_gamma_c"] == "0.21 [0.15, 0.32]"
    # eq. 7: GemNet-OC not identified (NaN) -> left out of the pairs
    eq7 = order[order["law"] == "eq. 7"]
    assert len(eq7) == 3 and "gemnet_oc" not in set(eq7["lower"]) | set(eq7["higher"])
    reversed_table = _gamma_rows({"mpnn": (0.5, 0.45, 0.55), "esen": (0.2, 0.1, 0.3)})
    row = gamma_ordering(reversed_table).iloc[0]
    assert (row["lower"], row["higher"], row["paper_order"]) == ("esen", "mpnn", "reversed")


def _fit_used(dirs) -> tuple[dict, dict]:
    fit = fit_arch(load_curves(dirs), 2.0, n_boot=100, seed=0, full_top_k=20,
                   compute="measured", flops="total", extrapolation=False)  # fmt: skip
    return fit["eq5_" + fit["eq5_used"]], fit["eq7"]


def test_rung_jackknife_is_recorded_and_moves_a_cliff_towards_the_law(tmp_path):
    """Eq. 5 refitted without each rung: in the fit JSON, not an identification test."""
    kind, seeds, design = COVERAGE_LAYOUTS["separate_2seeds_cliff"]  # the smallest N x 1.4
    dirs = write_synthetic_study(tmp_path / "cliff", layout=kind, seeds=seeds, **design,
                                 random_state=2)  # fmt: skip
    s5, eq7 = _fit_used(dirs)
    jk = s5["rung_jackknife"]
    assert (
        jk["checked"]
        and jk["n_rungs"] == 5
        and [r["n_params"] for r in jk["rungs"]] == [20_000, 60_000, 200_000, 600_000, 2_000_000]
    )
    # the cliff bends alpha away from the law's 0.40; without its rung the refit returns
    without_cliff = jk["rungs"][0]
    assert abs(without_cliff["alpha"] - 0.40) < 0.1 < abs(s5["alpha"] - 0.40)
    lo, hi = s5["ci"]["alpha"]
    assert jk["max_shift"]["alpha"] == pytest.approx(
        abs(without_cliff["alpha"] - s5["alpha"]) / ((hi - lo) / 2)
    )
    assert eq7["rung_max_shift"] is not None and eq7["rung_max_shift"] >= 0


def test_rung_shift_and_too_few_rungs(tmp_path):
    assert rung_shift(0.58, 0.4, [0.3, 0.5]) == pytest.approx(1.8)
    assert rung_shift(0.58, 0.4, [None, 0.5]) is None
    jk = {"checked": True, "rungs": [{"alpha": 0.45}, {"alpha": 0.3}, {"error": "no fit"}]}
    assert max_rung_shift(jk, "alpha", 0.4, [0.3, 0.5]) == pytest.approx(1.0)
    assert max_rung_shift({"checked": False}, "alpha", 0.4, [0.3, 0.5]) is None
    dirs = write_synthetic_study(tmp_path, n_params=(2e4, 2e5, 2e6), fractions=(0.25, 1.0))
    s5, _ = _fit_used(dirs)
    assert not s5["rung_jackknife"]["checked"]
    assert s5["rung_jackknife"]["reason"] == "3 rungs (the check needs 4)"
