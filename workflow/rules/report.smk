localrules:
    extract,
    kappa,
    kappa_table,
    frontier,
    fit,
    table1,
    fig1,
    all,


rule table1:
    input:
        fits=expand(f"{RESULTS}/fits/{{arch}}.json", arch=ARCHS),
    output:
        f"{RESULTS}/table1.csv",
    log:
        f"{RESULTS}/logs/table1.log",
    script:
        "../scripts/table1.py"


rule fig1:
    input:
        frontiers=expand(f"{RESULTS}/frontier/{{arch}}_{{x}}.csv", arch=ARCHS, x=["flops", "hours"]),
        fits=expand(f"{RESULTS}/fits/{{arch}}.json", arch=ARCHS),
    output:
        f"{RESULTS}/figures/fig1.pdf",
    log:
        f"{RESULTS}/logs/fig1.log",
    script:
        "../scripts/fig1.py"
