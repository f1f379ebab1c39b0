"""Figure 6: compute-optimal N* and D* against compute (eq. 6-7) per arch."""

from pipeline.logs import configure_logging
from pipeline.plots.main import make_fig6


def main(smk):
    configure_logging(smk.log[0])
    make_fig6(smk.input.fits, smk.output[0])


main(snakemake)  # noqa: F821
