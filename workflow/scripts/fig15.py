"""Figure 15: the MPNN with relative vectors against absolute positions (appendix J)."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig15
from pipeline.workflow_io import runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    make_fig15(runs["base"], runs["absolute_positions"], smk.output[0])


main(snakemake)  # noqa: F821
