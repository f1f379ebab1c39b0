rule fit:
    input:
        curves=get_arch_curves,
        metas=get_arch_metas,
        kappa=f"{RESULTS}/kappa/{{arch}}.csv",
        flops=rules.frontier.output.flops,
        hours=rules.frontier.output.hours,
    output:
        f"{RESULTS}/fits/{{arch}}.json",
    log:
        f"{RESULTS}/logs/fit/{{arch}}.log",
    localrule: True
    conda:
        "../../environment.yml"
    threads: 2
    params:
        fit=config["fit"],
    script:
        "../scripts/fit.py"
