"""Figure 5: eq. 5 fits, loss against D (top) and against N (bottom) per arch."""

from pipeline.logs import configure_logging
from pipeline.plots.main import make_fig5
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    make_fig5(run_dirs(smk.input.runs), smk.input.fits, smk.output[0], fit=smk.params.fit)


main(snakemake)  # noqa: F821
