"""When a fitted law is identified by the runs, and which eq. (5) fit Table 1 uses.

Identification (issue 12 item 6). A fit is reported as a number only when

1. its exponent lies in a plausible range for these scales
   (:data:`EXPONENT_RANGE`: alpha, beta and eq. 7's gamma_c in (0.02, 2]; eq. 4's
   gamma in (0.01, 2]), since a runaway exponent (alpha = -55, beta = 30) means
   the runs do not constrain that term;
2. its 95 % interval excludes 0 (lower end > 0);
3. its interval is not too wide to inform: (hi - lo) / estimate <=
   :data:`MAX_REL_WIDTH`. The simulation study (``benchmarks/bench_coverage.py``)
   gives the widths a correct fit has on the designs the study uses; the bound
   sits well above them, so a fit that the runs do constrain is not flagged;
4. at most :data:`MAX_FAILED_FRACTION` (2.5 %) of its bootstrap resamples failed.
   A resample fails when its drawn passes cannot determine the law (e.g. every
   draw is one width): the failures are the extreme resamples, not a random
   subset, and the percentile interval of the others holds only if no tail could
   have held them. With three passes per family, one in nine resamples draws a
   single pass (11 %), and the simulation study's three-width design under-covers;
5. (eq. 5 and so eq. 7) the final losses separate by width at the largest fraction:
   ``log L(N_min) / L(N_max) > SEPARATION_SDS`` noise sds (:func:`width_separation`;
   noise = the seed spread when seeds are replicated, else the eq. 5 rms log
   residual). Without it alpha is not identified by the runs, whatever its interval.

Otherwise ``identified`` is False and ``not_identified_reason`` says which test
failed; the raw values stay in the fit dict. With ``n_boot = 0`` only test 1 applies.

Rung jackknife (recorded, not a test). The fit stage refits eq. 5 with each width left
out in turn (:func:`pipeline.scaling.fits.rung_jackknife`, ladders of at least
:data:`MIN_JACKKNIFE_RUNGS` rungs) and records how far each exponent moves, in
half-widths of its interval (:func:`max_rung_shift`). It was tried as a test (fail when
a refit moves more than 1.5 half-widths) against a rung that breaks down and rejected
on the simulation's evidence (README, "Coverage of the intervals"): on five rungs of
separate runs with two seeds it failed 12 % of studies of a true law and caught a
third of those whose smallest model sits 40 % above the law (alpha's interval then
covers in 1 of 10, while gamma_c's still covers), and on shared passes it caught none.

E mode (issue 12 item 3). :func:`choose_e_mode` compares the free and the E = 0
eq. (5) fits by the small-sample Akaike criterion of the log residuals,
``AICc = n log(RSS / n) + 2 k + 2 k (k + 1) / (n - k - 1)`` (k = 5 or 4 parameters),
and takes the free fit only when it is better by more than
:data:`E_MODE_MARGIN` (= 2, "substantial support" in Burnham & Anderson's scale);
otherwise the simpler E = 0 fit. AICc is a continuous function of the data, so a
0.05 % change of the smallest D moves the decision only when the two fits are
within a hair of the margin, not whenever D crosses a span of one decade.
"""

from __future__ import annotations

import math

import numpy as np

#: (low, high]: exponents outside are not identified by runs at these scales
EXPONENT_RANGE = {
    "alpha": (0.02, 2.0),
    "beta": (0.02, 2.0),
    "gamma_c": (0.02, 2.0),
    "gamma": (0.01, 2.0),
}
#: largest (hi - lo) / estimate of a 95 % interval that still informs
MAX_REL_WIDTH = 2.0
#: largest fraction of failed bootstrap resamples (one tail of a 95 % interval)
MAX_FAILED_FRACTION = 0.025
#: AICc units by which the free eq. 5 fit must beat the E = 0 fit to be used
E_MODE_MARGIN = 2.0
#: fewest rungs (distinct N) for the rung jackknife: with three, every refit has two
#: widths for eq. 5's N term, and the moves would measure the design, not the law
MIN_JACKKNIFE_RUNGS = 4


