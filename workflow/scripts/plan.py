"""The study's cost plan: results/plan.csv and per-arch totals printed at the end."""

from pipeline.logs import configure_logging
from pipeline.plan import write_plan


def main(smk):
    configure_logging(smk.log[0])
    train_h5 = {key: smk.input[key] for key in smk.input.keys() if key != "val"}
    summary = write_plan(
        smk.params.jobs,
        train_h5,
        smk.input.val,
        smk.output[0],
        cpu_jobs=smk.params.cpu_jobs,
        flops=smk.params.flops,
        num_molecules=smk.params.plan["num_molecules"],
        train_atoms=smk.params.plan["train_atoms"],
        results=smk.params.pilots,
        device_kind=smk.params.plan["device_kind"],
    )
    print(f"\nCost plan ({smk.output[0]}):\n{summary}\n", flush=True)


main(snakemake)  # noqa: F821
