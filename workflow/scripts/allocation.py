"""Compute-optimal N, D and loss at the configured budgets, with 95 % intervals (eq. 6-7)."""

from pipeline.logs import configure_logging
from pipeline.scaling.tables import write_tables


def main(smk):
    configure_logging(smk.log[0])
    write_tables(smk.input.fits, allocation_csv=smk.output[0], budgets_pflops=smk.params.budgets)


main(snakemake)  # noqa: F821
