import os
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(
    0, str(Path(workflow.basedir) / "src")
)  # a checkout without pip install -e

from pipeline.config import (  # noqa: E402
    arch_seeds,
    check_config,
    expand_variants,
    merge_config,
    result_arch_settings,
    result_train_settings,
    seeds_at_width,
)

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
SLURM = config["slurm"]


def fraction_label(fraction):
    """Fractions formatted once, so that wildcards round-trip: 0.25 -> '0.25', 1.0 -> '1'."""
    return f"{float(fraction):g}"


FRACTIONS = [fraction_label(r) for r in config["fractions"]]


wildcard_constraints:
    arch="|".join(sorted(set(ARCHS) | {v["arch"] for v in VARIANTS.values()})),
    width=r"\d+",
    fraction=r"[01](\.\d+)?",
    seed=r"\d+",
    variant="|".join(VARIANTS) or "no_variant",


# --- settings of a training job: params carry what changes its result, nothing else ---

# archs.<arch> keys that change a run's result; not its ladder, fractions, seeds or
# resources, so that a new width, fraction or seed reruns only its own jobs; lr_max only
# at the widths where it binds (result_arch_settings).
ARCH_RESULT_KEYS = ("base_width", "lr", "lr_max", "batch_size", "hparams", "model")


def get_arch_result_settings(arch, width=None):
    """The arch's model and optimizer settings at one width (a training job's params.arch)."""
    section = config["archs"][arch]
    settings = {key: section[key] for key in ARCH_RESULT_KEYS if key in section}
    return result_arch_settings(settings, width)


def get_arch_train(arch):
    """The train section with the arch's own overrides (e.g. fewer passes for a slow family)."""
    return merge_config(config["train"], config["archs"][arch].get("train", {}))


def get_arch_fractions(arch):
    return [
        fraction_label(r)
        for r in config["archs"][arch].get("fractions") or config["fractions"]
    ]


SHARED_ARCHS = [arch for arch in ARCHS if get_arch_train(arch)["shared_fraction_run"]]
SINGLE_ARCHS = [arch for arch in ARCHS if arch not in SHARED_ARCHS]


def get_variant_result_settings(variant, width=None):
    """A variant's arch settings at one width, without its resources (params.arch)."""
    settings = VARIANTS[variant]["arch_settings"]
    settings = {key: value for key, value in settings.items() if key != "resources"}
    return result_arch_settings(settings, width)


# --- resources: how a job runs (never a rerun trigger) ---------------------------------


def get_slurm_account():
    return {"slurm_account": SLURM["account"]} if SLURM.get("account") else {}


def get_train_resources(resources, train):
    """Resources of every training job (train, train_shared_<arch>, train_variant).

    ``resources`` is ``archs.<arch>.resources`` (runtime in minutes, mem_mb in MB), or a
    function of the wildcards returning it; ``train`` the merged train section (or such
    a function), whose device and checkpoint interval reach the trainer from here
    (contract 6). The SLURM keys come from config 'slurm', the same for every training
    job, so one override there reaches them all.
    """

    def of(value, key, default, kind=lambda v: v):
        if callable(value):
            return lambda wildcards: kind(value(wildcards).get(key, default))
        return kind(value.get(key, default))

    def whole_seconds(seconds):  # a resource is an int or a string
        return max(1, round(float(seconds)))

    return {
        **get_slurm_account(),
        "slurm_partition": SLURM["partition"],
        "gres": SLURM["gres"],
        "cpus_per_task": SLURM["cpus_per_task"],
        "slurm_extra": SLURM["extra"],
        "runtime": of(resources, "runtime", 60),
        "mem_mb": of(resources, "mem_mb", 8000),
        "device": of(train, "device", "auto"),
        "checkpoint_every_seconds": of(
            train, "checkpoint_every_seconds", 600, whole_seconds
        ),
    }


def get_cpu_job_resources():
    """Resources of the heavy CPU stages (extraction, kappa) under --profile slurm; none
    when slurm.cpu_jobs.on_slurm is false (they then run where Snakemake runs)."""
    cpu = SLURM["cpu_jobs"]
    if not cpu["on_slurm"]:
        return {}
    partition = {"slurm_partition": cpu["partition"]} if cpu.get("partition") else {}
    return {
        **get_slurm_account(),
        **partition,
        "cpus_per_task": cpu["cpus_per_task"],
        "mem_mb": cpu["mem_mb"],
        "runtime": cpu["runtime"],
    }


