"""Scaling analysis: kappa, Pareto frontiers, robust power-law fits, compute-optimal allocation.

Needs only NumPy, SciPy and pandas; reads result files, never Snakemake.

Main entry points::

    fit_power_law(compute, loss, n_boot=1000, seed=0)      # eq. 4, L = F C^-gamma
    fit_sum_law(n, d, loss, n_boot=1000, seed=0)           # eq. 5, L = E + A N^-a + B D^-b
    compute_optimal(A, B, alpha, beta, kappa)              # eq. 7, F_c for C in PFLOPs
"""

from pipeline.scaling.fit import compute_optimal, fit_power_law, fit_sum_law, optimal_allocation
from pipeline.scaling.frontier import load_curves, pareto_frontier, sum_law_points
from pipeline.scaling.kappa import fit_kappa, kappa_table
from pipeline.scaling.report import allocation, fit_arch, read_fits, table1, table7

__all__ = [
    "allocation",
    "compute_optimal",
    "fit_arch",
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
]
