rule frontier:
    input:
        curves=get_arch_curves,
        metas=get_arch_metas,
        kappa=f"{RESULTS}/kappa/{{arch}}.csv",
    output:
        flops=f"{RESULTS}/frontier/{{arch}}_flops.csv",
        hours=f"{RESULTS}/frontier/{{arch}}_hours.csv",
    log:
        f"{RESULTS}/logs/frontier/{{arch}}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
    script:
        "../scripts/frontier.py"
