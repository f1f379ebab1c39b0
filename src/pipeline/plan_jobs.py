"""The training jobs of a study, as the rules run them (the cost plan's rows).

Kept apart from :mod:`pipeline.plan` and free of heavy imports (torch, pandas, h5py):
``workflow/rules/plan.smk`` calls it while Snakemake parses the workflow.
"""

from __future__ import annotations

from collections.abc import Callable


def study_jobs(
    config: dict,
    variants: dict[str, dict],
    *,
    shared_archs: list[str],
    arch_fractions: Callable[[str], list],
    arch_settings: Callable[[str], dict],
    arch_train: Callable[[str], dict],
    variant_settings: Callable[[str], dict],
) -> list[dict]:
    """Every training job of the study, one per job (SLURM job) the training rules run.

    The callables are the rules' own helpers (``workflow/rules/common.smk``), so the
    plan reads the config exactly as the rules do: a shared-fraction arch trains one
    job per (width, seed) writing every fraction, another arch one job per fraction;
    every variant run is its own job (rule ``train_variant``); seeds per width from
    ``pipeline.config.seeds_at_width``.

    Returns
    -------
    list of dict
        ``rule``, ``variant`` (None for base runs), ``arch``, ``width``, ``fractions``,
        ``seed``, ``arch_settings``, ``train`` (without runtime keys), ``data`` ("study"
        or the variant's name when it extracts its own data).
    """
    from pipeline.config import arch_seeds, result_train_settings, seeds_at_width

    jobs = []
    for arch in config["archs"]:
        seeds, seed_widths = arch_seeds(config, arch)
        fractions = [float(r) for r in arch_fractions(arch)]
        shared = arch in shared_archs
        groups = [fractions] if shared else [[r] for r in fractions]
        for width in config["archs"][arch]["widths"]:
            for seed in seeds_at_width(seeds, seed_widths, width):
                for group in groups:
                    jobs.append(
                        {
                            "rule": f"train_shared_{arch}" if shared else "train",
                            "variant": None,
                            "arch": arch,
                            "width": int(width),
                            "fractions": group,
                            "seed": seed,
                            "arch_settings": arch_settings(arch),
                            "train": result_train_settings(arch_train(arch)),
                            "data": "study",
                        }
                    )
    for variant, spec in variants.items():
        for width in spec["widths"]:
            for seed in seeds_at_width(spec["seeds"], spec["seed_widths"], width):
                for fraction in spec["fractions"]:
                    jobs.append(
                        {
                            "rule": "train_variant",
                            "variant": variant,
                            "arch": spec["arch"],
                            "width": int(width),
                            "fractions": [float(fraction)],
                            "seed": seed,
                            "arch_settings": variant_settings(variant),
                            "train": result_train_settings(spec["train"]),
                            "data": variant if spec["own_data"] else "study",
                        }
                    )
    return jobs


def train_files(results: str, variants: dict[str, dict]) -> dict[str, str]:
    """train.h5 of the study and of every variant with its own extraction."""
    files = {"study": f"{results}/data/train.h5"}
    for variant, spec in variants.items():
        if spec["own_data"]:
            files[variant] = f"{results}/variants/{variant}/data/train.h5"
    return files


def cpu_job_count(config: dict, variants: dict[str, dict], *, local: bool) -> int:
    """Extraction and kappa jobs, SLURM jobs too unless they run locally."""
    if local:
        return 0
    return 1 + sum(1 for spec in variants.values() if spec["own_data"]) + len(config["archs"])


__all__ = ["cpu_job_count", "study_jobs", "train_files"]
