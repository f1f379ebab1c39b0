"""Synthetic learning curves that follow eq. (5) exactly (plus noise), for tests and benchmarks.

:func:`write_synthetic_study` writes whole studies in the run-folder format (shared
fraction passes or separate runs, several seeds, per-pass offsets and AR(1) noise
along each curve): the simulation study of the bootstrap's coverage
(``benchmarks/bench_coverage.py``) runs them through the real fit path.

In :func:`write_synthetic_runs`, each run (N, fraction r) sees ``D_t`` atoms at its
evaluations, up to ``r * d_max``; its validation loss is
``(E + A N**-alpha + B D_t**-beta) * exp(eps)`` with ``eps ~ Normal(0, noise)``.
Wall-clock grows like N * D_t (plus an overhead), so the hours frontier is a distorted
copy of the FLOPs one, as in the paper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def write_synthetic_runs(
    root: str | Path,
    arch: str = "synth",
    *,
    n_params: Sequence[int] = (20_000, 60_000, 200_000, 600_000, 2_000_000),
    fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.7, 1.0),
    d_max: float = 5e7,
    E: float = 0.0,
    A: float = 10**1.6,
    B: float = 10**2.7,
    alpha: float = 0.39,
    beta: float = 0.39,
    noise: float = 0.01,
    n_evals: int = 20,
    seed: int = 0,
) -> list[Path]:
    """Write ``root/{arch}/{N}/{fraction}/curve.csv`` and ``meta.json`` for a grid of runs.

    Parameters
    ----------
    root : path
        Output folder.
    arch : str
        Architecture name written to meta.json.
    n_params : sequence of int
        Model sizes N.
    fractions : sequence of float
        Data fractions r; a run sees ``r * d_max`` atoms.
    d_max : float
        Atoms of the full training set.
    E, A, B, alpha, beta : float
        Eq. (5) truth.
    noise : float
        Standard deviation of the log-normal noise on each loss.
    n_evals : int
        Evaluations per run (evenly spaced in atoms).
    seed : int
        Noise seed.

    Returns
    -------
    list of Path
        The run folders.
    """
    rng = np.random.default_rng(seed)
    dirs = []
    for n in n_params:
        for r in fractions:
            d_run = r * d_max
            atoms = np.linspace(d_run / n_evals, d_run, n_evals)
            loss = (E + A * n**-alpha + B * atoms**-beta) * np.exp(rng.normal(0, noise, n_evals))
            train_s = 1e-9 * n * atoms + 2e-5 * atoms  # compute-bound + per-atom overhead
            eval_s = np.cumsum(np.full(n_evals, 1e-4 * n**0.5))
            step = np.arange(1, n_evals + 1) * 100
            df = pd.DataFrame(
                {
                    "step": step,
                    "epoch": np.zeros(n_evals, dtype=int),
                    "molecules_seen": (atoms / 20).astype(np.int64),
                    "atoms_seen": atoms.astype(np.int64),
                    "train_seconds": train_s,
                    "eval_seconds": eval_s,
                    "val_loss": loss,
                    "val_energy_loss": 0.3 * loss,
                    "val_force_loss": 0.7 * loss,
                    "train_loss": loss * 1.05,
                }
            )
            rd = Path(root) / arch / str(n) / f"{r:g}"
            rd.mkdir(parents=True, exist_ok=True)
            df.to_csv(rd / "curve.csv", index=False)
            meta = {
                "arch": arch, "width": int(n), "fraction": float(r), "n_params": int(n),
                "variant": "base", "forward_flops_per_atom_counted": 1.6 * n,
                "forward_flops_per_atom_total": 2.0 * n, "forward_passes_per_step": 1,
                "synthetic": {"E": E, "A": A, "B": B, "alpha": alpha,
                              "beta": beta, "noise": noise, "seed": seed},
            }  # fmt: skip
            (rd / "meta.json").write_text(json.dumps(meta, indent=1))
            dirs.append(rd)
    return dirs


LAYOUTS = ("shared", "separate")


def write_synthetic_study(
    root: str | Path,
    arch: str = "synth",
    *,
    layout: str = "shared",
    n_params: Sequence[int] = (20_000, 60_000, 200_000, 600_000, 2_000_000, 6_000_000),
    fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.7, 1.0),
    seeds: Sequence[int] = (0,),
    seed_widths: Sequence[int] | None = None,
    d_max: float = 5e7,
    E: float = 0.0,
    A: float = 10**1.6,
    B: float = 10**2.7,
    alpha: float = 0.40,
    beta: float = 0.35,
    run_offset: float = 0.03,
    ar_sigma: float = 0.01,
    ar_rho: float = 0.8,
    n_evals: int = 16,
    kappa: float = 2.0,
    breakdown: Mapping[float, float] | None = None,
    random_state: int = 0,
) -> list[Path]:
    """Write a study in the run-folder format with a known eq. (5) law and correlated noise.

    The loss of a training pass at its evaluations D_t is
    ``(E + A N**-alpha + B D_t**-beta) * exp(u + e_t)``: ``u ~ Normal(0, run_offset)``
    is the pass's offset (its seed) and ``e_t`` an AR(1) series along the curve,
    ``e_t = ar_rho e_{t-1} + sqrt(1 - ar_rho**2) ar_sigma z_t`` (stationary sd
    ``ar_sigma``). Folders are ``root/{arch}/{N}/{fraction}/seed{seed}/``.

    Parameters
    ----------
    layout : {"shared", "separate"}
        ``"shared"``: one pass per (N, seed) over ``d_max`` atoms writes every
        fraction's folder (nested prefixes of one curve, one ``run_id``).
        ``"separate"``: every (N, fraction, seed) is its own pass.
    n_params : sequence of int
        The width ladder, as parameter counts N.
    fractions : sequence of float
        Data fractions r; a fraction-r run ends at ``r * d_max`` atoms.
    seeds : sequence of int
        Replicate passes (contract 1).
    seed_widths : sequence of int, optional
        Seeds after the first are trained only at these N (replicate a rung alone).
    E, A, B, alpha, beta : float
        Eq. (5) truth (D in atoms).
    run_offset, ar_sigma, ar_rho : float
        Noise: per-pass log offset sd, AR(1) sd and lag-1 correlation.
    n_evals : int
        Evaluations of the longest curve (geometric in atoms); every fraction's end
        is an evaluation too.
    kappa : float
        Forward FLOPs per parameter per atom written to meta.json as the measured
        ``forward_flops_per_atom_total`` (= kappa N; counted = 0.8 of it).
    breakdown : mapping, optional
        Rungs that do not follow the law, ``{N: factor}``: every pass of that N has its
        loss multiplied by ``factor`` (a model that breaks down, e.g. 1.4 at the
        smallest N: a cliff below the data-limited level).
    random_state : int
        Seed of the noise generator.

    Returns
    -------
    list of Path
        The run folders.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rng = np.random.default_rng(random_state)
    fracs = sorted(float(r) for r in fractions)
    truth = {"E": E, "A": A, "B": B, "alpha": alpha, "beta": beta,
             "run_offset": run_offset, "ar_sigma": ar_sigma, "ar_rho": ar_rho,
             "layout": layout, "random_state": random_state,
             "breakdown": {str(k): float(v) for k, v in (breakdown or {}).items()}}  # fmt: skip

    def noise(size: int) -> np.ndarray:
        e = np.empty(size)
        e[0] = rng.normal(0.0, ar_sigma)
        innov = rng.normal(0.0, ar_sigma * np.sqrt(1.0 - ar_rho**2), size)
        for t in range(1, size):
            e[t] = ar_rho * e[t - 1] + innov[t]
        return e + rng.normal(0.0, run_offset)

    def atoms_grid(d_end: float, ends: list[float]) -> np.ndarray:
        grid = np.geomspace(d_end / 50.0, d_end, n_evals)
        return np.unique(np.round(np.concatenate([grid, ends])).astype(np.int64))

    dirs = []
    for seed_index, seed in enumerate(seeds):
        for n in n_params:
            if seed_index > 0 and seed_widths is not None and n not in seed_widths:
                continue
            passes = (
                [(fracs, f"base/{arch}/w{n}/seed{seed}")]
                if layout == "shared"
                else [([r], f"base/{arch}/w{n}/f{r:g}/seed{seed}") for r in fracs]
            )
            for pass_fracs, run_id in passes:
                ends = [r * d_max for r in pass_fracs]
                atoms = atoms_grid(max(ends), ends)
                loss = (E + A * n**-alpha + B * atoms**-beta) * np.exp(noise(atoms.size))
                loss *= (breakdown or {}).get(n, 1.0)
                for r in pass_fracs:
                    keep = atoms <= round(r * d_max)
                    dirs.append(
                        _write_run(
                            Path(root) / arch / str(n) / f"{r:g}" / f"seed{seed}",
                            atoms[keep], loss[keep],
                            meta={
                                "arch": arch, "width": int(n), "fraction": r,
                                "n_params": int(n), "variant": "base", "seed": int(seed),
                                "run_id": run_id,
                                "shared_run_fractions": pass_fracs if len(pass_fracs) > 1
                                else None,
                                "forward_flops_per_atom_counted": 0.8 * kappa * n,
                                "forward_flops_per_atom_uncounted_estimate": 0.2 * kappa * n,
                                "forward_flops_per_atom_total": kappa * n,
                                "forward_passes_per_step": 1,
                                "synthetic": truth,
                            },
                        )
                    )  # fmt: skip
    return dirs


