# Figures 1-16 (and figure 13's group averaging): light rules, run where Snakemake runs.


rule fig1:
    input:
        frontiers=FRONTIERS,
        fits=FITS,
    output:
        report(
            f"{RESULTS}/figures/fig1.pdf",
            caption="../report/main_fig1.rst",
            category=MAIN,
            labels={"name": "Figure 1"},
        ),
    log:
        f"{RESULTS}/logs/fig1.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
    script:
        "../scripts/fig1.py"


rule fig2:
    input:
        points=KAPPA_POINTS,
        kappas=KAPPAS,
    output:
        report(
            f"{RESULTS}/figures/fig2.pdf",
            caption="../report/main_fig2.rst",
            category=MAIN,
            labels={"name": "Figure 2"},
        ),
    log:
        f"{RESULTS}/logs/fig2.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig2.py"


rule fig3:
    input:
        runs=get_base_run_files(ARCHS),
        frontiers=FRONTIERS,
        kappas=KAPPAS,
    output:
        report(
            f"{RESULTS}/figures/fig3.pdf",
            caption="../report/main_fig3.rst",
            category=MAIN,
            labels={"name": "Figure 3"},
        ),
    log:
        f"{RESULTS}/logs/fig3.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
    script:
        "../scripts/fig3.py"


rule fig4:
    input:
        runs=lambda wildcards: get_base_run_files(["esen"])
        + get_variant_run_files(get_variants_named("esen_lmax")),
        kappas=get_kappa_files("esen"),
    output:
        report(
            f"{RESULTS}/figures/fig4.pdf",
            caption="../report/sym_fig4.rst",
            category=SYMMETRY,
            labels={"name": "Figure 4"},
        ),
    log:
        f"{RESULTS}/logs/fig4.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
        lmax=lambda wildcards: {
            "base": config["archs"]["esen"]["hparams"].get("lmax", 4),
            **{
                name: VARIANTS[name]["arch_settings"]["hparams"]["lmax"]
                for name in get_variants_named("esen_lmax")
            },
        },
    script:
        "../scripts/fig4.py"


rule fig5:
    input:
        runs=get_base_run_files(ARCHS),
        fits=FITS,
    output:
        report(
            f"{RESULTS}/figures/fig5.pdf",
            caption="../report/main_fig5.rst",
            category=MAIN,
            labels={"name": "Figure 5"},
        ),
    log:
        f"{RESULTS}/logs/fig5.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
    script:
        "../scripts/fig5.py"


rule fig6:
    input:
        fits=FITS,
    output:
        report(
            f"{RESULTS}/figures/fig6.pdf",
            caption="../report/main_fig6.rst",
            category=MAIN,
            labels={"name": "Figure 6"},
        ),
    log:
        f"{RESULTS}/logs/fig6.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
    script:
        "../scripts/fig6.py"


rule fig7:
    input:
        runs=lambda wildcards: get_base_run_files(["mpnn"])
        + get_variant_run_files(["symmetry_loss"]),
        kappas=get_kappa_files("mpnn"),
    output:
        report(
            f"{RESULTS}/figures/fig7.pdf",
            caption="../report/sym_fig7.rst",
            category=SYMMETRY,
            labels={"name": "Figure 7"},
        ),
    log:
        f"{RESULTS}/logs/fig7.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
        # a symmetry-loss step runs 1 + M forward/backward passes per batch
        forward_passes=lambda wildcards: 1
        + VARIANTS["symmetry_loss"]["train"].get("symmetry_loss_rotations", 0),
    script:
        "../scripts/fig7.py"


rule fig8:
    input:
        runs=lambda wildcards: get_variant_run_files(["multi_epoch", "multi_epoch_aug"]),
        kappas=get_kappa_files("mpnn"),
    output:
        report(
            f"{RESULTS}/figures/fig8.pdf",
            caption="../report/sym_fig8.rst",
            category=SYMMETRY,
            labels={"name": "Figure 8"},
        ),
    log:
        f"{RESULTS}/logs/fig8.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
    script:
        "../scripts/fig8.py"


