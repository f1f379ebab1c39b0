"""Figure 2: measured forward FLOPs per (N x atom) per width and batch, and the fitted kappa."""

from pipeline.logs import configure_logging
from pipeline.plots.main import make_fig2


def main(smk):
    configure_logging(smk.log[0])
    make_fig2(smk.input.points, smk.input.kappas, smk.output[0])


main(snakemake)  # noqa: F821