def _finite(v) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def exponent_problem(name: str, value, ci=None, *, n_boot: int | None = None) -> str | None:
    """Why exponent ``name`` = ``value`` with interval ``ci`` is not identified (None: it is).

    Parameters
    ----------
    name : {"alpha", "beta", "gamma_c", "gamma"}
        Which exponent (selects :data:`EXPONENT_RANGE`).
    value : float
        The estimate.
    ci : [lo, hi], optional
        Its 95 % interval; None or NaN ends skip the interval tests.
    n_boot : int, optional
        Resamples behind ``ci`` (0: interval tests skipped).
    """
    lo_ok, hi_ok = EXPONENT_RANGE[name]
    if not _finite(value):
        return f"{name} is not finite"
    if not lo_ok < value <= hi_ok:
        return f"{name} = {value:.3g} outside the plausible range ({lo_ok:g}, {hi_ok:g}]"
    if n_boot == 0 or ci is None or not all(_finite(v) for v in ci):
        return None
    lo, hi = ci
    if lo <= 0:
        return f"{name} interval [{lo:.3g}, {hi:.3g}] includes 0"
    rel = (hi - lo) / value
    if rel > MAX_REL_WIDTH:
        return (
            f"{name} interval [{lo:.3g}, {hi:.3g}] too wide to inform "
            f"({rel:.2g} x the estimate > {MAX_REL_WIDTH:g})"
        )
    return None


def _verdict(problems: list[str | None]) -> dict:
    found = [p for p in problems if p]
    return {"identified": not found, "not_identified_reason": "; ".join(found) or None}


def _failed_problem(fit: dict) -> str | None:
    n_boot = fit.get("n_boot") or 0
    failed = fit.get("n_boot_failed") or 0
    if n_boot and failed > MAX_FAILED_FRACTION * n_boot:
        return (
            f"{failed} of {n_boot} bootstrap fits failed (> {MAX_FAILED_FRACTION:.1%}: "
            "too few training passes to resample)"
        )
    return None


def identify_power_law(fit: dict) -> dict:
    """``{"identified", "not_identified_reason"}`` of an eq. (4) fit dict."""
    n_boot = fit.get("n_boot")
    return _verdict(
        [
            exponent_problem("gamma", fit.get("gamma"), fit.get("ci", {}).get("gamma"),
                             n_boot=n_boot),
            _failed_problem(fit),
        ]
    )  # fmt: skip


def rung_shift(value, estimate, ci) -> float | None:
    """|value - estimate| in half-widths of ``ci`` (None when any is missing)."""
    if ci is None or not all(_finite(v) for v in (value, estimate, *ci)) or ci[1] <= ci[0]:
        return None
    return abs(value - estimate) / ((ci[1] - ci[0]) / 2)


def max_rung_shift(jackknife: dict | None, name: str, estimate, ci) -> float | None:
    """The largest :func:`rung_shift` of ``name`` over the rungs left out (None: unchecked)."""
    if not jackknife or not jackknife.get("checked"):
        return None
    shifts = [rung_shift(r.get(name), estimate, ci) for r in jackknife["rungs"]]
    shifts = [v for v in shifts if v is not None]
    return max(shifts) if shifts else None


def identify_sum_law(fit: dict) -> dict:
    """``{"identified", "not_identified_reason"}`` of an eq. (5) fit dict (alpha and beta).

    Tests 1-4; the fit stage adds 5, which needs the runs
    (:func:`pipeline.scaling.fits.identify_on_runs`).
    """
    n_boot = fit.get("n_boot")
    ci = fit.get("ci", {})
    return _verdict(
        [
            exponent_problem("alpha", fit.get("alpha"), ci.get("alpha"), n_boot=n_boot),
            exponent_problem("beta", fit.get("beta"), ci.get("beta"), n_boot=n_boot),
            _failed_problem(fit),
        ]
    )


def identify_eq7(eq7: dict, sum_fit: dict) -> dict:
    """Eq. (7) is identified when its eq. (5) fit is and gamma_c passes the tests."""
    if eq7.get("error"):
        return _verdict([eq7["error"]])
    problems = []
    if not sum_fit.get("identified", True):
        problems.append(f"eq. 5 not identified: {sum_fit.get('not_identified_reason')}")
    problems.append(
        exponent_problem(
            "gamma_c", eq7.get("gamma_c"), eq7.get("ci", {}).get("gamma_c"),
            n_boot=eq7.get("n_samples"),
        )
    )  # fmt: skip
    return _verdict(problems)


