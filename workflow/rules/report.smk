localrules:
    extract,
    demo_data,
    extract_variant,
    kappa,
    kappa_table,
    frontier,
    fit,
    group_average,
    ladder_table,
    report,
    allocation,
    main,
    all,
    table1,
    table2,
    table3,
    table4,
    table5,
    table6,
    table7,
    fig1,
    fig2,
    fig3,
    fig4,
    fig5,
    fig6,
    fig7,
    fig8,
    fig9,
    fig10,
    fig11,
    fig12,
    fig13,
    fig14,
    fig15,
    fig16,


rule table1:
    input:
        fits=FITS,
    output:
        f"{RESULTS}/table1.csv",
    log:
        f"{RESULTS}/logs/table1.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table1.py"


rule table2:
    output:
        f"{RESULTS}/table2.csv",
    log:
        f"{RESULTS}/logs/table2.log",
    conda:
        "../../environment.yml"
    params:
        archs=sorted(set(ARCHS) | {v["arch"] for v in VARIANTS.values()}),
    script:
        "../scripts/table2.py"


rule ladder_table:
    input:
        PAPER_CONFIG,
    output:
        f"{RESULTS}/table{{n}}.csv",
    log:
        f"{RESULTS}/logs/table{{n}}.log",
    wildcard_constraints:
        n="[3-6]",
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
        f"{RESULTS}/table7.csv",
    log:
        f"{RESULTS}/logs/table7.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/table7.py"


rule fig1:
    input:
        frontiers=FRONTIERS,
        fits=FITS,
    output:
        f"{RESULTS}/figures/fig1.pdf",
    log:
        f"{RESULTS}/logs/fig1.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig1.py"


rule fig2:
    input:
        points=KAPPA_POINTS,
        kappas=KAPPAS,
    output:
        f"{RESULTS}/figures/fig2.pdf",
    log:
        f"{RESULTS}/logs/fig2.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig2.py"


rule fig3:
    input:
        runs=base_runs(ARCHS),
        frontiers=FRONTIERS,
        kappas=KAPPAS,
    output:
        f"{RESULTS}/figures/fig3.pdf",
    log:
        f"{RESULTS}/logs/fig3.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig3.py"


rule fig4:
    input:
        runs=lambda wildcards: base_runs(["esen"])
        + runs_of(variants_named("esen_lmax")),
        kappas=kappas_of("esen"),
    output:
        f"{RESULTS}/figures/fig4.pdf",
    log:
        f"{RESULTS}/logs/fig4.log",
    conda:
        "../../environment.yml"
    params:
        lmax=lambda wildcards: {
            "base": config["archs"]["esen"]["hparams"].get("lmax", 4),
            **{
                name: VARIANTS[name]["arch_settings"]["hparams"]["lmax"]
                for name in variants_named("esen_lmax")
            },
        },
    script:
        "../scripts/fig4.py"


rule fig5:
    input:
        runs=base_runs(ARCHS),
        fits=FITS,
    output:
        f"{RESULTS}/figures/fig5.pdf",
    log:
        f"{RESULTS}/logs/fig5.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig5.py"


rule fig6:
    input:
        fits=FITS,
    output:
        f"{RESULTS}/figures/fig6.pdf",
    log:
        f"{RESULTS}/logs/fig6.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig6.py"


rule fig7:
    input:
        runs=lambda wildcards: base_runs(["mpnn"]) + runs_of(["symmetry_loss"]),
        kappas=kappas_of("mpnn"),
    output:
        f"{RESULTS}/figures/fig7.pdf",
    log:
        f"{RESULTS}/logs/fig7.log",
    conda:
        "../../environment.yml"
    params:
        # a symmetry-loss step runs 1 + M forward/backward passes per batch
        forward_passes=lambda wildcards: 1
        + VARIANTS["symmetry_loss"]["train"].get("symmetry_loss_rotations", 0),
    script:
        "../scripts/fig7.py"


rule fig8:
    input:
        runs=lambda wildcards: runs_of(["multi_epoch", "multi_epoch_aug"]),
        kappas=kappas_of("mpnn"),
    output:
        f"{RESULTS}/figures/fig8.pdf",
    log:
        f"{RESULTS}/logs/fig8.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig8.py"


