# The cost plan (issue 15): every training job of the configured study, read from the
# config with the training rules' own helpers (common.smk), with N, D, FLOPs and
# pilot-based hours. Needs the extracted data only; trains nothing.

import pipeline.plan_jobs as plan_lib


rule plan:
    input:
        unpack(lambda wildcards: plan_lib.train_files(RESULTS, VARIANTS)),
        val=rules.extract.output.val,
    output:
        f"{RESULTS}/plan.csv",
    log:
        f"{RESULTS}/logs/plan.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        jobs=plan_lib.study_jobs(
            config,
            VARIANTS,
            shared_archs=SHARED_ARCHS,
            arch_fractions=get_arch_fractions,
            arch_settings=get_arch_result_settings,
            arch_train=get_arch_train,
            variant_settings=get_variant_result_settings,
        ),
        plan=config["plan"],
        flops=config["kappa"]["flops"],
        pilots=lambda wildcards, output: config["plan"]["pilot_results"]
        or os.path.dirname(output[0]),
        cpu_jobs=plan_lib.cpu_job_count(config, VARIANTS, local=CPU_JOBS_LOCAL),
    script:
        "../scripts/plan.py"