rule fig9:
    input:
        runs=lambda wildcards: get_variant_run_files(
            ["multi_epoch_aug", "multi_epoch_esen"]
        ),
        kappas=get_kappa_files("mpnn", "esen"),
    output:
        report(
            f"{RESULTS}/figures/fig9.pdf",
            caption="../report/sym_fig9.rst",
            category=SYMMETRY,
            labels={"name": "Figure 9"},
        ),
    log:
        f"{RESULTS}/logs/fig9.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
    script:
        "../scripts/fig9.py"


rule fig10:
    input:
        grid=lambda wildcards: get_variant_run_files(get_variants_named("lr_batch")),
        sweep=lambda wildcards: get_variant_run_files(get_variants_named("depth_width")),
    output:
        report(
            f"{RESULTS}/figures/fig10.pdf",
            caption="../report/sweep_fig10.rst",
            category=SWEEPS,
            labels={"name": "Figure 10"},
        ),
    log:
        f"{RESULTS}/logs/fig10.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig10.py"


rule fig11:
    input:
        runs=lambda wildcards: get_variant_run_files(
            get_variants_named("vector_channels")
        ),
    output:
        report(
            f"{RESULTS}/figures/fig11.pdf",
            caption="../report/sweep_fig11.rst",
            category=SWEEPS,
            labels={"name": "Figure 11"},
        ),
    log:
        f"{RESULTS}/logs/fig11.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig11.py"


rule fig12:
    input:
        runs=lambda wildcards: get_variant_run_files(["diverse_mpnn", "diverse_esen"]),
        kappas=get_kappa_files("mpnn", "esen"),
    output:
        report(
            f"{RESULTS}/figures/fig12.pdf",
            caption="../report/sym_fig12.rst",
            category=SYMMETRY,
            labels={"name": "Figure 12"},
        ),
    log:
        f"{RESULTS}/logs/fig12.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
        kappa=config["kappa"],
    script:
        "../scripts/fig12.py"


rule group_average:
    input:
        model=f"{RESULTS}/runs/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}/model.pt",
        val=rules.extract.output.val,
        stats=rules.extract.output.stats,
    output:
        f"{RESULTS}/group_average/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}.csv",
    log:
        f"{RESULTS}/logs/group_average/{{arch}}/{{width}}/{{fraction}}/seed{{seed}}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        group_average=config["group_average"],
        seed=config["train"]["seed"],
    script:
        "../scripts/group_average.py"


# Figure 13 averages the first seed's model of every width at the largest fraction.
rule fig13:
    input:
        get_group_average_files,
    output:
        report(
            f"{RESULTS}/figures/fig13.pdf",
            caption="../report/sym_fig13.rst",
            category=SYMMETRY,
            labels={"name": "Figure 13"},
        ),
    log:
        f"{RESULTS}/logs/fig13.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        fit=config["fit"],
    script:
        "../scripts/fig13.py"


rule fig14:
    input:
        runs=get_base_run_files(ARCHS),
    output:
        report(
            f"{RESULTS}/figures/fig14.pdf",
            caption="../report/main_fig14.rst",
            category=MAIN,
            labels={"name": "Figure 14"},
        ),
    log:
        f"{RESULTS}/logs/fig14.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig14.py"


rule fig15:
    input:
        runs=lambda wildcards: get_base_run_files(["mpnn"])
        + get_variant_run_files(["absolute_positions"]),
    output:
        report(
            f"{RESULTS}/figures/fig15.pdf",
            caption="../report/sym_fig15.rst",
            category=SYMMETRY,
            labels={"name": "Figure 15"},
        ),
    log:
        f"{RESULTS}/logs/fig15.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig15.py"


rule fig16:
    input:
        runs=lambda wildcards: get_variant_run_files(["transformer"]),
    output:
        report(
            f"{RESULTS}/figures/fig16.pdf",
            caption="../report/sym_fig16.rst",
            category=SYMMETRY,
            labels={"name": "Figure 16"},
        ),
    log:
        f"{RESULTS}/logs/fig16.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/fig16.py"
