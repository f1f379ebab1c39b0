"""results/report.md: every table and figure with its caption, the fitted laws, config, versions."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.provenance import code_version, library_versions
from pipeline.scaling.tables import read_fits
from pipeline.summary import write_report


def main(smk):
    configure_logging(smk.log[0])
    tables = {Path(path).stem: path for path in smk.input.tables}
    figures = {Path(path).stem: path for path in smk.input.figures}
    fit_jsons = list(getattr(smk.input, "fits", []))
    fits = read_fits(fit_jsons) if fit_jsons else None
    versions = {"code": code_version(), **library_versions()}
    write_report(smk.output[0], tables, figures, smk.params.config, versions, fits=fits)


main(snakemake)  # noqa: F821
