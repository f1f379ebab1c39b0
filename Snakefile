"""NNIP scaling-law study: extract -> train -> kappa -> frontier -> fit -> report.

snakemake --cores all                        # the main job: results/table1.csv, fig1
snakemake --cores all all                    # every table and figure, results/report.md
snakemake --cores all results/table1.csv     # one target by file name
snakemake --profile slurm results/table1.csv # on a SLURM cluster
"""

# config.yaml is the base that --configfile/--config override key by key; a complete
# study of its own (config/paper.yaml) sets inherit_defaults: false to replace it.
if config.get("inherit_defaults", True):

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/variants.smk"
include: "workflow/rules/kappa.smk"
include: "workflow/rules/frontier.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/plan.smk"


rule main:
    default_target: True
    input:
        f"{RESULTS}/table1.csv",
        f"{RESULTS}/figures/fig1.pdf",
        f"{RESULTS}/kappa.csv",
    localrule: True


rule all:
    input:
        f"{RESULTS}/report.md",
        f"{RESULTS}/kappa.csv",
        f"{RESULTS}/allocation.csv",
    localrule: True