rule fig9:
    input:
        runs=lambda wildcards: runs_of(["multi_epoch_aug", "multi_epoch_esen"]),
        kappas=kappas_of("mpnn", "esen"),
    output:
        f"{RESULTS}/figures/fig9.pdf",
    log:
        f"{RESULTS}/logs/fig9.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig9.py"


rule fig10:
    input:
        grid=lambda wildcards: runs_of(variants_named("lr_batch")),
        sweep=lambda wildcards: runs_of(variants_named("depth_width")),
    output:
        f"{RESULTS}/figures/fig10.pdf",
    log:
        f"{RESULTS}/logs/fig10.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig10.py"


rule fig11:
    input:
        runs=lambda wildcards: runs_of(variants_named("vector_channels")),
    output:
        f"{RESULTS}/figures/fig11.pdf",
    log:
        f"{RESULTS}/logs/fig11.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig11.py"


rule fig12:
    input:
        runs=lambda wildcards: runs_of(["diverse_mpnn", "diverse_esen"]),
        kappas=kappas_of("mpnn", "esen"),
    output:
        f"{RESULTS}/figures/fig12.pdf",
    log:
        f"{RESULTS}/logs/fig12.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig12.py"


rule group_average:
    input:
        model=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/model.pt",
        val=rules.extract.output.val,
        stats=rules.extract.output.stats,
    output:
        f"{RESULTS}/group_average/{{arch}}/{{width}}/{{fraction}}.csv",
    log:
        f"{RESULTS}/logs/group_average/{{arch}}/{{width}}/{{fraction}}.log",
    conda:
        "../../environment.yml"
    params:
        group_average=config["group_average"],
        seed=config["train"]["seed"],
    script:
        "../scripts/group_average.py"


rule fig13:
    input:
        expand(
            f"{RESULTS}/group_average/{{arch}}/{{width}}/{max(FRACTIONS, key=float)}.csv",
            arch=config["group_average"]["arch"],
            width=config["archs"]
            .get(config["group_average"]["arch"], {})
            .get("widths", []),
        ),
    output:
        f"{RESULTS}/figures/fig13.pdf",
    log:
        f"{RESULTS}/logs/fig13.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig13.py"


rule fig14:
    input:
        runs=base_runs(ARCHS),
    output:
        f"{RESULTS}/figures/fig14.pdf",
    log:
        f"{RESULTS}/logs/fig14.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig14.py"


rule fig15:
    input:
        runs=lambda wildcards: base_runs(["mpnn"]) + runs_of(["absolute_positions"]),
    output:
        f"{RESULTS}/figures/fig15.pdf",
    log:
        f"{RESULTS}/logs/fig15.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig15.py"


rule fig16:
    input:
        runs=lambda wildcards: runs_of(["transformer"]),
    output:
        f"{RESULTS}/figures/fig16.pdf",
    log:
        f"{RESULTS}/logs/fig16.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig16.py"


rule table3:
    input:
        f"{RESULTS}/table3.csv",


rule table4:
    input:
        f"{RESULTS}/table4.csv",


rule table5:
    input:
        f"{RESULTS}/table5.csv",


rule table6:
    input:
        f"{RESULTS}/table6.csv",


TABLES = [f"{RESULTS}/table{n}.csv" for n in range(1, 8)]
FIGURES = [f"{RESULTS}/figures/fig{n}.pdf" for n in range(1, 17)]


rule report:
    input:
        tables=TABLES,
        figures=FIGURES,
    output:
        f"{RESULTS}/report.md",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../environment.yml"
    params:
        config=config,
    script:
        "../scripts/report.py"


rule allocation:
    input:
        fits=FITS,
    output:
        f"{RESULTS}/allocation.csv",
    log:
        f"{RESULTS}/logs/allocation.log",
    conda:
        "../../environment.yml"
    params:
        budgets=config["fit"]["budgets_pflops"],
    script:
        "../scripts/allocation.py"
