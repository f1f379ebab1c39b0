"""Eq. 4 on the frontiers, eq. 5 on the (N, D, L) triplets, eq. 7, with bootstrap intervals."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.scaling.fits import fit_options, write_fit


def main(smk):
    configure_logging(smk.log[0])
    arch = smk.wildcards.arch
    write_fit(
        [Path(curve).parent for curve in smk.input.curves],
        smk.input.kappa,
        smk.output[0],
        arch=arch,
        frontier_csvs=(smk.input.flops, smk.input.hours),
        n_jobs=smk.threads,
        **fit_options(smk.params.fit, arch, getattr(smk.params, "kappa", None)),
    )


main(snakemake)  # noqa: F821
