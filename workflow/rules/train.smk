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
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        slurm_partition=config["slurm"]["partition"],
        gres="gpu:1",
        cpus_per_task=config["slurm"]["cpus_per_task"],
        runtime=arch_resource("runtime"),
        mem_mb=arch_resource("mem_mb"),
        slurm_extra=f"'{config['slurm']['extra']}'",
    params:
        arch=arch_params,
        train=config["train"],
    script:
        "../scripts/train.py"
