"""Figure 5: eq. 5 fits, loss against D (top) and against N (bottom) per arch."""

from pipeline.logs import configure_logging
from pipeline.plots.figures import plot_fig5
from pipeline.scaling.frontier import load_curves, sum_law_points
from pipeline.scaling.report import read_fits
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    curves = load_curves(run_dirs(smk.input.runs))
    points = {arch: sum_law_points(group) for arch, group in curves.groupby("arch", sort=False)}
    plot_fig5(points, read_fits(smk.input.fits), smk.output[0])


main(snakemake)  # noqa: F821
