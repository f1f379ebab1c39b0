"""Measure forward FLOPs over D atoms for the arch's ladder and fit C = kappa N D."""

from pipeline.logs import configure_logging
from pipeline.scaling.kappa import kappa_table
from pipeline.train.kappa import measure_flop_points


def main(smk):
    configure_logging(smk.log[0])
    points = measure_flop_points(
        smk.wildcards.arch,
        smk.params.arch["widths"],
        smk.params.arch.get("hparams", {}),
        smk.input.val,
        num_molecules=smk.params.kappa["num_molecules"],
    )
    points.to_csv(smk.output.points, index=False)
    kappa_table(points).to_csv(smk.output.kappa, index=False)


main(snakemake)  # noqa: F821
