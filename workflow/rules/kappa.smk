rule kappa:
    input:
        val=rules.extract.output.val,
    output:
        kappa=f"{RESULTS}/kappa/{{arch}}.csv",
        points=f"{RESULTS}/kappa/{{arch}}_points.csv",
    log:
        f"{RESULTS}/logs/kappa/{{arch}}.log",
    conda:
        "../../environment.yml"
    params:
        arch=lambda wildcards: config["archs"][wildcards.arch],
        kappa=config["kappa"],
    script:
        "../scripts/kappa.py"


rule kappa_table:
    input:
        expand(f"{RESULTS}/kappa/{{arch}}.csv", arch=ARCHS),
    output:
        f"{RESULTS}/kappa.csv",
    log:
        f"{RESULTS}/logs/kappa_table.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/concat_csv.py"
