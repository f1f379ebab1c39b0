"""Figure 3: every learning curve against compute and hours, with the Pareto frontiers."""

from pipeline.logs import configure_logging
from pipeline.plots.main import make_fig3
from pipeline.workflow_io import run_dirs


def main(smk):
    configure_logging(smk.log[0])
    make_fig3(
        run_dirs(smk.input.runs),
        smk.input.kappas,
        smk.input.frontiers,
        smk.output[0],
        fit=getattr(smk.params, "fit", None),
        kappa_config=getattr(smk.params, "kappa", None),
    )


main(snakemake)  # noqa: F821
