import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # a checkout without pip install -e

from pipeline.config import check_config  # noqa: E402

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
check_config(config, SCHEMA)  # one line naming the bad key, before any job
validate(config, SCHEMA)  # fills the schema's defaults

RESULTS = config["results"]
ARCHS = list(config["archs"])


def fraction_label(fraction):
    """Fractions formatted once, so that wildcards round-trip: 0.25 -> '0.25', 1.0 -> '1'."""
    return f"{float(fraction):g}"


FRACTIONS = [fraction_label(r) for r in config["fractions"]]


wildcard_constraints:
    arch="|".join(ARCHS),
    width=r"\d+",
    fraction="|".join(f.replace(".", r"\.") for f in FRACTIONS),


def arch_params(wildcards):
    """The arch's config section without its ladder, so a new width reruns only itself."""
    section = config["archs"][wildcards.arch]
    return {key: value for key, value in section.items() if key not in ("widths", "resources")}


def arch_resource(key):
    return lambda wildcards: config["archs"][wildcards.arch]["resources"][key]


def run_dirs(arch):
    return [
        f"{RESULTS}/runs/{arch}/{width}/{fraction}"
        for width in config["archs"][arch]["widths"]
        for fraction in FRACTIONS
    ]


def arch_curves(wildcards):
    return [f"{run}/curve.csv" for run in run_dirs(wildcards.arch)]


def arch_metas(wildcards):
    return [f"{run}/meta.json" for run in run_dirs(wildcards.arch)]
