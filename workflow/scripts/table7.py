"""Table 7: eq. 5 parameters (log10 A, log10 B, alpha, beta, E) with 95 % intervals."""

from pipeline.logs import configure_logging
from pipeline.scaling.tables import read_fits, table7


def main(smk):
    configure_logging(smk.log[0])
    table7(read_fits(smk.input.fits)).to_csv(smk.output[0], index=False)


main(snakemake)  # noqa: F821
