"""Measure forward FLOPs over D atoms for the arch's ladder at two batches; fit C = kappa N D."""

from pipeline.logs import configure_logging
from pipeline.models import arch_hparams
from pipeline.scaling.fits import KAPPA_FLOPS_DEFAULT
from pipeline.scaling.kappa import add_flops_per_param_atom, kappa_table
from pipeline.train.kappa import measure_flop_points


def main(smk):
    configure_logging(smk.log[0])
    flops = smk.params.kappa.get("flops", KAPPA_FLOPS_DEFAULT)
    arch = smk.params.arch
    points = measure_flop_points(
        smk.wildcards.arch,
        arch["widths"],
        arch_hparams(arch),  # hparams, plus archs.<name>.model for a user class
        smk.input.val,
        num_molecules=smk.params.kappa["num_molecules"],
        batch_molecules=smk.params.kappa.get("batch_molecules"),
    )
    add_flops_per_param_atom(points, flops).to_csv(smk.output.points, index=False)
    kappa_table(points, flops).to_csv(smk.output.kappa, index=False)


main(snakemake)  # noqa: F821
