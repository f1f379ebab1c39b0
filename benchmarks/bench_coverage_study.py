"""Do Table 1's own intervals cover? A simulation at each family's fitted law and design.

For every family of a finished study (``results/fits/{arch}.json`` and its run
folders), writes synthetic studies with the same ladder, fractions, seeds, shared or
separate passes and atoms per pass, whose truth is the family's eq. (5) fit (the one
Table 1 uses) and whose per-pass noise is the larger of its measured seed spread and
eq. 5's rms log residual (which holds the law's misfit too), sends each through the
fit stage with the study's settings, and prints coverage and median width of the
95 % intervals of alpha, beta, eq. 7 gamma_c and eq. 4 gamma (against the true
gamma_c, and against the frontier slope of the same design without noise), the share
of replicates identified, and coverage among the identified ones (what Table 1 would
print). ``--design`` asks the same of a changed design (more seeds, other rungs)
before training it.

    OMP_NUM_THREADS=1 python benchmarks/bench_coverage_study.py --results results \\
        --archs mpnn egnn --replicates 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.scaling.frontier import load_curves
from pipeline.scaling.synthetic import (
    coverage_replicate,
    coverage_table,
    study_design,
    study_truth,
)

PARAMS = (
    "alpha",
    "beta",
    "gamma_c",
    "gamma_eq4",
    "gamma_eq4_design",
    "gamma_eq4_bc",
    "gamma_eq4_bc_design",
)
COLUMNS = ["coverage", "median_width", "median_bias", "identified", "coverage_if_identified"]


def family_rows(results: Path, arch: str, args) -> tuple[list[dict], dict, dict]:
    fit = json.loads((results / "fits" / f"{arch}.json").read_text())
    dirs = sorted(p.parent for p in (results / "runs" / arch).glob("*/*/seed*/meta.json"))
    design = {**study_design(load_curves(dirs)), **json.loads(args.design)}
    truth = study_truth(fit, ar_sigma=args.ar_sigma)
    noise = {k: truth.pop(k) for k in ("run_offset", "ar_sigma")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.first_replicate, args.first_replicate + args.replicates):
            # the layout key names a pass layout; the design's seeds and ladder replace its own
            rows += coverage_replicate(
                tmp, design["layout"], ["run"], rep, n_boot=args.n_boot, truth=truth,
                full_top_k=args.full_top_k, ar_rho=args.ar_rho, **noise,
                **{k: v for k, v in design.items() if k != "layout"},
            )  # fmt: skip
    return rows, design, {**truth, **noise}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--archs", nargs="+", default=["mpnn", "egnn", "esen", "gemnet_oc"])
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--first-replicate", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=100)
    parser.add_argument("--full-top-k", type=int, default=40)
    parser.add_argument("--ar-sigma", type=float, default=0.01, help="noise along a curve")
    parser.add_argument("--ar-rho", type=float, default=0.8)
    parser.add_argument(
        "--design", default="{}",
        help='JSON replacing parts of the measured design, e.g. \'{"seed_widths": null}\' '
        "(a second seed at every rung): what would a changed study give?",
    )  # fmt: skip
    parser.add_argument("--csv", help="also write the per-replicate rows here")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    all_rows = []
    for arch in args.archs:
        start = time.perf_counter()
        rows, design, truth = family_rows(args.results, arch, args)
        all_rows += [{"arch": arch, **r} for r in rows]
        gamma_c = truth["alpha"] * truth["beta"] / (truth["alpha"] + truth["beta"])
        slope = rows[0]["gamma_eq4_design_true"]
        sys.stdout.write(
            f"\n== {arch}: {args.replicates} replicates, n_boot {args.n_boot}, "
            f"{time.perf_counter() - start:.0f} s\n"
            f"truth (Table 1's eq. 5 fit): "
            + ", ".join(f"{k} {v:.4g}" for k, v in truth.items())
            + f", gamma_c {gamma_c:.4g}; AR(1) rho {args.ar_rho}\n"
            f"design: {len(design['n_params'])} widths (N {design['n_params'][0]}-"
            f"{design['n_params'][-1]}), fractions {design['fractions']}, seeds "
            f"{design['seeds']} (later seeds at N {design['seed_widths']}), "
            f"{design['layout']} passes, {design['d_max']:.4g} atoms per whole pass\n"
            f"eq. 4 frontier slope of this design without noise {slope:.4g} "
            f"(the discrete ladder's bias against gamma_c: {slope - gamma_c:+.4f})\n"
        )
        table = coverage_table(rows).set_index("param").loc[list(PARAMS), COLUMNS]
        sys.stdout.write(table.round(3).to_string() + "\n")
        df = pd.DataFrame(rows)
        shift = df[[f"rung_shift_{p}" for p in ("alpha", "beta", "gamma_c")]].max(axis=1)
        sys.stdout.write(
            "rung jackknife (eq. 5 refitted without one rung): the largest move, median "
            f"{shift.median():.2f}, 90th percentile {shift.quantile(0.9):.2f} interval "
            "half-widths\n"
        )
    if args.csv:
        pd.DataFrame(all_rows).to_csv(args.csv, index=False)
    sys.stdout.write(
        "\nfits as the simulation study's (bench_coverage.py): whole passes resampled, "
        "e_mode auto, measured compute; Table 1 itself uses config['fit'] (n_boot 1000)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
