"""Figure 12: MPNN and eSEN on the diverse split (charged and open-shell molecules kept)."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig12
from pipeline.workflow_io import read_kappas, runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    kappas = read_kappas(smk.input.kappas)
    make_fig12(
        {"MPNN": runs["diverse_mpnn"], "eSEN": runs["diverse_esen"]},
        {"MPNN": kappas["mpnn"], "eSEN": kappas["esen"]},
        smk.output[0],
        fit=smk.params.fit,
        kappa_config=getattr(smk.params, "kappa", None),
    )


main(snakemake)  # noqa: F821
