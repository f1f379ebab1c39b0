"""Train one model: one (arch, width, fraction) run, or every fraction of a shared run."""

from pathlib import Path

from pipeline.logs import configure_logging
from pipeline.train.loop import train_job


def main(smk):
    configure_logging(smk.log[0])
    if "fractions" in smk.params.keys():  # a shared run writes every fraction's folder
        fractions = [float(f) for f in smk.params.fractions]
        folders = [Path(curve).parent for curve in smk.output.curves]
        arch = smk.params.arch_name
    else:
        fractions, folders = [float(smk.wildcards.fraction)], [Path(smk.output.curve).parent]
        arch = smk.wildcards.arch
    # how the job runs (not rerun triggers): resources and threads, else the train section
    runtime = {
        "threads": smk.threads,
        "device": smk.resources.get("device") or smk.resources.get("train_device"),
        "checkpoint_every_seconds": smk.resources.get("checkpoint_every_seconds"),
    }
    train_job(
        smk.input.train,
        smk.input.val,
        smk.input.stats,
        arch_name=arch,
        arch_section=smk.params.arch,
        width=int(smk.wildcards.width),
        fraction_dirs=dict(zip(fractions, folders, strict=True)),
        train_section=smk.params.train,
        variant=smk.params.get("variant", "base"),
        seed=int(smk.wildcards.seed) if "seed" in smk.wildcards.keys() else None,
        runtime=runtime,
    )


main(snakemake)  # noqa: F821
