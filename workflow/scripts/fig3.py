"""Figure 3: every learning curve against compute and hours, with the Pareto frontiers."""

from pipeline.logs import configure_logging
from pipeline.plots.figures import plot_fig3
from pipeline.scaling.frontier import add_compute, load_curves
from pipeline.workflow_io import read_frontiers, read_kappas, run_dirs


def main(smk):
    configure_logging(smk.log[0])
    curves = add_compute(load_curves(run_dirs(smk.input.runs)), read_kappas(smk.input.kappas))
    frontiers = read_frontiers(smk.input.frontiers)
    plot_fig3(curves, frontiers["flops"], frontiers["hours"], smk.output[0])


main(snakemake)  # noqa: F821
