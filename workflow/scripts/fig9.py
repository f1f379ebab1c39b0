"""Figure 9: multi-epoch MPNN with augmentation against eSEN."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig9
from pipeline.workflow_io import read_kappas, runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    kappas = read_kappas(smk.input.kappas)
    by_label = {"MPNN + augmentation": runs["multi_epoch_aug"], "eSEN": runs["multi_epoch_esen"]}
    kappa = {"MPNN + augmentation": kappas["mpnn"], "eSEN": kappas["esen"]}
    make_fig9(
        by_label,
        kappa,
        smk.output[0],
        fit=smk.params.fit,
        kappa_config=getattr(smk.params, "kappa", None),
    )


main(snakemake)  # noqa: F821
