"""Train one (arch, width, fraction) model; see pipeline.train.loop."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.train.loop import train_job


def main(smk):
    configure_logging(smk.log[0])
    train_job(
        smk.input.train,
        smk.input.val,
        smk.input.stats,
        arch_name=smk.wildcards.arch,
        arch_section=smk.params.arch,
        width=int(smk.wildcards.width),
        fraction_dirs={float(smk.wildcards.fraction): Path(smk.output.curve).parent},
        train_section=smk.params.train,
    )


main(snakemake)  # noqa: F821
