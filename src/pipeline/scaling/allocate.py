"""Compute-optimal allocation from fitted scaling laws, on the command line.

Given a training-compute budget, which model size N (parameters) and data size D
(atoms seen), and what validation loss, does eq. (5) predict for each architecture,
with 95 % bootstrap intervals? Reads the ``results/fits/{arch}.json`` files written
by the fit stage.

Usage::

    python -m pipeline.scaling.allocate --fits results/fits --budget 1e3
    python -m pipeline.scaling.allocate --fits results/fits/esen.json --budget 1 10 100 \\
        --out allocation.csv

Budgets are in PFLOPs of training compute (C = 3 kappa N D). Rows flagged
``extrapolated`` lie outside the compute range of the fitted frontier: treat them
with the caution any extrapolation deserves (see the ``extrapolation`` check in the
fit JSON for how well the law predicted held-out points).
"""

from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd

from pipeline.scaling.tables import allocation, read_fits


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, print the allocation table (and write it with ``--out``)."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.scaling.allocate",
        description="Compute-optimal N, D and loss for a compute budget, per architecture.",
    )
    parser.add_argument(
        "--fits", nargs="+", required=True, help="fit JSON files or folders (results/fits)"
    )
    parser.add_argument(
        "--budget", nargs="+", type=float, required=True, help="training compute in PFLOPs"
    )
    parser.add_argument("--arch", nargs="*", help="only these architectures")
    parser.add_argument("--out", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fits = read_fits(args.fits)
    if args.arch:
        missing = sorted(set(args.arch) - set(fits))
        if missing:
            parser.error(f"no fit for arch(s) {missing}; have {sorted(fits)}")
        fits = {k: v for k, v in fits.items() if k in args.arch}
    table = allocation(fits, args.budget)
    if args.out:
        table.to_csv(args.out, index=False)
    show = pd.DataFrame(
        {
            "arch": table["arch"],
            "budget [PFLOPs]": table["budget_pflops"].map("{:.3g}".format),
            "N* [params]": _fmt(table, "n_opt"),
            "D* [atoms]": _fmt(table, "d_opt"),
            "loss": _fmt(table, "loss", "{:.4g}"),
            "eq5 fit": table["eq5_fit"],
            "extrapolated": table["extrapolated"],
            "note": table["note"],
        }
    )
    sys.stdout.write(show.to_string(index=False) + "\n")
    return 0


def _fmt(t: pd.DataFrame, key: str, f: str = "{:.3g}") -> pd.Series:
    return pd.Series(
        [
            f"{f.format(v)} [{f.format(lo)}, {f.format(hi)}]"
            for v, lo, hi in zip(t[key], t[f"{key}_lo"], t[f"{key}_hi"], strict=True)
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
