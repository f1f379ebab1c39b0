"""Builders of small synthetic sources for the data tests (no network, tmp_path only)."""

from __future__ import annotations

import h5py
import numpy as np

REFS = {1: -13.6, 6: -1030.0, 7: -1485.0, 8: -2040.0}


def random_molecule(rng: np.random.Generator, n_atoms: int):
    """A zig-zag chain of atoms >= 1 Angstrom apart; returns numbers, positions, E, F."""
    # x spacing 1.0-1.5 and small y/z jitter: no overlaps, every atom has a neighbour
    positions = np.zeros((n_atoms, 3))
    positions[:, 0] = np.cumsum(rng.uniform(1.0, 1.5, size=n_atoms))
    positions[:, 1:] = rng.uniform(-0.3, 0.3, size=(n_atoms, 2))
    numbers = rng.choice(list(REFS), size=n_atoms)
    energy = float(sum(REFS[int(z)] for z in numbers) + rng.normal(0.0, 0.5))
    forces = rng.normal(0.0, 1.0, size=(n_atoms, 3))
    return numbers, positions, energy, forces


def write_demo_like(path, molecules, charge=None, spin=None, group=None):
    """Write molecules [(numbers, positions, energy, forces)] in the demo file layout."""
    m = len(molecules)
    ptr = np.zeros(m + 1, np.int64)
    ptr[1:] = np.cumsum([len(mol[0]) for mol in molecules])
    with h5py.File(path, "w") as f:
        f["atomic_numbers"] = np.concatenate([mol[0] for mol in molecules]).astype(np.uint8)
        f["positions"] = np.concatenate([mol[1] for mol in molecules]).astype(np.float32)
        f["forces"] = np.concatenate([mol[3] for mol in molecules]).astype(np.float32)
        f["energy"] = np.array([mol[2] for mol in molecules], np.float64)
        f["ptr"] = ptr
        f["charge"] = np.zeros(m, np.int8) if charge is None else np.asarray(charge, np.int8)
        f["spin"] = np.ones(m, np.int8) if spin is None else np.asarray(spin, np.int8)
        f["group"] = np.arange(m, dtype=np.int32) if group is None else np.asarray(group, np.int32)
    return path
