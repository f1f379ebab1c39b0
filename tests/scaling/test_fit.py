"""Eq. (4), (5) and (7): recovery of known laws, intervals, failures, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from pipeline.scaling import compute_optimal, fit_power_law, fit_sum_law
from pipeline.scaling.fit import (
    _bias_corrected_ci,
    _huber,
    _percentile_ci,
    _SumLaw,
    optimal_allocation,
)

# (F, gamma): the paper's Table 1 range and a steeper law
POWER_TRUTHS = [(0.93, 0.14), (0.78, 0.17), (0.49, 0.255), (0.70, 0.40), (2.0, 0.8)]
# (log10 A, log10 B, alpha, beta): Table 7 of the paper
SUM_TRUTHS = [
    (1.356, 2.194, 0.276, 0.311),
    (1.582, 2.750, 0.387, 0.394),
    (2.109, 3.261, 0.524, 0.499),
    (3.760, 5.129, 0.817, 0.753),
]


def _power_data(F, gamma, seed, n=40, noise=0.01):
    rng = np.random.default_rng(seed)
    c = np.geomspace(1e-3, 1e3, n)  # PFLOPs
    return c, F * c**-gamma * np.exp(rng.normal(0.0, noise, n))


def _sum_data(A, B, alpha, beta, E=0.0, seed=0, noise=0.01, d_lo=1e6, d_hi=1e9):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e5, 1e7, 5), 6)
    d = np.tile(np.geomspace(d_lo, d_hi, 6), 5)
    loss = (E + A * n**-alpha + B * d**-beta) * np.exp(rng.normal(0.0, noise, n.size))
    return n, d, loss


@pytest.mark.parametrize("F,gamma", POWER_TRUTHS)
def test_power_law_recovers_truth_with_covering_interval(F, gamma):
    c, loss = _power_data(F, gamma, seed=0)
    r = fit_power_law(c, loss, n_boot=200, seed=1)
    assert r["gamma"] == pytest.approx(gamma, abs=0.01)
    assert r["F"] == pytest.approx(F, rel=0.03)
    for name, truth in (("F", F), ("gamma", gamma)):
        lo, hi = r["ci"][name]
        assert lo <= truth <= hi, (name, truth, lo, hi)
        assert lo <= r[name] <= hi
    assert r["n_boot_failed"] == 0
    assert r["reduction"] == "sum" and r["huber_delta"] == 1e-3


@pytest.mark.slow
def test_power_law_interval_coverage_is_near_nominal():
    """Over 30 noisy replicates the 95 % interval of gamma covers the truth >= 80 % of the time."""
    hits = 0
    for rep in range(30):
        c, loss = _power_data(0.7, 0.4, seed=100 + rep, n=25, noise=0.02)
        lo, hi = fit_power_law(c, loss, n_boot=200, seed=rep)["ci"]["gamma"]
        hits += lo <= 0.4 <= hi
    assert hits >= 24


def test_bias_corrected_interval_undoes_a_median_bias_of_the_resamples():
    """BC on a normal bootstrap shifted by b from the estimate is estimate - b +- 1.96 sd."""
    z = np.random.default_rng(0).standard_normal(200_000)
    centred = 0.3 + 0.1 * z
    np.testing.assert_allclose(_bias_corrected_ci(centred, 0.3), _percentile_ci(centred), atol=2e-3)
    shifted = 0.3 - 0.05 + 0.1 * z  # resamples fall below the estimate by 0.05
    np.testing.assert_allclose(
        _bias_corrected_ci(shifted, 0.3), [0.35 - 0.196, 0.35 + 0.196], atol=3e-3
    )
    # every resample on one side: still a finite interval within the resamples
    lo, hi = _bias_corrected_ci(np.linspace(0.1, 0.2, 50), 0.5)
    assert 0.1 <= lo <= hi <= 0.2
    assert np.isnan(_bias_corrected_ci(np.empty(0), 0.3)).all()


def test_eq4_reports_the_percentile_and_the_bias_corrected_interval():
    c, loss = _power_data(0.7, 0.4, seed=3)
    r = fit_power_law(c, loss, n_boot=100, seed=0, return_samples=True)
    s = np.asarray(r["samples"]["gamma"])
    assert r["ci"]["gamma"] == _percentile_ci(s)
    assert r["ci_bias_corrected"]["gamma"] == _bias_corrected_ci(s, r["gamma"])


def test_power_law_is_robust_to_an_outlier():
    c, loss = _power_data(0.49, 0.255, seed=3)
    loss[10] *= 3.0  # a spike in one evaluation
    r = fit_power_law(c, loss, n_boot=0)
    assert r["gamma"] == pytest.approx(0.255, abs=0.01)


@pytest.mark.parametrize("la,lb,alpha,beta", SUM_TRUTHS)
def test_sum_law_recovers_table7_truths(la, lb, alpha, beta):
    """One noisy data set per truth (same seed for all).

    A 95 % interval misses about 1 in 20 data sets (seed 0 misses MPNN's beta by
    0.004); calibration over replicates is what test_sum_law_interval_coverage checks.
    """
    n, d, loss = _sum_data(10**la, 10**lb, alpha, beta, seed=1)
    r = fit_sum_law(n, d, loss, n_boot=100, seed=0)
    assert r["alpha"] == pytest.approx(alpha, abs=0.05)
    assert r["beta"] == pytest.approx(beta, abs=0.05)
    for name, truth in (("alpha", alpha), ("beta", beta), ("A", 10**la), ("B", 10**lb)):
        lo, hi = r["ci"][name]
        assert lo <= truth <= hi, (name, truth, lo, hi)
    assert set(r["ci"]) == {"E", "A", "B", "alpha", "beta"}
    assert r["n_boot_failed"] <= 5
    assert not r["e_beta_tradeoff"] and r["table1_fit"] == "free"


@pytest.mark.slow
def test_sum_law_interval_coverage():
    """Over 8 replicates the 95 % intervals of alpha and beta cover the truth >= 6 times.

    The truth has E = 0, on the boundary of the free fit; there percentile intervals
    under-cover somewhat (E > 0 estimates pull alpha up), hence 6 of 8, not 7.6.
    """
    hits = np.zeros(2)
    for rep in range(8):
        n, d, loss = _sum_data(10**1.582, 10**2.75, 0.387, 0.394, seed=200 + rep)
        r = fit_sum_law(n, d, loss, n_boot=100, seed=rep)
        for i, (k, t) in enumerate((("alpha", 0.387), ("beta", 0.394))):
            hits[i] += r["ci"][k][0] <= t <= r["ci"][k][1]
    assert np.all(hits >= 6), hits


def test_sum_law_recovers_irreducible_loss():
    n, d, loss = _sum_data(10**2.1, 10**3.3, 0.52, 0.5, E=0.02, seed=5, noise=0.005)
    r = fit_sum_law(n, d, loss, n_boot=100, seed=0)
    assert r["E"] == pytest.approx(0.02, rel=0.3)
    lo, hi = r["ci"]["E"]
    assert lo <= 0.02 <= hi


def test_short_d_range_flags_e_beta_tradeoff_and_reports_e_zero_fit():
    n, d, loss = _sum_data(10**1.6, 10**2.75, 0.39, 0.39, seed=2, d_lo=1e8, d_hi=5e8)
    r = fit_sum_law(n, d, loss, n_boot=50, seed=0)
    assert r["d_span_decades"] < 1
    assert r["e_beta_tradeoff"]
    assert r["table1_fit"] == "e_zero"
    e0 = r["e_zero"]
    assert e0["E"] == 0.0 and e0["ci"]["E"] == [0.0, 0.0] and e0["e_fixed"]
    assert e0["beta"] == pytest.approx(0.39, abs=0.05)


def test_bootstrap_failures_are_counted_not_dropped():
    # two of three points share one compute: resamples with a single distinct compute fail
    c = np.array([1.0, 1.0, 10.0])
    loss = np.array([1.0, 1.02, 0.5])
    r = fit_power_law(c, loss, n_boot=200, seed=0, return_samples=True)
    assert r["n_boot_failed"] > 0
    assert sum(r["boot_failures"].values()) == r["n_boot_failed"]
    assert len(r["samples"]["gamma"]) + r["n_boot_failed"] == 200


def test_bootstrap_is_reproducible_and_seed_dependent():
    c, loss = _power_data(0.7, 0.4, seed=0, n=15, noise=0.03)
    a = fit_power_law(c, loss, n_boot=100, seed=1)["ci"]["gamma"]
    b = fit_power_law(c, loss, n_boot=100, seed=1)["ci"]["gamma"]
    other = fit_power_law(c, loss, n_boot=100, seed=2)["ci"]["gamma"]
    assert a == b and a != other


def test_batched_lbfgs_matches_scipy_lbfgsb_from_the_same_starts():
    n, d, loss = _sum_data(10**2.1, 10**3.26, 0.52, 0.5, E=0.01, seed=7)
    law = _SumLaw(np.log(n), np.log(d), np.log(loss), 1e-3, free_e=True)
    r = fit_sum_law(n, d, loss, n_boot=0)
    w = np.ones((1, n.size))

    def fun(x):
        f, g = law.value_grad(x[None, :], w)
        return f[0], g[0]

    starts = law.starts()[:: max(1, len(law.starts()) // 6)]
    best = min(
        (res for res in (minimize(fun, s, jac=True, method="L-BFGS-B") for s in starts)),
        key=lambda res: res.fun,
    )
    # the batched optimiser reaches at least scipy's best objective
    assert r["objective"] <= best.fun * (1 + 1e-6) + 1e-12
    assert r["alpha"] == pytest.approx(best.x[2], abs=0.01)
    assert r["beta"] == pytest.approx(best.x[3], abs=0.01)


def test_huber_matches_definition():
    r = np.array([-0.01, -1e-3, -5e-4, 0.0, 2e-4, 1e-3, 0.3])
    delta = 1e-3
    h, dh = _huber(r, delta)
    ref = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)) / delta
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(dh, np.clip(r, -delta, delta) / delta)


# --------------------------------------------------------------------------- eq. 7


@pytest.mark.parametrize("la,lb,alpha,beta", SUM_TRUTHS)
@pytest.mark.parametrize("kappa", [2.0, 37.5])
def test_compute_optimal_matches_numerical_constrained_minimum(la, lb, alpha, beta, kappa):
    A, B = 10**la, 10**lb
    co = compute_optimal(A, B, alpha, beta, kappa)
    assert co["gamma_c"] == pytest.approx(alpha * beta / (alpha + beta))
    assert co["a"] + co["b"] == pytest.approx(1.0)
    for c_pflops in (1e-2, 1.0, 1e3):
        c_flops = c_pflops * 1e15
        nd = c_flops / (3.0 * kappa)  # N * D fixed by the budget

        def loss_of_log_n(log_n, nd=nd):
            n = np.exp(log_n)
            return A * n**-alpha + B * (nd / n) ** -beta

        res = minimize_scalar(
            loss_of_log_n, bounds=(0.0, np.log(nd)), method="bounded", options={"xatol": 1e-10}
        )
        n_star = np.exp(res.x)
        d_star = nd / n_star
        alloc = optimal_allocation(A, B, alpha, beta, kappa, c_pflops)
        assert float(alloc["n_opt"][0]) == pytest.approx(n_star, rel=1e-4)
        assert float(alloc["d_opt"][0]) == pytest.approx(d_star, rel=1e-4)
        assert co["F_c"] * c_pflops ** -co["gamma_c"] == pytest.approx(res.fun, rel=1e-8)
        assert co["F_c_flops"] * c_flops ** -co["gamma_c"] == pytest.approx(res.fun, rel=1e-8)
        assert float(alloc["loss"][0]) == pytest.approx(res.fun, rel=1e-8)


def test_compute_optimal_reproduces_paper_gamma_c_from_table7():
    # Table 1, eq. (7) column: gamma_c = 0.146, 0.195, 0.256, 0.392
    expected = [0.146, 0.195, 0.256, 0.392]
    for (la, lb, alpha, beta), g in zip(SUM_TRUTHS, expected, strict=True):
        assert compute_optimal(10**la, 10**lb, alpha, beta, 5.0)["gamma_c"] == pytest.approx(
            g, abs=6e-4
        )


def test_compute_optimal_rejects_nonpositive():
    with pytest.raises(ValueError, match="alpha"):
        compute_optimal(1.0, 1.0, -0.1, 0.3, 2.0)
    with pytest.raises(ValueError, match="kappa"):
        compute_optimal(1.0, 1.0, 0.1, 0.3, 0.0)


# --------------------------------------------------------------------------- bad input


def test_bad_input_errors_name_label_and_problem():
    c, loss = _power_data(0.7, 0.4, seed=0, n=10)
    with pytest.raises(ValueError, match=r"esen: .*NaN.*'loss'"):
        bad = loss.copy()
        bad[3] = np.nan
        fit_power_law(c, bad, label="esen")
    with pytest.raises(ValueError, match=r"mpnn: .*non-positive 'compute'"):
        bad = c.copy()
        bad[0] = 0.0
        fit_power_law(bad, loss, label="mpnn")
    with pytest.raises(ValueError, match=r"egnn: .*at least 3 points, got 2"):
        fit_power_law(c[:2], loss[:2], label="egnn")
    with pytest.raises(ValueError, match="different lengths"):
        fit_power_law(c, loss[:-1])
    with pytest.raises(ValueError, match="distinct compute"):
        fit_power_law(np.ones(5), loss[:5])
    n, d, ll = _sum_data(10**1.6, 10**2.7, 0.39, 0.39)
    with pytest.raises(ValueError, match=r"gemnet: eq. 5 fit: needs at least 6 points, got 5"):
        fit_sum_law(n[:5], d[:5], ll[:5], label="gemnet")
    with pytest.raises(ValueError, match="distinct N"):
        fit_sum_law(np.full(10, 1e6), d[:10], ll[:10])
    with pytest.raises(ValueError, match="non-positive 'loss'"):
        fit_sum_law(n, d, -ll)


def test_overflowing_bootstrap_parameters_are_counted():
    rng = np.random.default_rng(0)
    n = np.repeat([1e5, 3e5, 1e6, 3e6], 3)
    d = np.tile([2e7, 5e7, 1e8], 4)
    loss = np.exp(rng.normal(0.0, 0.05, 12))  # no trend at all
    r = fit_sum_law(n, d, loss, n_boot=40, seed=0, return_samples=True, compare_e_zero=False)
    assert r["boot_failures"].get("parameter overflow (log-space value > 700)", 0) > 0
    assert len(r["samples"]["A"]) + r["n_boot_failed"] == 40
    assert np.all(np.isfinite(r["samples"]["A"])) and np.all(np.isfinite(r["samples"]["B"]))
