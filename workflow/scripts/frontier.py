"""Loss-compute Pareto frontiers of one arch, in PFLOPs and in training hours."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.scaling.frontier import write_frontiers


def main(smk):
    configure_logging(smk.log[0])
    write_frontiers(
        [Path(curve).parent for curve in smk.input.curves],
        smk.input.kappa,
        smk.output.flops,
        smk.output.hours,
        warmup=smk.params.fit["skip_fraction"],
    )


main(snakemake)  # noqa: F821
