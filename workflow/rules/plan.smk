# The cost plan (issue 15): every training job of the configured study, read from the
# config exactly as the training rules read it, with N, D, FLOPs and pilot-based hours.
# Needs the extracted data only; trains nothing.


def get_plan_jobs():
    """Training jobs of the study: one per SLURM job that training would submit."""
    jobs = []
    for arch in ARCHS:
        seeds, seed_widths = arch_seeds(config, arch)
        fractions = [float(r) for r in get_arch_fractions(arch)]
        shared = arch in SHARED_ARCHS
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
                            "arch_settings": get_arch_result_settings(arch),
                            "train": result_train_settings(get_arch_train(arch)),
                            "data": "study",
                        }
                    )
    for variant, spec in VARIANTS.items():
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
                            "arch_settings": get_variant_result_settings(variant),
                            "train": result_train_settings(spec["train"]),
                            "data": variant if spec["own_data"] else "study",
                        }
                    )
    return jobs


def get_plan_train_data(wildcards):
    """train.h5 of the study and of every variant with its own extraction."""
    files = {"study": f"{RESULTS}/data/train.h5"}
    for variant, spec in VARIANTS.items():
        if spec["own_data"]:
            files[variant] = f"{RESULTS}/variants/{variant}/data/train.h5"
    return files


def get_plan_cpu_jobs():
    """Extraction and kappa jobs, SLURM jobs too when slurm.cpu_jobs.on_slurm."""
    if CPU_JOBS_LOCAL:
        return 0
    own_data = sum(1 for spec in VARIANTS.values() if spec["own_data"])
    return 1 + own_data + len(ARCHS)


rule plan:
    input:
        unpack(get_plan_train_data),
        val=rules.extract.output.val,
    output:
        f"{RESULTS}/plan.csv",
    log:
        f"{RESULTS}/logs/plan.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        jobs=get_plan_jobs(),
        plan=config["plan"],
        flops=config["kappa"]["flops"],
        pilots=config["plan"]["pilot_results"] or RESULTS,
        cpu_jobs=get_plan_cpu_jobs(),
    script:
        "../scripts/plan.py"