def _write_run(folder: Path, atoms: np.ndarray, loss: np.ndarray, meta: dict) -> Path:
    """Write one run folder's curve.csv and meta.json."""
    n = int(meta["n_params"])
    k = atoms.size
    df = pd.DataFrame(
        {
            "step": np.arange(1, k + 1) * 100,
            "epoch": np.zeros(k, dtype=int),
            "molecules_seen": (atoms / 20).astype(np.int64),
            "atoms_seen": atoms.astype(np.int64),
            "train_seconds": 1e-9 * n * atoms + 2e-5 * atoms,
            "eval_seconds": np.cumsum(np.full(k, 1e-4 * n**0.5)),
            "val_loss": loss,
            "val_energy_loss": 0.3 * loss,
            "val_force_loss": 0.7 * loss,
            "train_loss": loss * 1.05,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "curve.csv", index=False)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return folder


#: truth of the simulation study: both terms of eq. (5) matter on the default ladder; E = 0
#: (eq. 7 has L_inf = 0; E > 0 is not identified by one decade of D, see the README)
COVERAGE_TRUTH = {"E": 0.0, "A": 40.0, "B": 91.0, "alpha": 0.40, "beta": 0.35}
_FIVE_RUNGS = {
    "n_params": (20_000, 60_000, 200_000, 600_000, 2_000_000),
    "fractions": (0.1, 0.3, 1.0),
}
#: the simulation study's layouts: (write_synthetic_study layout, seeds, design keywords)
COVERAGE_LAYOUTS = {
    "shared": ("shared", (0,), {}),
    "separate": ("separate", (0,), {}),
    "shared_2seeds": ("shared", (0, 1), {}),
    # the default study's small designs: three rungs (eSEN, GemNet-OC before this
    # version) against six, each on three fractions spanning 4x in D
    "shared_3widths": (
        "shared",
        (0,),
        {"n_params": (20_000, 200_000, 2_000_000), "fractions": (0.25, 0.5, 1.0)},
    ),
    "shared_6widths": (
        "shared",
        (0,),
        {
            "n_params": (20_000, 60_000, 200_000, 600_000, 2_000_000, 6_000_000),
            "fractions": (0.25, 0.5, 1.0),
        },
    ),
    # a rung that breaks down: a study of separate runs with two seeds (the MPNN's kind),
    # and the same and shared_2seeds with a smallest model 40 % above the law (a cliff
    # below the data-limited level, as eSEN's and GemNet-OC's small widths on the demo)
    "separate_2seeds": ("separate", (0, 1), _FIVE_RUNGS),
    "separate_2seeds_cliff": ("separate", (0, 1), {**_FIVE_RUNGS, "breakdown": {20_000: 1.4}}),
    "shared_2seeds_cliff": ("shared", (0, 1), {"breakdown": {20_000: 1.4}}),
}


_DESIGN_SLOPES: dict[str, float] = {}  # design_frontier_slope per (truth, design)


def coverage_replicate(
    root: str | Path,
    layout: str,
    units: Sequence[str],
    random_state: int,
    *,
    n_boot: int = 100,
    truth: dict | None = None,
    full_top_k: int | None = 40,
    **study,
) -> list[dict]:
    """One replicate of the simulation study: write a study, fit it with each bootstrap unit.

    Parameters
    ----------
    root : path
        Scratch folder (the study is written to ``root/{layout}_{random_state}``).
    layout : str
        A key of :data:`COVERAGE_LAYOUTS`; ``study`` may replace its seeds and ladder
        (e.g. with :func:`study_design`'s, "shared" or "separate" naming the passes).
    units : sequence of str
        Bootstrap units to compare (``"run"``, ``"point"``, ``"run_point"``).
    random_state : int
        Seed of the study's noise (the bootstrap seed is fixed at 0).
    n_boot : int
        Bootstrap resamples per fit.
    truth : dict, optional
        Eq. (5) truth (default :data:`COVERAGE_TRUTH`).
    full_top_k : int, optional
        Starts of the full-data fits (see :func:`pipeline.scaling.fit_arch`).
    **study
        Further keywords of :func:`write_synthetic_study` (noise, ladder ...).

    Returns
    -------
    list of dict
        One per unit: ``layout, unit, replicate, eq5_used``, ``identified_eq5/7``,
        ``rung_shift_<p>`` (the rung jackknife's largest move of alpha, beta, gamma_c in
        half-widths of its interval; NaN when unchecked) and for
        each of ``alpha, beta, E, gamma_c, gamma_eq4``: estimate ``<p>``, ``<p>_lo``,
        ``<p>_hi`` and ``<p>_true``. Eq. 4's gamma is compared with gamma_c
        (``gamma_eq4``) and with the frontier slope of the same design without noise
        (``gamma_eq4_design``, :func:`design_frontier_slope`), the value the frontier
        fit estimates: their difference is the discrete ladder's bias. ``_bc``: the
        same with eq. 4's bias-corrected interval instead of its percentile one.
    """
    from pipeline.scaling.fits import fit_arch
    from pipeline.scaling.frontier import load_curves

    t = {**COVERAGE_TRUTH, **(truth or {})}
    kind, seeds, design = COVERAGE_LAYOUTS[layout]
    design = {"layout": kind, "seeds": seeds, **design, **study}
    folder = Path(root) / f"{layout}_{random_state}"
    dirs = write_synthetic_study(folder, random_state=random_state, **t, **design)
    curves = load_curves(dirs)
    gamma_c = t["alpha"] * t["beta"] / (t["alpha"] + t["beta"])
    # one noise-free study per design, not per replicate: the slope does not depend on it
    key = json.dumps([t, design], sort_keys=True, default=float)
    if key not in _DESIGN_SLOPES:
        _DESIGN_SLOPES[key] = design_frontier_slope(folder / "noise_free", t, design)
    slope = _DESIGN_SLOPES[key]
    rows = []
    for unit in units:
        fit = fit_arch(
            curves, 2.0, n_boot, 0, unit=unit, compute="measured", flops="total",
            extrapolation=False, full_top_k=full_top_k,
        )  # fmt: skip
        s = fit["eq5_free"] if fit["eq5_used"] == "free" else fit["eq5_e_zero"]
        row = {"layout": layout, "unit": unit, "replicate": random_state,
               "eq5_used": fit["eq5_used"], "identified_eq7": fit["eq7"]["identified"],
               "identified_eq5": s["identified"],
               "identified_eq4": fit["eq4_flops"]["identified"],
               "boot_failed_fraction": s["n_boot_failed"] / max(s["n_boot"] or 1, 1)}  # fmt: skip
        # the rung jackknife: how far the estimates move with one rung left out (the fit
        # stage's own numbers, None when it did not run)
        moves = {**(s.get("rung_jackknife") or {}).get("max_shift", {}),
                 "gamma_c": fit["eq7"].get("rung_max_shift")}  # fmt: skip
        for name in ("alpha", "beta", "gamma_c"):
            row[f"rung_shift_{name}"] = np.nan if moves.get(name) is None else moves[name]
        for name, src, key, true in (
            ("alpha", s, "alpha", t["alpha"]),
            ("beta", s, "beta", t["beta"]),
            ("E", s, "E", t["E"]),
            ("gamma_c", fit["eq7"], "gamma_c", gamma_c),
            ("gamma_eq4", fit["eq4_flops"], "gamma", gamma_c),
            ("gamma_eq4_design", fit["eq4_flops"], "gamma", slope),
            ("gamma_eq4_bc", fit["eq4_flops"], "gamma", gamma_c),
            ("gamma_eq4_bc_design", fit["eq4_flops"], "gamma", slope),
        ):
            lo, hi = src["ci_bias_corrected" if "_bc" in name else "ci"][key]
            row.update({name: src[key], f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_true": true})
        rows.append(row)
    return rows


def design_frontier_slope(root: str | Path, truth: dict, design: dict) -> float:
    """Eq. 4's gamma on a noise-free study of this law and design (measured compute).

    On a discrete ladder the frontier is the lower envelope of a few curves, not the
    compute-optimal curve of eq. 7, so its slope differs from gamma_c even without
    noise (and with E > 0 the frontier is no power law at all). This slope is what
    eq. 4 estimates; its interval should cover it.
    """
    from pipeline.scaling.fit import fit_power_law
    from pipeline.scaling.frontier import load_curves, pareto_frontier

    quiet = {**design, "run_offset": 0.0, "ar_sigma": 0.0}
    curves = load_curves(write_synthetic_study(root, **truth, **quiet))
    front = pareto_frontier(curves, 2.0, "flops", compute="measured", flops="total")
    return float(fit_power_law(front["compute_pflops"], front["val_loss"], n_boot=0)["gamma"])


def study_design(curves: pd.DataFrame) -> dict:
    """The design of a measured study, as keywords of :func:`write_synthetic_study`.

    ``curves`` is one family's :func:`pipeline.scaling.load_curves` (base variant):
    its ladder (parameter counts), fractions, seeds and the rungs the later seeds
    replicate, whether the fractions share a pass, the atoms of a whole pass over the
    largest fraction (``d_max``, repeats included) and the evaluations per curve.
    """
    ends = curves.groupby(["n_params", "fraction", "seed"])["atoms_seen"].max()
    seeds = sorted(int(x) for x in curves["seed"].unique())
    later = curves.loc[curves["seed"] != seeds[0], "n_params"]
    fracs = sorted(float(r) for r in curves["fraction"].unique())
    cells = len(ends)
    evals = curves.groupby("run_id").size()
    return {
        "n_params": sorted(int(n) for n in curves["n_params"].unique()),
        "fractions": fracs,
        "seeds": seeds,
        "seed_widths": sorted(int(n) for n in later.unique()) if len(seeds) > 1 else None,
        "layout": "shared" if curves["run_id"].nunique() < cells else "separate",
        "d_max": float(ends.xs(fracs[-1], level="fraction").median() / fracs[-1]),
        "n_evals": int(evals.max()),
    }


def study_truth(fit: dict, ar_sigma: float = 0.01) -> dict:
    """Eq. (5) truth and noise of a simulation at a fitted study's own estimates.

    The truth is the fit Table 1 uses (``eq5_used``); the per-pass offset is the
    larger of the measured seed spread (where seeds are replicated) and eq. 5's rms
    log residual: the residual also holds the law's misfit, which the real fit sees
    and a seed spread does not (the MPNN's seeds differ by 0.9 %, its points scatter
    4 % about eq. 5), so the smaller one would make the simulated intervals too
    narrow. ``ar_sigma`` is the noise along a curve, not measured here.
    """
    s5 = fit["eq5_" + fit["eq5_used"]]
    spread = (fit.get("seed_spread") or {}).get("sd_log")
    rms = math.sqrt(s5["rss_log"] / s5["n_points"])
    return {
        **{k: float(s5[k]) for k in ("E", "A", "B", "alpha", "beta")},
        "run_offset": max(float(spread or 0.0), rms),
        "ar_sigma": ar_sigma,
    }


#: the row column saying whether the law a parameter belongs to was identified
IDENTIFIED_BY = {"alpha": "identified_eq5", "beta": "identified_eq5", "E": "identified_eq5",
                 "gamma_c": "identified_eq7", "gamma_eq4": "identified_eq4",
                 "gamma_eq4_design": "identified_eq4", "gamma_eq4_bc": "identified_eq4",
                 "gamma_eq4_bc_design": "identified_eq4"}  # fmt: skip


def coverage_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Coverage and median width of the 95 % intervals per (layout, unit, parameter).

    Returns
    -------
    DataFrame
        ``layout, unit, param, coverage`` (fraction of replicates whose interval holds
        the truth), ``median_width``, ``median_bias`` (estimate - truth), ``n``,
        ``identified`` (share of replicates whose law was identified: what Table 1
        would print as a number) and ``coverage_if_identified`` (coverage among them);
        both NaN for rows without the identification column.
    """
    df = pd.DataFrame(rows)
    out = []
    for (layout, unit), g in df.groupby(["layout", "unit"], sort=False):
        for p, by in IDENTIFIED_BY.items():
            lo = g[f"{p}_lo"].astype(float).to_numpy()
            hi = g[f"{p}_hi"].astype(float).to_numpy()
            true = g[f"{p}_true"].astype(float).to_numpy()
            est = g[p].astype(float).to_numpy()
            ok = np.isfinite(lo) & np.isfinite(hi)
            inside = ok & (lo <= true) & (true <= hi)
            ident = g[by].astype(bool).to_numpy() if by in g else None
            out.append(
                {
                    "layout": layout, "unit": unit, "param": p,
                    "coverage": float(inside.mean()) if len(g) else float("nan"),
                    "median_width": float(np.median(hi[ok] - lo[ok])) if ok.any() else np.nan,
                    "median_bias": float(np.median(est - true)),
                    "n": int(len(g)),
                    "identified": float(ident.mean()) if ident is not None else np.nan,
                    "coverage_if_identified": float(inside[ident].mean())
                    if ident is not None and ident.any() else np.nan,
                }
            )  # fmt: skip
    return pd.DataFrame(out)
