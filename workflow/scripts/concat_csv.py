"""Concatenate CSV files with the same columns."""

import pandas as pd

from pipeline.logs import configure_logging


def main(smk):
    configure_logging(smk.log[0])
    pd.concat([pd.read_csv(path) for path in smk.input]).to_csv(smk.output[0], index=False)


main(snakemake)  # noqa: F821
