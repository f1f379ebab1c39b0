"""results/report.md: every table and figure with its caption, the config and versions."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.provenance import code_version, library_versions
from pipeline.report import write_report


def main(smk):
    configure_logging(smk.log[0])
    tables = {Path(path).stem: path for path in smk.input.tables}
    figures = {Path(path).stem: path for path in smk.input.figures}
    versions = {"code": code_version(), **library_versions()}
    write_report(smk.output[0], tables, figures, smk.params.config, versions)


main(snakemake)  # noqa: F821
