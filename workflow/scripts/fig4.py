"""Figure 4: eSEN frontiers at two l_max, with eq. 4 fits."""

from pipeline.logs import configure_logging
from pipeline.plots.experiments import make_fig4
from pipeline.workflow_io import read_kappas, runs_by_variant


def main(smk):
    configure_logging(smk.log[0])
    runs = runs_by_variant(smk.input.runs)
    labels = {"base": f"l_max {smk.params.lmax['base']}"}
    labels.update({name: f"l_max {lmax}" for name, lmax in smk.params.lmax.items()})
    kappa = read_kappas(smk.input.kappas)["esen"]
    by_label = {labels[name]: folders for name, folders in runs.items()}
    make_fig4(by_label, {label: kappa for label in by_label}, smk.output[0])


main(snakemake)  # noqa: F821
