"""Figure 7: the MPNN with and without the symmetry loss of eq. 2."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig7
from pipeline.workflow_io import read_kappas, runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    make_fig7(
        runs["base"],
        runs["symmetry_loss"],
        read_kappas(smk.input.kappas)["mpnn"],
        smk.output[0],
        compute_factor=smk.params.forward_passes,
        fit=smk.params.fit,
        kappa_config=getattr(smk.params, "kappa", None),
    )


main(snakemake)  # noqa: F821
