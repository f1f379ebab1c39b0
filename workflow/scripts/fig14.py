"""Figure 14: energy and force validation losses of every run."""

from pipeline.logs import configure_logging
from pipeline.plots.sweeps import make_fig14
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    make_fig14(run_dirs(smk.input.runs), smk.output[0])


main(snakemake)  # noqa: F821
