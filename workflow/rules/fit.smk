rule fit:
    input:
        curves=get_arch_curves,
        metas=get_arch_metas,
        kappa=f"{RESULTS}/kappa/{{arch}}.csv",
        flops=rules.frontier.output.flops,
        hours=rules.frontier.output.hours,
    output:
        report(
            f"{RESULTS}/fits/{{arch}}.json",
            caption="../report/fit_json.rst",
            category=MAIN,
            labels={"name": "fit {arch}"},
        ),
    log:
        f"{RESULTS}/logs/fit/{{arch}}.log",
    localrule: True
    conda:
        "../../environment.yml"
    threads: 2
    params:
        fit=config["fit"],
        kappa=config["kappa"],
    script:
        "../scripts/fit.py"
