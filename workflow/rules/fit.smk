rule fit:
    input:
        curves=f"{RESULTS}/frontier/{{arch}}_curves.csv",
        kappa=f"{RESULTS}/kappa/{{arch}}.csv",
    output:
        f"{RESULTS}/fits/{{arch}}.json",
    log:
        f"{RESULTS}/logs/fit/{{arch}}.log",
    params:
        fit=config["fit"],
    script:
        "../scripts/fit.py"
