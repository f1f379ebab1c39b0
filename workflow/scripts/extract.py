"""Extract the configured source to train/val HDF5, stats.json and summary.json."""

from pathlib import Path

from pipeline.data.extract import extract_dataset
from pipeline.logs import configure_logging


def main(smk):
    configure_logging(smk.log[0])
    data = smk.params.data
    extract_dataset(
        data["source"],
        data["path"],
        Path(smk.output.train).parent,
        neutral_only=data["neutral_only"],
        max_atoms=data["max_atoms"],
        val_size=data["val_size"],
        seed=data["seed"],
        n_workers=smk.threads,
    )


main(snakemake)  # noqa: F821
