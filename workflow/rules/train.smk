# Every training job reads the same resources (get_train_resources): the config's slurm
# section, the arch's runtime and memory, and the train section's device and checkpoint
# interval, none of them a rerun trigger. The seed is a wildcard (contract 1).


rule train:
    input:
        train=rules.extract.output.train,
        val=rules.extract.output.val,
        stats=rules.extract.output.stats,
    output:
        curve=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/curve.csv",
        meta=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/meta.json",
        model=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/model.pt",
    log:
        f"{RESULTS}/logs/train/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}.tsv"
    wildcard_constraints:
        arch="|".join(SINGLE_ARCHS) or "no_arch",
    conda:
        "../../environment.yml"
    threads: lambda wildcards: get_arch_train(wildcards.arch)["threads"]
    resources:
        **get_train_resources(
            lambda wildcards: config["archs"][wildcards.arch]["resources"],
            lambda wildcards: get_arch_train(wildcards.arch),
        ),
    params:
        arch=lambda wildcards: get_arch_result_settings(wildcards.arch, wildcards.width),
        train=lambda wildcards: result_train_settings(get_arch_train(wildcards.arch)),
    script:
        "../scripts/train.py"


# One job per (arch, width, seed) writes every fraction's run folder when the arch trains
# one pass with shared_fraction_run (see pipeline.train.loop).
for _arch in SHARED_ARCHS:

    rule:
        name:
            f"train_shared_{_arch}"
        input:
            train=rules.extract.output.train,
            val=rules.extract.output.val,
            stats=rules.extract.output.stats,
        output:
            curves=expand(
                f"{RESULTS}/runs/{_arch}/{{width}}/{{fraction}}/seed{{seed}}/curve.csv",
                fraction=get_arch_fractions(_arch),
                allow_missing=True,
            ),
            metas=expand(
                f"{RESULTS}/runs/{_arch}/{{width}}/{{fraction}}/seed{{seed}}/meta.json",
                fraction=get_arch_fractions(_arch),
                allow_missing=True,
            ),
            models=expand(
                f"{RESULTS}/runs/{_arch}/{{width}}/{{fraction}}/seed{{seed}}/model.pt",
                fraction=get_arch_fractions(_arch),
                allow_missing=True,
            ),
        log:
            f"{RESULTS}/logs/train/{_arch}/{{width}}/shared/seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{_arch}/{{width}}/shared/seed{{seed}}.tsv"
        # the slow families train shared runs: start them first so no core idles at the end
        priority: 1
        conda:
            "../../environment.yml"
        threads: get_arch_train(_arch)["threads"]
        resources:
            **get_train_resources(
                config["archs"][_arch]["resources"], get_arch_train(_arch)
            ),
        params:
            arch=lambda wildcards, arch=_arch: get_arch_result_settings(
                arch, wildcards.width
            ),
            train=result_train_settings(get_arch_train(_arch)),
            arch_name=_arch,
            fractions=get_arch_fractions(_arch),
        script:
            "../scripts/train.py"
