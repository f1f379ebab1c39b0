# Forward passes of every rung of the ladder: like extraction, a SLURM job on the CPU
# partition under --profile slurm (config 'slurm.cpu_jobs').


rule kappa:
    input:
        val=rules.extract.output.val,
    output:
        kappa=f"{RESULTS}/kappa/{{arch}}.csv",
        points=f"{RESULTS}/kappa/{{arch}}_points.csv",
    log:
        f"{RESULTS}/logs/kappa/{{arch}}.log",
    localrule: CPU_JOBS_LOCAL
    conda:
        "../../environment.yml"
    # one local slot (the demo's kappa is quick and must not hold training back); a SLURM
    # job still gets slurm.cpu_jobs.cpus_per_task CPUs from its resources
    threads: 1
    resources:
        **get_cpu_job_resources(),
    params:
        # only what changes the measured FLOPs: the ladder and the model's keywords
        arch=lambda wildcards: {
            key: value
            for key, value in config["archs"][wildcards.arch].items()
            if key in ("widths", "hparams", "model")
        },
        kappa=config["kappa"],
    script:
        "../scripts/kappa.py"


rule kappa_table:
    input:
        expand(f"{RESULTS}/kappa/{{arch}}.csv", arch=ARCHS),
    output:
        report(
            f"{RESULTS}/kappa.csv",
            caption="../report/kappa.rst",
            category=MAIN,
            labels={"name": "kappa"},
        ),
    log:
        f"{RESULTS}/logs/kappa_table.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/concat_csv.py"
