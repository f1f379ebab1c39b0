# Extraction reads every shard of the source: under --profile slurm a SLURM job on the
# CPU partition of config 'slurm.cpu_jobs' (on_slurm: false runs it where Snakemake runs),
# with as many reader processes as the job's CPUs.


rule extract:
    output:
        train=f"{RESULTS}/data/train.h5",
        val=f"{RESULTS}/data/val.h5",
        stats=f"{RESULTS}/data/stats.json",
        summary=report(
            f"{RESULTS}/data/summary.json",
            caption="../report/data_summary.rst",
            category=DATA,
            labels={"name": "data summary"},
        ),
    log:
        f"{RESULTS}/logs/extract.log",
    localrule: CPU_JOBS_LOCAL
    conda:
        "../../environment.yml"
    threads: CPU_JOB_THREADS
    resources:
        **get_cpu_job_resources(),
    params:
        data=config["data"],
    script:
        "../scripts/extract.py"


# Regenerates the embedded dataset (GFN2-xTB on RDKit conformers; minutes on 2 cores):
#   snakemake --cores 2 demo_data && cmp results/demo/demo_gfn2xtb.h5 src/pipeline/data/demo/demo_gfn2xtb.h5
rule demo_data:
    output:
        f"{RESULTS}/demo/demo_gfn2xtb.h5",
    log:
        f"{RESULTS}/logs/demo_data.log",
    localrule: True
    conda:
        "../../environment.yml"
    threads: 2
    shell:
        "python -m pipeline.data.demo --out {output} --workers {threads} --seed 0 > {log} 2>&1"