def aicc(rss: float, n: int, k: int) -> float:
    """Small-sample Akaike criterion of a least-squares fit (Gaussian log residuals)."""
    rss = max(float(rss), 1e-300)
    value = n * math.log(rss / n) + 2 * k
    if n - k - 1 > 0:
        value += 2 * k * (k + 1) / (n - k - 1)
    return value


def choose_e_mode(free: dict, e_zero: dict, margin: float = E_MODE_MARGIN) -> dict:
    """Pick the eq. (5) fit Table 1 uses (``"free"`` or ``"e_zero"``) by AICc.

    Parameters
    ----------
    free, e_zero : dict
        :func:`pipeline.scaling.fit_sum_law` outputs of the free and the E = 0 fit
        on the same points (``rss_log``, ``n_points``, ``n_params_fitted``).
    margin : float
        AICc units by which the free fit must be better.

    Returns
    -------
    dict
        ``used``, ``reason`` (one line with the evidence), ``criterion``,
        ``aicc_free``, ``aicc_e_zero``, ``delta_aicc`` (e_zero - free), ``margin``.
    """
    n = int(free["n_points"])
    a_free = aicc(free["rss_log"], n, int(free["n_params_fitted"]))
    a_zero = aicc(e_zero["rss_log"], n, int(e_zero["n_params_fitted"]))
    delta = a_zero - a_free
    used = "free" if delta > margin else "e_zero"
    verb = "beats" if used == "free" else "does not beat"
    reason = (
        f"auto: free fit {verb} E = 0 by more than {margin:g} AICc units "
        f"(AICc free {a_free:.1f}, E = 0 {a_zero:.1f}, difference {delta:.1f})"
    )
    return {
        "used": used,
        "reason": reason,
        "criterion": "AICc of log residuals, margin in AICc units",
        "aicc_free": a_free,
        "aicc_e_zero": a_zero,
        "delta_aicc": delta,
        "margin": float(margin),
    }


def describe_estimate(fit: dict, name: str, fmt: str = "{:.3g}") -> str:
    """``"0.31 [0.25, 0.38]"``, or ``"not identified (<reason>)"`` for legends and tables.

    Parameters
    ----------
    fit : dict
        A fit dict with ``name``, ``ci`` and (optionally) ``identified`` /
        ``not_identified_reason`` (contract 4 of the fit JSONs).
    name : str
        The key to describe (``"alpha"``, ``"gamma_c"``, ``"F"`` ...).
    fmt : str
        Format of each number.
    """
    if fit.get("identified") is False:
        return f"not identified ({fit.get('not_identified_reason') or 'no reason recorded'})"
    value = fit.get(name)
    if not _finite(value):
        return "not identified (no estimate)"
    ci = fit.get("ci", {}).get(name)
    text = fmt.format(value)
    if ci is not None and all(_finite(v) for v in ci):
        text += f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
    return text


#: widths separate when log(L(N_min) / L(N_max)) at the largest fraction exceeds this many
#: noise sds (the seed spread of log loss, or the eq. 5 fit's rms log residual without seeds)
SEPARATION_SDS = 3.0


def seed_spread(points) -> dict:
    """Spread of the final log loss between seeds of the same (N, fraction).

    Parameters
    ----------
    points : DataFrame
        :func:`pipeline.scaling.frontier.sum_law_points` output (``n, fraction, seed, loss``).

    Returns
    -------
    dict
        ``sd_log`` (pooled sd of log loss across seeds; None without replicated
        cells), ``n_cells`` (cells with >= 2 seeds), ``max_rel_range`` (largest
        (max - min) / mean loss of a cell; None without replicated cells).
    """
    if "seed" not in points or points["seed"].nunique() < 2:
        return {"sd_log": None, "n_cells": 0, "max_rel_range": None}
    logs = points.assign(log_loss=np.log(points["loss"]))
    cells = [g for _, g in logs.groupby(["n", "fraction"]) if len(g) >= 2]
    if not cells:
        return {"sd_log": None, "n_cells": 0, "max_rel_range": None}
    ss = sum(float(((g["log_loss"] - g["log_loss"].mean()) ** 2).sum()) for g in cells)
    dof = sum(len(g) - 1 for g in cells)
    rel = [float((g["loss"].max() - g["loss"].min()) / g["loss"].mean()) for g in cells]
    return {"sd_log": math.sqrt(ss / dof), "n_cells": len(cells), "max_rel_range": max(rel)}


