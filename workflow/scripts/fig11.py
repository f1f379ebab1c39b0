"""Figure 11: MC-EGNN validation loss against the number of vector channels E."""

from pipeline.logs import configure_logging
from pipeline.plots.sweeps import make_fig11
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    make_fig11(run_dirs(smk.input.runs), smk.output[0])


main(snakemake)  # noqa: F821
