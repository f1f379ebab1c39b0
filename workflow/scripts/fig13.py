"""Figure 13: test-time group averaging (eq. 23) and the eq. 24 fits."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig13


def main(smk):
    configure_logging(smk.log[0])
    make_fig13(list(smk.input), smk.output[0], fit=getattr(smk.params, "fit", None))


main(snakemake)  # noqa: F821
