"""Figure 1: loss-compute frontiers in PFLOPs and GPU-hours with the fitted eq. 4."""

from pipeline.logs import configure_logging
from pipeline.plots.main import make_fig1


def main(smk):
    configure_logging(smk.log[0])
    make_fig1(smk.input.frontiers, smk.input.fits, smk.output[0])


main(snakemake)  # noqa: F821
