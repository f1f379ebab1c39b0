"""Figure 4: eSEN frontiers at two l_max, with eq. 4 fits (settings from config['fit'])."""

from pipeline.logs import configure_logging
from pipeline.plots.symmetry import make_fig4
from pipeline.workflow_io import read_kappas, runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    labels = {name: f"l_max {lmax}" for name, lmax in smk.params.lmax.items()}
    by_label = {labels[name]: folders for name, folders in runs.items()}
    make_fig4(
        by_label,
        read_kappas(smk.input.kappas)["esen"],
        smk.output[0],
        fit=smk.params.fit,
        kappa_config=getattr(smk.params, "kappa", None),
    )


main(snakemake)  # noqa: F821
