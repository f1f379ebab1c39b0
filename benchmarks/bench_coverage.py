"""Simulation study: do the fit stage's 95 % bootstrap intervals cover the truth?

Writes synthetic studies in the real run-folder format (a known eq. 5 law, a
per-pass log offset, AR(1) noise along each curve; layouts: shared-fraction passes,
separate runs, shared passes with two seeds), runs each through the real fit path
(:func:`pipeline.scaling.fit_arch`: frontier, eq. 4, eq. 5 with e_mode auto, eq. 7,
measured compute) once per bootstrap unit, and prints coverage and median width
of the 95 % intervals of alpha, beta, E, eq. 7 gamma_c and eq. 4 gamma (the frontier
slope, compared with the true gamma_c and with the slope of the same design without
noise, ``gamma_eq4_design``: their difference is the discrete ladder's bias).

    OMP_NUM_THREADS=1 python benchmarks/bench_coverage.py --replicates 20

In parallel: run halves with ``--first-replicate`` and ``--csv``, then print the
tables of all rows with ``--rows half1.csv half2.csv``.

Timings on the shared 2-core machine: about 3-4 s per replicate and unit at
``--n-boot 100``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import pandas as pd

from pipeline.scaling.synthetic import COVERAGE_LAYOUTS, coverage_replicate, coverage_table

#: rung-jackknife move (interval half-widths) tried as an identification test (README)
SHIFT_BOUND = 1.5


def simulate(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts:
            for rep in range(args.first_replicate, args.first_replicate + args.replicates):
                rows += coverage_replicate(
                    tmp, layout, args.units, rep, n_boot=args.n_boot, truth={"E": args.E},
                    run_offset=args.run_offset, ar_sigma=args.ar_sigma, ar_rho=args.ar_rho,
                )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--first-replicate", type=int, default=0, help="seed of the first")
    parser.add_argument("--n-boot", type=int, default=100)
    parser.add_argument("--layouts", nargs="+", default=list(COVERAGE_LAYOUTS))
    parser.add_argument("--units", nargs="+", default=["point", "run"])
    parser.add_argument("--run-offset", type=float, default=0.03)
    parser.add_argument("--ar-sigma", type=float, default=0.01)
    parser.add_argument("--ar-rho", type=float, default=0.8)
    parser.add_argument("--E", type=float, default=0.0, help="true E (irreducible loss)")
    parser.add_argument("--csv", help="also write the per-replicate rows here")
    parser.add_argument(
        "--rows", nargs="+", metavar="CSV",
        help="summarise rows written by --csv (e.g. halves run in parallel) instead of simulating",
    )  # fmt: skip
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.rows:
        rows = pd.concat([pd.read_csv(f) for f in args.rows]).to_dict("records")
        args.replicates = pd.DataFrame(rows)["replicate"].nunique()
        args.layouts = list(dict.fromkeys(r["layout"] for r in rows))
        args.units = list(dict.fromkeys(r["unit"] for r in rows))
    else:
        rows = simulate(args)
    seconds = time.perf_counter() - start
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)
    table = coverage_table(rows)
    wide = table.pivot_table(
        index=["layout", "unit"], columns="param", values=["coverage", "median_width"],
        sort=False,
    )  # fmt: skip
    pd.set_option("display.width", 200)
    settings = (
        f"rows of {', '.join(args.rows)}"
        if args.rows
        else f"n_boot {args.n_boot}, run offset {args.run_offset}, AR(1) sd {args.ar_sigma} "
        f"rho {args.ar_rho}, E {args.E}: {seconds:.0f} s"
    )
    sys.stdout.write(
        f"{args.replicates} replicates x {len(args.layouts)} layouts x {len(args.units)} units, "
        f"{settings}\n"
    )
    sys.stdout.write(wide.round(3).to_string() + "\n\nmedian bias (estimate - truth):\n")
    bias = table.pivot_table(index=["layout", "unit"], columns="param", values="median_bias",
                             sort=False)  # fmt: skip
    sys.stdout.write(bias.round(4).to_string() + "\n")
    df = pd.DataFrame(rows)
    slopes = df.groupby("layout", sort=False)["gamma_eq4_design_true"].first()
    sys.stdout.write(
        "\neq. 4 frontier slope of each design without noise (gamma_eq4_design's truth; "
        "minus gamma_c: the discrete ladder's bias):\n"
        + slopes.to_frame("slope")
        .assign(bias=slopes - rows[0]["gamma_c_true"])
        .round(4)
        .to_string()
        + "\n"
    )
    used = df.groupby(["layout", "unit"], sort=False)["eq5_used"]
    sys.stdout.write("\neq. 5 fit chosen by e_mode auto:\n")
    sys.stdout.write(used.value_counts().unstack(fill_value=0).to_string() + "\n")
    ident = df.groupby(["layout", "unit"], sort=False)[
        ["identified_eq5", "identified_eq7", "boot_failed_fraction"]
    ].mean()
    sys.stdout.write(
        "\nfraction identified (and mean fraction of failed eq. 5 resamples):\n"
        + ident.round(3).to_string()
        + "\n"
    )
    shift = df.groupby(["layout", "unit"], sort=False)[
        [c for c in df.columns if c.startswith("rung_shift_")]
    ]
    sys.stdout.write(
        "\nrung jackknife, eq. 5 refitted without one rung: the largest move of each estimate "
        "in half-widths of its interval, median and 90th percentile, and the share of "
        f"studies above {SHIFT_BOUND:g} (the bound tried as an identification test):\n"
        + pd.concat(
            {
                "median": shift.median(),
                "q90": shift.quantile(0.9),
                "above": shift.agg(lambda v: float((v > SHIFT_BOUND).mean())),
            },
            axis=1,
        )
        .round(2)
        .to_string()
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
