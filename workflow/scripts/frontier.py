"""Loss-compute Pareto frontiers of one arch, in PFLOPs and in training hours."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.scaling.fits import fit_options
from pipeline.scaling.frontier import write_frontiers


def main(smk):
    configure_logging(smk.log[0])
    options = fit_options(smk.params.fit, smk.wildcards.arch, getattr(smk.params, "kappa", None))
    write_frontiers(
        [Path(curve).parent for curve in smk.input.curves],
        smk.input.kappa,
        smk.output.flops,
        smk.output.hours,
        **{key: options[key] for key in ("warmup", "ema", "compute", "flops")},
    )


main(snakemake)  # noqa: F821
