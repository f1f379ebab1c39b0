import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # a checkout without pip install -e

from pipeline.config import check_config, expand_variants, merge_config  # noqa: E402

# glibc's malloc returning memory to the OS after every step made CPU step times erratic
# and up to 1.7x slower (measured for eSEN); jobs inherit these unless the user sets them.
os.environ.setdefault("MALLOC_MMAP_MAX_", "0")
os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", "100000000000")

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
check_config(config, SCHEMA)  # one line naming the bad key, before any job
validate(config, SCHEMA)  # fills the schema's defaults

RESULTS = config["results"]
ARCHS = list(config["archs"])
VARIANTS = expand_variants(config)


def fraction_label(fraction):
    """Fractions formatted once, so that wildcards round-trip: 0.25 -> '0.25', 1.0 -> '1'."""
    return f"{float(fraction):g}"


FRACTIONS = [fraction_label(r) for r in config["fractions"]]


wildcard_constraints:
    arch="|".join(sorted(set(ARCHS) | {v["arch"] for v in VARIANTS.values()})),
    width=r"\d+",
    fraction=r"[01](\.\d+)?",
    variant="|".join(VARIANTS) or "no_variant",


def arch_params(wildcards):
    """The arch's model and optimizer settings: not its ladder, fractions or resources,
    so that a new width or fraction reruns only its own jobs."""
    section = config["archs"][wildcards.arch]
    return {key: section[key] for key in ("base_width", "lr", "batch_size", "hparams")}


def arch_train(arch):
    """The train section with the arch's own overrides (e.g. fewer passes for a slow family)."""
    return merge_config(config["train"], config["archs"][arch].get("train", {}))


def arch_fractions(arch):
    return [
        fraction_label(r)
        for r in config["archs"][arch].get("fractions") or config["fractions"]
    ]


SHARED_ARCHS = [arch for arch in ARCHS if arch_train(arch)["shared_fraction_run"]]
SINGLE_ARCHS = [arch for arch in ARCHS if arch not in SHARED_ARCHS]


def arch_resource(key):
    return lambda wildcards: config["archs"][wildcards.arch]["resources"][key]


def run_dirs(arch):
    return [
        f"{RESULTS}/runs/{arch}/{width}/{fraction}"
        for width in config["archs"][arch]["widths"]
        for fraction in arch_fractions(arch)
    ]


def arch_curves(wildcards):
    return base_runs([wildcards.arch], ("curve.csv",))


def arch_metas(wildcards):
    return base_runs([wildcards.arch], ("meta.json",))


def variant_run_dirs(variant):
    spec = VARIANTS[variant]
    return [
        f"{RESULTS}/variants/{variant}/{spec['arch']}/{width}/{fraction_label(fraction)}"
        for width in spec["widths"]
        for fraction in spec["fractions"]
    ]


def variant_data(wildcards):
    """The variant's own extraction when it changes the data section, else the study's."""
    folder = (
        f"{RESULTS}/variants/{wildcards.variant}/data"
        if VARIANTS[wildcards.variant]["own_data"]
        else f"{RESULTS}/data"
    )
    return {
        name: f"{folder}/{name}.{ext}"
        for name, ext in (("train", "h5"), ("val", "h5"), ("stats", "json"))
    }


def variant_resource(key):
    return lambda wildcards: VARIANTS[wildcards.variant]["arch_settings"][
        "resources"
    ].get(key, 60 if key == "runtime" else 8000)


def runs_of(variants, files=("curve.csv", "meta.json")):
    """Curve and meta files of every run of the named variants (a figure's input)."""
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(
                f"this target needs the variant {variant!r} in config 'variants' (have "
                f"{sorted(VARIANTS)})"
            )
    return [
        f"{run}/{name}"
        for v in variants
        for run in variant_run_dirs(v)
        for name in files
    ]


def variants_named(prefix):
    names = [v for v in VARIANTS if v.startswith(prefix)]
    if not names:
        raise ValueError(f"this target needs a variant {prefix!r} in config 'variants'")
    return names


def base_runs(archs, files=("curve.csv", "meta.json")):
    return [
        f"{run}/{name}" for arch in archs for run in run_dirs(arch) for name in files
    ]


PAPER_CONFIG = "config/paper.yaml"
LADDER_ARCHS = {"3": "mpnn", "4": "egnn", "5": "esen", "6": "gemnet_oc"}
FITS = expand(f"{RESULTS}/fits/{{arch}}.json", arch=ARCHS)
FRONTIERS = expand(
    f"{RESULTS}/frontier/{{arch}}_{{x}}.csv", arch=ARCHS, x=["flops", "hours"]
)
KAPPAS = expand(f"{RESULTS}/kappa/{{arch}}.csv", arch=ARCHS)
KAPPA_POINTS = expand(f"{RESULTS}/kappa/{{arch}}_points.csv", arch=ARCHS)


def kappas_of(*archs):
    return [f"{RESULTS}/kappa/{arch}.csv" for arch in archs]
