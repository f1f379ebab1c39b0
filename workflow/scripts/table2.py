"""Table 2: the architectures' symmetry class, tensor order and body order."""

from pipeline.logs import configure_logging
from pipeline.tables import write_table2


def main(smk):
    configure_logging(smk.log[0])
    write_table2(smk.params.archs, smk.output[0])


main(snakemake)  # noqa: F821
