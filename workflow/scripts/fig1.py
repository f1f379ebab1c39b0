"""Figure 1: loss-compute frontiers in PFLOPs and GPU-hours with the fitted eq. 4."""

from pathlib import Path

import pandas as pd

from pipeline.logs import configure_logging
from pipeline.plots.figures import plot_fig1
from pipeline.scaling.report import read_fits


def main(smk):
    configure_logging(smk.log[0])
    frontiers = {"flops": {}, "hours": {}}
    for path in smk.input.frontiers:
        arch, x = Path(path).stem.rsplit("_", 1)
        frontiers[x][arch] = pd.read_csv(path)
    plot_fig1(frontiers["flops"], frontiers["hours"], read_fits(smk.input.fits), smk.output[0])


main(snakemake)  # noqa: F821
