rule train:
    input:
        train=rules.extract.output.train,
        val=rules.extract.output.val,
        stats=rules.extract.output.stats,
    output:
        curve=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/curve.csv",
        meta=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/meta.json",
        model=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/model.pt",
    log:
        f"{RESULTS}/logs/train/{{arch}}/{{width}}/{{fraction}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{arch}}/{{width}}/{{fraction}}.tsv"
    wildcard_constraints:
        arch="|".join(SINGLE_ARCHS) or "no_arch",
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        slurm_partition=config["slurm"]["partition"],
        gres="gpu:1",
        cpus_per_task=config["slurm"]["cpus_per_task"],
        runtime=arch_resource("runtime"),
        mem_mb=arch_resource("mem_mb"),
        slurm_extra=config["slurm"]["extra"],
    params:
        arch=arch_params,
        train=lambda wildcards: arch_train(wildcards.arch),
    script:
        "../scripts/train.py"


# One job per (arch, width) writes every fraction's run folder when the arch trains
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
                f"{RESULTS}/runs/{_arch}/{{width}}/{{fraction}}/curve.csv",
                fraction=arch_fractions(_arch),
                allow_missing=True,
            ),
            metas=expand(
                f"{RESULTS}/runs/{_arch}/{{width}}/{{fraction}}/meta.json",
                fraction=arch_fractions(_arch),
                allow_missing=True,
            ),
            models=expand(
                f"{RESULTS}/runs/{_arch}/{{width}}/{{fraction}}/model.pt",
                fraction=arch_fractions(_arch),
                allow_missing=True,
            ),
        log:
            f"{RESULTS}/logs/train/{_arch}/{{width}}/shared.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{_arch}/{{width}}/shared.tsv"
        # the slow families train shared runs: start them first so no core idles at the end
        priority: 1
        conda:
            "../../environment.yml"
        threads: config["train"]["threads"]
        resources:
            slurm_partition=config["slurm"]["partition"],
            gres="gpu:1",
            cpus_per_task=config["slurm"]["cpus_per_task"],
            runtime=config["archs"][_arch]["resources"]["runtime"],
            mem_mb=config["archs"][_arch]["resources"]["mem_mb"],
            slurm_extra=config["slurm"]["extra"],
        params:
            arch={
                key: config["archs"][_arch][key]
                for key in ("base_width", "lr", "batch_size", "hparams")
            },
            train=arch_train(_arch),
            arch_name=_arch,
            fractions=arch_fractions(_arch),
        script:
            "../scripts/train.py"
