"""Figure 2: forward FLOPs against N D per arch, and the fitted kappa."""

import pandas as pd

from pipeline.logs import configure_logging
from pipeline.plots.figures import plot_fig2


def main(smk):
    configure_logging(smk.log[0])
    points = pd.concat([pd.read_csv(path) for path in smk.input.points])
    kappas = pd.concat([pd.read_csv(path) for path in smk.input.kappas])
    plot_fig2(points, kappas, smk.output[0])


main(snakemake)  # noqa: F821
