"""Measure forward FLOPs over D atoms for the arch's ladder and fit C = kappa N D."""

import pandas as pd

from pipeline.logs import configure_logging
from pipeline.scaling.kappa import fit_kappa
from pipeline.train.kappa import measure_flop_points


def main(smk):
    configure_logging(smk.log[0])
    arch = smk.wildcards.arch
    points = measure_flop_points(
        arch,
        smk.params.arch["widths"],
        smk.params.arch.get("hparams", {}),
        smk.input.val,
        num_molecules=smk.params.kappa["num_molecules"],
    )
    points.to_csv(smk.output.points, index=False)
    counted = fit_kappa(points["n_params"], points["atoms"], points["flops_counted"])
    total = fit_kappa(points["n_params"], points["atoms"], points["flops_total"])
    row = {"arch": arch, "kappa": counted["kappa"], "kappa_counted": counted["kappa"]}
    row.update({"kappa_total": total["kappa"], "r2_counted": counted["r2"]})
    pd.DataFrame([row]).to_csv(smk.output.kappa, index=False)


main(snakemake)  # noqa: F821
