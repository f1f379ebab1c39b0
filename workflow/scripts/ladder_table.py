"""Tables 3-6: the paper's ladder of one family, instantiated, with measured counts."""

import yaml

from pipeline.logs import configure_logging
from pipeline.tables import ladder_csv


def main(smk):
    configure_logging(smk.log[0])
    section = yaml.safe_load(open(smk.input[0]))["archs"][smk.params.arch]
    ladder_csv(
        smk.params.arch,
        section["widths"],
        section.get("paper_n_params"),
        section.get("hparams", {}),
        smk.output[0],
    )


main(snakemake)  # noqa: F821
