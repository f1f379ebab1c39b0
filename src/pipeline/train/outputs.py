"""A training job's outputs: per fraction ``curve.csv``, ``model.pt`` and ``meta.json``.

Outputs are staged in a work folder that is no declared output (so Snakemake does not
delete them when a preempted job fails) and move to their run folders when the whole
job is done, meta.json last; every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.train.checkpoint import save_atomic
from pipeline.train.optim import evaluation_weights
from pipeline.train.settings import ArchSettings, TrainSettings

CURVE_COLUMNS = [
    "step",
    "epoch",
    "molecules_seen",
    "atoms_seen",
    "train_seconds",
    "eval_seconds",
    "val_loss",
    "val_energy_loss",
    "val_force_loss",
    "val_energy_mae_mev_per_atom",
    "val_force_mae_mev_per_angstrom",
    "train_loss",
]
OUTPUT_FILES = ("curve.csv", "model.pt", "meta.json")  # the order they are published in


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def write_json_atomic(payload: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    tmp.replace(path)


def fraction_curve(rows: list[dict], steps: set[int], symmetry_loss: bool) -> pd.DataFrame:
    """One fraction's curve from the job's evaluation rows.

    Parameters
    ----------
    rows : list of dict
        Every evaluation of the job (``step`` 1-based, ``eval_duration`` in s).
    steps : set of int
        The 1-based steps of this fraction's own schedule.
    symmetry_loss : bool
        Add the ``train_symmetry_loss`` column.

    ``eval_seconds`` counts the evaluations of this fraction's own schedule only, as a
    separate run of it would.
    """
    own = [dict(row) for row in rows if row["step"] in steps]
    for row, seconds in zip(own, np.cumsum([row.pop("eval_duration") for row in own]), strict=True):
        row["eval_seconds"] = float(seconds)
    columns = CURVE_COLUMNS + (["train_symmetry_loss"] if symmetry_loss else [])
    return pd.DataFrame(own, columns=columns)


def model_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    arch: ArchSettings,
    width: int,
    settings: TrainSettings,
) -> dict:
    """model.pt of the current step: the schedule-free averaged weights, on the CPU, with
    what rebuilds the model (arch, width, hparams) and the loss weights."""
    with evaluation_weights(model, optimizer):
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {
        "arch": arch.name,
        "width": width,
        "hparams": arch.hparams,
        "state_dict": weights,
        "batch_size": arch.batch_size,
        "energy_weight": settings.energy_weight,
        "force_weight": settings.force_weight,
    }


class RunWriter:
    """Stages and publishes the run folders of one job.

    Parameters
    ----------
    fraction_dirs : dict[float, Path]
        Run folder of each fraction.
    work_dir : Path
        Where staged outputs and the resume checkpoint wait.
    """

    def __init__(self, fraction_dirs: dict[float, Path], work_dir: Path):
        self.fraction_dirs, self.work_dir = fraction_dirs, work_dir

    def staging(self, fraction: float) -> Path:
        return self.work_dir / f"fraction_{fraction:g}"

    def stage(self, fraction: float, curve: pd.DataFrame, model_payload: dict, meta: dict) -> None:
        """Write one fraction's three files to its staging folder (meta.json last)."""
        out = self.staging(fraction)
        out.mkdir(parents=True, exist_ok=True)
        write_csv_atomic(curve, out / "curve.csv")
        save_atomic(model_payload, out / "model.pt")
        write_json_atomic(meta, out / "meta.json")

    def publish(self) -> None:
        """Move every staged fraction's files to its run folder (meta.json last), then
        remove the work folder."""
        for fraction, out in self.fraction_dirs.items():
            staged = self.staging(fraction)
            out.mkdir(parents=True, exist_ok=True)
            for name in OUTPUT_FILES:
                (staged / name).replace(out / name)
        shutil.rmtree(self.work_dir)
