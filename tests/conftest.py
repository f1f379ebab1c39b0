"""Shared fixtures: seeds, and a tiny extracted dataset with real (Morse) physics labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # legacy global RNG, for libraries that use it


def _morse_molecules(count: int, seed: int):
    """Random small molecules of H, C, O with Morse-potential energies and forces."""
    from ase import Atoms
    from ase.calculators.morse import MorsePotential

    rng = np.random.default_rng(seed)
    molecules = []
    while len(molecules) < count:
        n = int(rng.integers(3, 9))
        positions = [np.zeros(3)]
        while len(positions) < n:
            # grow a connected cluster with bonds of 1.0-1.6 Angstrom, no close contacts
            anchor = positions[int(rng.integers(len(positions)))]
            direction = rng.normal(size=3)
            candidate = anchor + direction / np.linalg.norm(direction) * rng.uniform(1.0, 1.6)
            if min(np.linalg.norm(candidate - p) for p in positions) > 0.9:
                positions.append(candidate)
        numbers = rng.choice([1, 6, 8], size=n, p=[0.5, 0.3, 0.2])
        atoms = Atoms(numbers=numbers, positions=np.array(positions))
        atoms.calc = MorsePotential(epsilon=1.0, r0=1.2, rho0=4.0)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info.update(energy=energy, charge=0, spin=1)
        atoms.arrays["forces"] = forces
        molecules.append(atoms)
    return molecules


def write_morse_extxyz(path, count: int = 96, seed: int = 0):
    import ase.io

    molecules = _morse_molecules(count, seed)
    ase.io.write(str(path), molecules, format="extxyz")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """``extract_dataset`` output for 96 Morse molecules: 16 validation, 80 training."""
    from pipeline.data.extract import extract_dataset

    folder = tmp_path_factory.mktemp("tiny_dataset")
    source = write_morse_extxyz(folder / "molecules.extxyz")
    extract_dataset("extxyz", source, folder / "data", val_size=16, seed=0, n_workers=1)
    return folder / "data"
