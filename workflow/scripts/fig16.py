"""Figure 16: learning curves of the vanilla transformer (appendix K)."""

from pipeline.logs import configure_logging
from pipeline.plots.sweeps import make_fig16
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    make_fig16(run_dirs(smk.input.runs), smk.output[0])


main(snakemake)  # noqa: F821
