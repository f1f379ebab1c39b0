"""Scaling analysis: kappa, Pareto frontiers, robust power-law fits, compute-optimal allocation.

Needs only NumPy, SciPy and pandas; reads result files, never Snakemake.

Main entry points::

    fit_power_law(compute, loss, n_boot=1000, seed=0)      # eq. 4, L = F C^-gamma
    fit_sum_law(n, d, loss, n_boot=1000, seed=0)           # eq. 5, L = E + A N^-a + B D^-b
    compute_optimal(A, B, alpha, beta, kappa)              # eq. 7, F_c for C in PFLOPs
    describe_estimate(fit, "alpha")                        # "0.31 [0.25, 0.38]" or
                                                           # "not identified (<reason>)"

Modules: ``fit`` (the estimators and the bootstrap), ``frontier`` (curves, frontiers,
eq. 5 points), ``kappa`` (eq. 3), ``identify`` (item-6 criteria, e_mode), ``fits`` (the
fit stage: ``results/fits/{arch}.json``), ``tables`` (Tables 1, 7, allocation),
``synthetic`` (simulated studies), ``allocate`` (the command line).
"""

from pipeline.scaling.fit import compute_optimal, fit_power_law, fit_sum_law, optimal_allocation
from pipeline.scaling.fits import fit_arch, fit_options, write_fit
from pipeline.scaling.frontier import load_curves, pareto_frontier, sum_law_points
from pipeline.scaling.identify import choose_e_mode, describe_estimate
from pipeline.scaling.kappa import fit_kappa, kappa_table
from pipeline.scaling.tables import allocation, read_fits, table1, table7, write_tables

__all__ = [
    "allocation",
    "choose_e_mode",
    "compute_optimal",
    "describe_estimate",
    "fit_arch",
    "fit_options",
    "fit_kappa",
    "fit_power_law",
    "fit_sum_law",
    "kappa_table",
    "load_curves",
    "optimal_allocation",
    "pareto_frontier",
    "read_fits",
    "sum_law_points",
    "table1",
    "table7",
    "write_fit",
    "write_tables",
]
