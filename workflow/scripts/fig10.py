"""Figure 10: batch size / learning rate grid and depth / width sweep at fixed N."""

from pipeline.logs import configure_logging
from pipeline.plots.sweeps import make_fig10
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    make_fig10(run_dirs(smk.input.grid), run_dirs(smk.input.sweep), smk.output[0])


main(snakemake)  # noqa: F821
