# Tables 1-7, the compute-optimal allocation and results/report.md: light rules, run
# where Snakemake runs.


rule table1:
    input:
        fits=FITS,
    output:
        report(
            f"{RESULTS}/table1.csv",
            caption="../report/table1.rst",
            category=MAIN,
            labels={"name": "Table 1"},
        ),
    log:
        f"{RESULTS}/logs/table1.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
    script:
        "../scripts/table1.py"


rule table2:
    output:
        report(
            f"{RESULTS}/table2.csv",
            caption="../report/table2.rst",
            category=LADDERS,
            labels={"name": "Table 2"},
        ),
    log:
        f"{RESULTS}/logs/table2.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        archs=get_table2_models(),
    script:
        "../scripts/table2.py"


rule ladder_table:
    input:
        PAPER_CONFIG,
    output:
        report(
            f"{RESULTS}/table{{n}}.csv",
            caption="../report/ladder.rst",
            category=LADDERS,
            labels={"name": "Table {n}"},
        ),
    log:
        f"{RESULTS}/logs/table{{n}}.log",
    wildcard_constraints:
        n="[3-6]",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        arch=lambda wildcards: LADDER_ARCHS[wildcards.n],
    script:
        "../scripts/ladder_table.py"


rule table7:
    input:
        fits=FITS,
    output:
        report(
            f"{RESULTS}/table7.csv",
            caption="../report/table7.rst",
            category=MAIN,
            labels={"name": "Table 7"},
        ),
    log:
        f"{RESULTS}/logs/table7.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
    script:
        "../scripts/table7.py"


rule table3:
    input:
        f"{RESULTS}/table3.csv",
    localrule: True


rule table4:
    input:
        f"{RESULTS}/table4.csv",
    localrule: True


rule table5:
    input:
        f"{RESULTS}/table5.csv",
    localrule: True


rule table6:
    input:
        f"{RESULTS}/table6.csv",
    localrule: True


rule allocation:
    input:
        fits=FITS,
    output:
        report(
            f"{RESULTS}/allocation.csv",
            caption="../report/allocation.rst",
            category=MAIN,
            labels={"name": "Compute-optimal allocation"},
        ),
    log:
        f"{RESULTS}/logs/allocation.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        budgets=config["fit"]["budgets_pflops"],
    script:
        "../scripts/allocation.py"


TABLES = [f"{RESULTS}/table{n}.csv" for n in range(1, 8)]
FIGURES = [f"{RESULTS}/figures/fig{n}.pdf" for n in range(1, 17)]


rule report:
    input:
        tables=TABLES,
        figures=FIGURES,
        fits=FITS,
    output:
        f"{RESULTS}/report.md",
    log:
        f"{RESULTS}/logs/report.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        config=get_result_config(),
    script:
        "../scripts/report.py"
