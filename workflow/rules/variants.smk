rule extract_variant:
    output:
        train=f"{RESULTS}/variants/{{variant}}/data/train.h5",
        val=f"{RESULTS}/variants/{{variant}}/data/val.h5",
        stats=f"{RESULTS}/variants/{{variant}}/data/stats.json",
        summary=f"{RESULTS}/variants/{{variant}}/data/summary.json",
    log:
        f"{RESULTS}/logs/extract_variant/{{variant}}.log",
    conda:
        "../../environment.yml"
    threads: 2
    params:
        data=lambda wildcards: VARIANTS[wildcards.variant]["data"],
    script:
        "../scripts/extract.py"


rule train_variant:
    input:
        unpack(variant_data),
    output:
        curve=f"{RESULTS}/variants/{{variant}}/{{arch}}/{{width}}/{{fraction}}/curve.csv",
        meta=f"{RESULTS}/variants/{{variant}}/{{arch}}/{{width}}/{{fraction}}/meta.json",
        model=f"{RESULTS}/variants/{{variant}}/{{arch}}/{{width}}/{{fraction}}/model.pt",
    log:
        f"{RESULTS}/logs/train_variant/{{variant}}/{{arch}}/{{width}}/{{fraction}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_variant/{{variant}}/{{arch}}/{{width}}/{{fraction}}.tsv"
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        slurm_partition=config["slurm"]["partition"],
        gres="gpu:1",
        cpus_per_task=config["slurm"]["cpus_per_task"],
        runtime=variant_resource("runtime"),
        mem_mb=variant_resource("mem_mb"),
        slurm_extra=config["slurm"]["extra"],
    params:
        arch=lambda wildcards: VARIANTS[wildcards.variant]["arch_settings"],
        train=lambda wildcards: VARIANTS[wildcards.variant]["train"],
        variant=lambda wildcards: wildcards.variant,
    script:
        "../scripts/train.py"
