"""Validation loss of one run's model averaged over M Haar rotations (eq. 23)."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.train.group_average import evaluate_group_averaged


def main(smk):
    configure_logging(smk.log[0])
    table = evaluate_group_averaged(
        Path(smk.input.model).parent,
        smk.input.val,
        smk.input.stats,
        smk.params.group_average["rotations"],
        seed=smk.params.seed,
    )
    table.to_csv(smk.output[0], index=False)


main(snakemake)  # noqa: F821
