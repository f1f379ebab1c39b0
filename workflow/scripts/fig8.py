"""Figure 8: multi-epoch training on 1 % of the data, without and with augmentation."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig8
from pipeline.workflow_io import read_kappas, runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    make_fig8(
        runs["multi_epoch"],
        runs["multi_epoch_aug"],
        read_kappas(smk.input.kappas)["mpnn"],
        smk.output[0],
        fit=smk.params.fit,
        kappa_config=getattr(smk.params, "kappa", None),
    )


main(snakemake)  # noqa: F821
