"""Figure 1: loss-compute frontiers in PFLOPs and GPU-hours with the fitted eq. 4."""

from pipeline.logs import configure_logging
from pipeline.plots.figures import plot_fig1
from pipeline.scaling.report import read_fits
from pipeline.workflow_io import read_frontiers


def main(smk):
    configure_logging(smk.log[0])
    frontiers = read_frontiers(smk.input.frontiers)
    plot_fig1(frontiers["flops"], frontiers["hours"], read_fits(smk.input.fits), smk.output[0])


main(snakemake)  # noqa: F821
