"""Test-time group averaging over rotations (eq. 23, paper appendix H).

An unconstrained model phi is made (approximately) rotation equivariant at test time by

    f(x) = 1/M sum_i rho_out(g_i^-1) phi(rho_in(g_i) x),    g_i ~ Haar(SO(3)),

that is, the energy is the mean of the energies of M rotated copies of the molecule and
the forces are the copies' forces rotated back and averaged. Rotations act about each
molecule's centre of mass, as in training (:mod:`pipeline.train.augment`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import models
from pipeline.data.loader import validation_batches
from pipeline.data.stats import load_stats
from pipeline.data.store import MoleculeStore
from pipeline.provenance import resolve_device
from pipeline.train.augment import (
    centres_of_mass,
    random_rotations,
    rotate_about_centres,
    rotate_per_molecule,
)
from pipeline.train.loss import loss_terms, validation_metrics
from pipeline.train.step import normalised_energy

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64
_REQUIRED_KEYS = ("arch", "width", "hparams", "state_dict")


def load_run_model(
    model_dir_or_model_pt: str | Path, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild a run's model from its ``model.pt`` (eval mode, on ``device``).

    Parameters
    ----------
    model_dir_or_model_pt : path
        A run folder holding ``model.pt`` (and ``meta.json``), or the file itself.
    device : torch.device or str

    Returns
    -------
    model : nn.Module
    info : dict
        ``arch``, ``width``, ``hparams`` and, where the run recorded them,
        ``batch_size``, ``energy_weight`` and ``force_weight`` (from model.pt, else
        from the run's meta.json).
    """
    path = Path(model_dir_or_model_pt)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model.pt of a training run")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    missing = [key for key in _REQUIRED_KEYS if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise ValueError(f"{path}: not a run's model.pt (missing {missing})")
    info = {key: saved[key] for key in ("arch", "width", "hparams")}
    meta_path = path.with_name("meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    train = meta.get("train", {})
    info["batch_size"] = saved.get("batch_size", meta.get("batch_size"))
    info["energy_weight"] = saved.get("energy_weight", train.get("energy_weight", 1.0))
    info["force_weight"] = saved.get("force_weight", train.get("force_weight", 1.0))
    model = models.build(info["arch"], width=int(info["width"]), **info["hparams"])
    model.load_state_dict(saved["state_dict"])
    model.to(device).eval()
    info["n_params"] = models.num_params(model)
    return model, info


@torch.no_grad()
def evaluate_group_averaged(
    model_dir_or_model_pt: str | Path,
    val_h5: str | Path,
    stats_json: str | Path,
    rotations: list[int],
    seed: int = 0,
    *,
    include_identity: bool = False,
    batch_size: int | None = None,
    device: str = "auto",
) -> pd.DataFrame:
    """Validation loss of eq. 1 for the group-averaged model of eq. 23, per M.

    The M rotations of each molecule are the first M of one sequence of ``max(rotations)``
    Haar rotations drawn from ``seed`` (nested, as the fractions are), so one pass of
    ``max(rotations)`` forward evaluations serves every M.

    Parameters
    ----------
    model_dir_or_model_pt : path
        A training run folder (or its ``model.pt``): any arch of the registry.
    val_h5, stats_json : path
        The extract stage's validation set and statistics.
    rotations : list of int
        The numbers of rotations M to report, each >= 1.
    seed : int
        Seed of the rotations.
    include_identity : bool
        Make the first rotation of every molecule the identity, so that M = 1 is the
        plain model (its row reproduces the run's final validation loss).
    batch_size : int, optional
        Validation molecules per batch; default the run's batch size (model.pt or
        meta.json), else 64. Only the speed depends on it.
    device : str
        ``auto`` (CUDA when available), ``cpu`` or ``cuda``.

    Returns
    -------
    DataFrame
        One row per M (ascending): ``num_rotations``, ``val_loss``, ``val_energy_loss``,
        ``val_force_loss`` (normalised units), ``val_energy_mae_mev_per_atom`` (meV/atom),
        ``val_force_mae_mev_per_angstrom`` (meV/Angstrom), ``arch``, ``width``,
        ``n_params``, ``seed``, ``include_identity``.
    """
    wanted = sorted({int(m) for m in rotations})
    if not wanted or wanted[0] < 1:
        raise ValueError(f"rotations must be a non-empty list of integers >= 1, got {rotations}")
    torch_device = resolve_device(device)
    model, info = load_run_model(model_dir_or_model_pt, torch_device)
    dtype = next(model.parameters()).dtype
    stats = load_stats(stats_json)
    store = MoleculeStore.from_h5(val_h5)
    if store.num_molecules == 0:
        raise ValueError(f"{val_h5}: no validation molecules")
    energy_target_all = normalised_energy(store, stats)
    sigma = stats["energy_std_eV"]
    size = int(batch_size or info["batch_size"] or DEFAULT_BATCH_SIZE)
    max_m = wanted[-1]
    generator = torch.Generator().manual_seed(seed)
    sums = {m: [0.0, 0.0] for m in wanted}
    molecules = atoms = 0
    for batch in validation_batches(store, size, model.cutoff, model.max_neighbors):
        batch = batch.to(torch_device)
        n = batch.num_molecules
        positions = batch.positions.to(dtype)
        indices = batch.molecule_index.cpu().numpy()
        energy_target = torch.as_tensor(
            energy_target_all[indices], dtype=dtype, device=torch_device
        )
        forces_target = batch.forces.to(dtype) / sigma
        centres = centres_of_mass(positions, batch.atomic_numbers, batch.batch, n)  # (n, 3)
        group = random_rotations(max_m * n, generator, dtype, torch_device).view(max_m, n, 3, 3)
        energy_sum = torch.zeros(n, dtype=dtype, device=torch_device)
        forces_sum = torch.zeros_like(positions)
        for k in range(max_m):
            if include_identity and k == 0:
                energy, forces = model(
                    batch.atomic_numbers, positions, batch.edge_index, batch.batch, n
                )
            else:
                rotated = rotate_about_centres(positions, group[k], centres, batch.batch)
                energy, forces = model(
                    batch.atomic_numbers, rotated, batch.edge_index, batch.batch, n
                )
                # rho_out(g^-1): forces back to the molecule's frame
                forces = rotate_per_molecule(forces, group[k].transpose(-1, -2), batch.batch)
            energy_sum += energy
            forces_sum += forces
            if k + 1 in sums:
                terms = loss_terms(
                    energy_sum / (k + 1),
                    forces_sum / (k + 1),
                    energy_target,
                    forces_target,
                    batch.n_atoms,
                )
                sums[k + 1][0] += float(terms.energy_sum)
                sums[k + 1][1] += float(terms.force_sum)
        molecules += n
        atoms += batch.num_atoms
    rows = []
    for m in wanted:
        metrics = validation_metrics(
            sums[m][0],
            sums[m][1],
            molecules,
            atoms,
            info["energy_weight"],
            info["force_weight"],
            sigma,
        )
        if not np.isfinite(metrics["val_loss"]):
            raise ValueError(
                f"{model_dir_or_model_pt}: group-averaged validation loss at M={m} is "
                f"{metrics['val_loss']}"
            )
        rows.append({"num_rotations": m, **metrics})
        logger.info(
            "%s width %s, M=%d: val_loss %.5f (energy %.2f meV/atom, forces %.1f meV/A)",
            info["arch"],
            info["width"],
            m,
            metrics["val_loss"],
            metrics["val_energy_mae_mev_per_atom"],
            metrics["val_force_mae_mev_per_angstrom"],
        )
    frame = pd.DataFrame(rows)
    frame["arch"] = info["arch"]
    frame["width"] = int(info["width"])
    frame["n_params"] = info["n_params"]
    frame["seed"] = seed
    frame["include_identity"] = include_identity
    return frame
