"""Time the whole fit stage for one synthetic architecture (issue 7: < 30 s on 2 cores).

The stage is what ``results/fits/{arch}.json`` costs: eq. (4) on the FLOPs and hours
frontiers, eq. (5) free and with E = 0, eq. (7) with intervals, and the
extrapolation refits, each with ``--n-boot`` bootstrap resamples (1000 as in the
paper). The baseline, measured in the same run, is the same stage without
bootstrap (full-data fits only), so the printed ratio is the cost of the intervals.

Usage::

    python benchmarks/bench_fit.py [--n-boot 1000] [--jobs 1 2] [--widths 6] [--fractions 10]
        [--units run point]

With ``--units run`` every resample re-extracts the frontier from the drawn passes.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from pipeline.scaling import fit_power_law, fit_sum_law, load_curves
from pipeline.scaling.fits import fit_arch
from pipeline.scaling.frontier import pareto_frontier, sum_law_points
from pipeline.scaling.synthetic import write_synthetic_runs


def _cpu() -> float:
    """CPU seconds of this process and its finished children (worker processes)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn, *args, **kwargs):
    """Wall-clock and CPU seconds of one call (CPU time is what an idle machine would need;
    wall-clock on a machine shared with other jobs can be several times larger)."""
    t0, c0 = time.perf_counter(), _cpu()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, _cpu() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--widths", type=int, default=6, help="model sizes in the ladder")
    ap.add_argument("--fractions", type=int, default=10, help="data fractions per size")
    ap.add_argument("--evals", type=int, default=20, help="evaluations per run")
    ap.add_argument("--units", nargs="+", default=["run", "point"], help="bootstrap units to time")
    args = ap.parse_args()

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        dirs = write_synthetic_runs(
            tmp, "gemnet", n_params=np.geomspace(3e5, 1e7, args.widths).astype(int),
            fractions=np.round(np.linspace(0.1, 1.0, args.fractions), 3), d_max=3e9,
            A=10**2.109, B=10**3.261, alpha=0.524, beta=0.499, n_evals=args.evals, seed=0,
        )  # fmt: skip
        curves = load_curves(dirs)
    kappa = 40.0
    fr = pareto_frontier(curves, kappa, "flops")
    pts = sum_law_points(curves)
    print(f"synthetic arch: {len(pts)} runs, {len(curves)} curve rows, {len(fr)} frontier points")
    print(f"cpus visible: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")

    t_base, c_base, _ = _timed(fit_arch, curves, kappa, n_boot=0)
    print(f"baseline: whole stage without bootstrap: wall {t_base:6.2f} s, cpu {c_base:6.2f} s")
    for name, fn, a in (
        ("eq. 4 (FLOPs frontier)", fit_power_law, (fr["compute_pflops"], fr["val_loss"])),
        ("eq. 5 free", fit_sum_law, (pts["n"], pts["d"], pts["loss"])),
    ):
        t1, c1, _ = _timed(fn, *a, n_boot=0)
        tb, cb, _ = _timed(fn, *a, n_boot=args.n_boot)
        print(
            f"component {name:<24}: single fit wall {t1:6.2f} s (cpu {c1:6.2f}), "
            f"with {args.n_boot} bootstraps wall {tb:6.2f} s (cpu {cb:6.2f})"
        )
    for jobs, unit in ((j, u) for j in args.jobs for u in args.units):
        t, c, fit = _timed(fit_arch, curves, kappa, n_boot=args.n_boot, n_jobs=jobs, unit=unit)
        failed = {k: fit[k]["n_boot_failed"] for k in ("eq4_flops", "eq4_hours", "eq5_free",
                                                       "eq5_e_zero")}  # fmt: skip
        print(
            f"whole stage, {args.n_boot} bootstraps over {unit}s, n_jobs={jobs}: wall {t:6.2f} s, "
            f"cpu {c:6.2f} s (wall ratio to baseline {t / t_base:4.1f}x, "
            f"cpu ratio {c / c_base:4.1f}x); failed bootstraps {failed}"
        )


if __name__ == "__main__":
    main()