def width_separation(points, noise_sd_log: float | None = None) -> dict:
    """Do the final losses separate by width at the largest fraction (item 8's test)?

    Parameters
    ----------
    points : DataFrame
        :func:`pipeline.scaling.frontier.sum_law_points` output.
    noise_sd_log : float, optional
        The noise sd of log loss to compare with; default the seed spread
        (:func:`seed_spread`), required when there are no replicated seeds.

    Returns
    -------
    dict
        ``fraction`` (the largest), ``log_ratio`` (log of the mean loss of the
        smallest over the largest width there), ``noise_sd_log``, ``separated``
        (``log_ratio > SEPARATION_SDS * noise_sd_log``) and ``reason`` (None when
        separated).
    """
    top = float(points["fraction"].max())
    at_top = points[np.isclose(points["fraction"], top)].groupby("n")["loss"].mean()
    if noise_sd_log is None:
        noise_sd_log = seed_spread(points)["sd_log"]
    if at_top.size < 2:
        return {"fraction": top, "log_ratio": None, "noise_sd_log": noise_sd_log,
                "separated": False, "reason": f"one width at fraction {top:g}"}  # fmt: skip
    log_ratio = float(np.log(at_top.iloc[0] / at_top.iloc[-1]))
    if noise_sd_log is None:
        return {"fraction": top, "log_ratio": log_ratio, "noise_sd_log": None,
                "separated": log_ratio > 0, "reason": None if log_ratio > 0 else
                "loss does not fall from the smallest to the largest width"}  # fmt: skip
    separated = log_ratio > SEPARATION_SDS * noise_sd_log
    reason = None if separated else (
        f"widths do not separate at fraction {top:g}: log L(N_min) / L(N_max) = "
        f"{log_ratio:.3g} <= {SEPARATION_SDS:g} x noise sd {noise_sd_log:.3g}"
    )  # fmt: skip
    return {"fraction": top, "log_ratio": log_ratio, "noise_sd_log": float(noise_sd_log),
            "separated": bool(separated), "reason": reason}  # fmt: skip


def choose_e_mode_per_resample(free: dict, e_zero: dict, margin: float = E_MODE_MARGIN) -> dict:
    """Repeat :func:`choose_e_mode` inside every bootstrap resample (selection bootstrapped).

    Parameters
    ----------
    free, e_zero : dict
        Fits with ``samples``, ``samples_resample`` (index of the resample each sample
        refits) and ``samples_rss_log``; ``n_points`` and ``n_params_fitted``.

    Returns
    -------
    dict
        ``samples`` ({name: list}: per common resample, the sample of the fit that
        resample chooses), ``share_free`` (fraction of resamples choosing the free
        fit) and ``n_resamples``. Empty samples when no resample is common.
    """
    n = int(free["n_points"])
    k_free, k_zero = int(free["n_params_fitted"]), int(e_zero["n_params_fitted"])
    idx_f = {int(b): i for i, b in enumerate(free.get("samples_resample", []))}
    idx_z = {int(b): i for i, b in enumerate(e_zero.get("samples_resample", []))}
    common = sorted(set(idx_f) & set(idx_z))
    names = list(free["samples"])
    out = {name: [] for name in names}
    n_free = 0
    for b in common:
        i, j = idx_f[b], idx_z[b]
        a_free = aicc(free["samples_rss_log"][i], n, k_free)
        a_zero = aicc(e_zero["samples_rss_log"][j], n, k_zero)
        use_free = a_zero - a_free > margin
        n_free += use_free
        src, pos = (free, i) if use_free else (e_zero, j)
        for name in names:
            out[name].append(src["samples"][name][pos])
    return {
        "samples": out,
        "share_free": n_free / len(common) if common else None,
        "n_resamples": len(common),
    }
