"""Figure 6: compute-optimal N* and D* against compute (eq. 6-7) per arch."""

from pipeline.logs import configure_logging
from pipeline.plots.figures import plot_fig6
from pipeline.scaling.report import read_fits


def main(smk):
    configure_logging(smk.log[0])
    plot_fig6(read_fits(smk.input.fits), smk.output[0])


main(snakemake)  # noqa: F821
