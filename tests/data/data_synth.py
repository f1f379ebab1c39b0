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


def make_atoms(numbers, positions, energy=None, forces=None, charge=0, spin=1):
    """ASE Atoms with a single-point calculator and OMol25-style ``info``."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(numbers=numbers, positions=positions)
    results = {}
    if energy is not None:
        results["energy"] = energy
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64)
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    if charge is not None:
        atoms.info["charge"] = charge
    if spin is not None:
        atoms.info["spin"] = spin
    return atoms


def write_aselmdb(path, atoms_list):
    """Write an OMol25-style shard: ``db.write(atoms, data=atoms.info)``."""
    import ase.db

    db = ase.db.connect(str(path), type="aselmdb")
    for atoms in atoms_list:
        db.write(atoms, data=dict(atoms.info))
    db.close()
    return path


def corrupt_record(path, row_id: int):
    """Overwrite the stored bytes of row ``row_id`` with garbage (zlib cannot decode)."""
    import lmdb

    env = lmdb.open(str(path), subdir=False)
    with env.begin(write=True) as txn:
        assert txn.get(str(row_id).encode()) is not None
        txn.put(str(row_id).encode(), b"not a compressed record")
    env.close()


def bad_cases(rng, max_atoms: int):
    """(reason or None, Atoms) pairs covering every drop reason of a source record."""

    def good(n=5):
        z, x, e, f = random_molecule(rng, n)
        return z, x, e, f

    cases = []
    for _ in range(6):
        z, x, e, f = good(int(rng.integers(3, 9)))
        cases.append((None, make_atoms(z, x, e, f)))
    z, x, e, f = good()
    cases.append(("charged", make_atoms(z, x, e, f, charge=1)))
    z, x, e, f = good()
    cases.append(("open_shell", make_atoms(z, x, e, f, spin=2)))
    z, x, e, f = good(max_atoms + 1)
    cases.append(("too_large", make_atoms(z, x, e, f)))
    z, x, e, f = good(max_atoms)  # max_atoms is inclusive
    cases.append((None, make_atoms(z, x, e, f)))
    z, x, e, f = good()
    cases.append(("non_finite_label", make_atoms(z, x, float("nan"), f)))
    z, x, e, f = good()
    f[2, 1] = np.inf
    cases.append(("non_finite_label", make_atoms(z, x, e, f)))
    z, x, e, f = good()
    x[3] = x[1]
    cases.append(("overlapping_atoms", make_atoms(z, x, e, f)))
    z, x, e, f = good()
    x[-1] = x[-2] + np.array([0.0, 0.0, 9.0])  # 9 Angstrom from everything
    cases.append(("no_neighbor_within_cutoff", make_atoms(z, x, e, f)))
    cases.append(
        (
            "no_neighbor_within_cutoff",
            make_atoms([6], [[0.0, 0.0, 0.0]], -1030.0, [[0.0, 0.0, 0.0]]),
        )
    )
    z, x, e, f = good()
    cases.append(("missing_forces", make_atoms(z, x, e, None)))
    return cases
