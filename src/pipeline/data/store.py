"""In-memory store of a prefix of an extracted HDF5 split (``train.h5`` / ``val.h5``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.data.extract import train_fraction_size

logger = logging.getLogger(__name__)

_REQUIRED = ("atomic_numbers", "positions", "forces", "energy", "ptr")


@dataclass
class MoleculeStore:
    """Molecules held in memory as flat per-atom arrays plus offsets.

    Attributes
    ----------
    atomic_numbers : uint8 [A]
    positions : float32 [A, 3]
        Angstrom.
    forces : float32 [A, 3]
        eV/Angstrom.
    energy : float64 [M]
        Total energy, eV.
    ptr : int64 [M + 1]
        Atoms of molecule i are ``ptr[i]:ptr[i + 1]``.
    cache : dict
        Derived objects cached by users of the store (e.g. validation batches).
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    forces: np.ndarray
    energy: np.ndarray
    ptr: np.ndarray
    cache: dict = field(default_factory=dict, repr=False, compare=False)
    """Derived objects cached by users of the store (e.g. validation batches)."""

    @classmethod
    def from_h5(cls, path: str | os.PathLike, fraction: float = 1.0) -> MoleculeStore:
        """Load the first ``ceil(fraction * M)`` molecules of an extracted split.

        The whole prefix is read with contiguous slices (one pass over the gzip chunks)
        and held in memory, so random access during training costs no I/O. Because
        extraction shuffled the training set once, prefixes are random subsets and
        smaller fractions are nested in larger ones.

        Raises
        ------
        FileNotFoundError, KeyError, ValueError
            Missing file, missing dataset, or fraction outside (0, 1].
        """
        import h5py

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: HDF5 store does not exist")
        with h5py.File(path, "r") as f:
            for key in _REQUIRED:
                if key not in f:
                    raise KeyError(f"{path}: dataset {key!r} missing")
            n_total = len(f["energy"])
            m = train_fraction_size(n_total, fraction) if n_total else 0
            ptr = f["ptr"][: m + 1].astype(np.int64)
            a = int(ptr[-1]) if m else 0
            store = cls(
                atomic_numbers=f["atomic_numbers"][:a],
                positions=f["positions"][:a],
                forces=f["forces"][:a],
                energy=f["energy"][:m],
                ptr=ptr if m else np.zeros(1, np.int64),
            )
        logger.info(
            "loaded %d of %d molecules (%d atoms) from %s", m, n_total, store.num_atoms, path
        )
        return store

    @property
    def num_molecules(self) -> int:
        """Number of molecules M."""
        return len(self.energy)

    @property
    def num_atoms(self) -> int:
        """Number of atoms A."""
        return int(self.ptr[-1])

    @property
    def atoms_per_molecule(self) -> np.ndarray:
        """int64 [M]: atoms of each molecule."""
        return np.diff(self.ptr)
