"""Table 1: F_c and gamma_c from the frontier fit (eq. 4) and from eq. 5 via eq. 7."""

from pipeline.logs import configure_logging
from pipeline.scaling.tables import read_fits, table1


def main(smk):
    configure_logging(smk.log[0])
    table1(read_fits(smk.input.fits)).to_csv(smk.output[0], index=False)


main(snakemake)  # noqa: F821
