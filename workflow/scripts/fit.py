"""Eq. 4 on the frontiers, eq. 5 on the (N, D, L) triplets, eq. 7, with bootstrap intervals."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.scaling.report import write_fit


def main(smk):
    configure_logging(smk.log[0])
    write_fit(
        [Path(curve).parent for curve in smk.input.curves],
        smk.input.kappa,
        smk.output[0],
        arch=smk.wildcards.arch,
        frontier_csvs=(smk.input.flops, smk.input.hours),
        n_boot=smk.params.fit["n_boot"],
        seed=smk.params.fit["seed"],
        warmup=smk.params.fit["skip_fraction"],
        n_jobs=smk.threads,
    )


main(snakemake)  # noqa: F821