CPU_JOBS_LOCAL = not SLURM["cpu_jobs"]["on_slurm"]
CPU_JOB_THREADS = SLURM["cpu_jobs"]["cpus_per_task"]


def get_result_config():
    """The config without what does not change results (report.md's params): no SLURM
    section, no cost plan settings, no resources, no train threads/device/checkpoint
    interval."""
    kept = {key: value for key, value in config.items() if key not in ("slurm", "plan")}
    kept["train"] = result_train_settings(config["train"])
    kept["archs"] = {
        arch: {
            **{key: value for key, value in section.items() if key != "resources"},
            "train": result_train_settings(section.get("train", {})),
        }
        for arch, section in config["archs"].items()
    }
    return kept


# --- run folders -----------------------------------------------------------------------


def get_run_dirs(arch):
    """Base run folders of an arch: {results}/runs/{arch}/{width}/{fraction}/seed{seed}."""
    seeds, seed_widths = arch_seeds(config, arch)
    return [
        f"{RESULTS}/runs/{arch}/{width}/{fraction}/seed{seed}"
        for width in config["archs"][arch]["widths"]
        for seed in seeds_at_width(seeds, seed_widths, width)
        for fraction in get_arch_fractions(arch)
    ]


def get_base_run_files(archs, files=("curve.csv", "meta.json")):
    """Curve and meta files of every base run of the named archs (a figure's input)."""
    return [
        f"{run}/{name}"
        for arch in archs
        for run in get_run_dirs(arch)
        for name in files
    ]


def get_arch_curves(wildcards):
    return get_base_run_files([wildcards.arch], ("curve.csv",))


def get_arch_metas(wildcards):
    return get_base_run_files([wildcards.arch], ("meta.json",))


def get_variant_run_dirs(variant):
    spec = VARIANTS[variant]
    return [
        f"{RESULTS}/variants/{variant}/{spec['arch']}/{width}/{fraction_label(fraction)}/seed{seed}"
        for width in spec["widths"]
        for seed in seeds_at_width(spec["seeds"], spec["seed_widths"], width)
        for fraction in spec["fractions"]
    ]


def get_variant_data(wildcards):
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


def get_variant_run_files(variants, files=("curve.csv", "meta.json")):
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
        for run in get_variant_run_dirs(v)
        for name in files
    ]


def get_variants_named(prefix):
    names = [v for v in VARIANTS if v.startswith(prefix)]
    if not names:
        raise ValueError(f"this target needs a variant {prefix!r} in config 'variants'")
    return names


def get_group_average_files(wildcards):
    """Figure 13's inputs: the first seed's model of every width at the largest fraction."""
    arch = config["group_average"]["arch"]
    if arch not in config["archs"]:
        return []
    fraction = max(get_arch_fractions(arch), key=float)
    seed = arch_seeds(config, arch)[0][0]
    return [
        f"{RESULTS}/group_average/{arch}/{width}/{fraction}/seed{seed}.csv"
        for width in config["archs"][arch]["widths"]
    ]


# Categories of Snakemake's report (snakemake --report results/report.html).
MAIN, SYMMETRY, SWEEPS = "Main study", "Symmetry experiments", "Sweeps"
LADDERS, DATA = "Ladders", "Data"

PAPER_CONFIG = str(Path(workflow.basedir) / "config/paper.yaml")
LADDER_ARCHS = {"3": "mpnn", "4": "egnn", "5": "esen", "6": "gemnet_oc"}
FITS = expand(f"{RESULTS}/fits/{{arch}}.json", arch=ARCHS)
FRONTIERS = expand(
    f"{RESULTS}/frontier/{{arch}}_{{x}}.csv", arch=ARCHS, x=["flops", "hours"]
)
KAPPAS = expand(f"{RESULTS}/kappa/{{arch}}.csv", arch=ARCHS)
KAPPA_POINTS = expand(f"{RESULTS}/kappa/{{arch}}_points.csv", arch=ARCHS)


def get_kappa_files(*archs):
    return [f"{RESULTS}/kappa/{arch}.csv" for arch in archs]


def get_table2_models():
    """Each arch's config name -> its model: the registry name, or archs.<name>.model."""
    names = sorted(set(ARCHS) | {v["arch"] for v in VARIANTS.values()})
    sections = {name: config["archs"].get(name, {}) for name in names}
    return {
        name: s.get("model") or s.get("hparams", {}).get("model") or name
        for name, s in sections.items()
    }
