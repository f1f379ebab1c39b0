rule extract_variant:
    output:
        train=f"{RESULTS}/variants/{{variant}}/data/train.h5",
        val=f"{RESULTS}/variants/{{variant}}/data/val.h5",
        stats=f"{RESULTS}/variants/{{variant}}/data/stats.json",
        summary=report(
            f"{RESULTS}/variants/{{variant}}/data/summary.json",
            caption="../report/data_summary.rst",
            category=DATA,
            labels={"name": "data summary {variant}"},
        ),
    log:
        f"{RESULTS}/logs/extract_variant/{{variant}}.log",
    localrule: CPU_JOBS_LOCAL
    conda:
        "../../environment.yml"
    threads: CPU_JOB_THREADS
    resources:
        **get_cpu_job_resources(),
    params:
        data=lambda wildcards: VARIANTS[wildcards.variant]["data"],
    script:
        "../scripts/extract.py"


rule train_variant:
    input:
        unpack(get_variant_data),
    output:
        curve=f"{RESULTS}/variants/{{variant}}/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/curve.csv",
        meta=f"{RESULTS}/variants/{{variant}}/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/meta.json",
        model=f"{RESULTS}/variants/{{variant}}/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/model.pt",
    log:
        f"{RESULTS}/logs/train_variant/{{variant}}/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_variant/{{variant}}/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}.tsv"
    conda:
        "../../environment.yml"
    threads: lambda wildcards: VARIANTS[wildcards.variant]["train"]["threads"]
    resources:
        **get_train_resources(
            lambda wildcards: VARIANTS[wildcards.variant]["arch_settings"].get(
                "resources", {}
            ),
            lambda wildcards: VARIANTS[wildcards.variant]["train"],
        ),
    params:
        arch=lambda wildcards: get_variant_result_settings(
            wildcards.variant, wildcards.width
        ),
        train=lambda wildcards: result_train_settings(
            VARIANTS[wildcards.variant]["train"]
        ),
        variant=lambda wildcards: wildcards.variant,
    script:
        "../scripts/train.py"
