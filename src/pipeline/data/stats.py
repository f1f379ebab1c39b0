"""Energy references and normalisation statistics (``stats.json``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

_KEYS = ("element_energy_eV", "energy_mean_eV", "energy_std_eV")


def load_stats(path: str | os.PathLike) -> dict:
    """Read ``stats.json`` written by :func:`pipeline.data.extract.extract_dataset`.

    Returns
    -------
    dict
        ``element_energy_eV`` ({"Z": eV}), ``energy_mean_eV``, ``energy_std_eV`` (eV, of
        referenced total energies), ``num_molecules``, ``num_atoms``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: stats file does not exist")
    stats = json.loads(path.read_text())
    for key in _KEYS:
        if key not in stats:
            raise KeyError(f"{path}: key {key!r} missing")
    return stats


def referenced_energy(
    energy: np.ndarray, atomic_numbers: np.ndarray, ptr: np.ndarray, stats: dict
) -> np.ndarray:
    """Total energies minus the per-element references.

    Parameters
    ----------
    energy : float64 [M]
        Total energies, eV.
    atomic_numbers : int [A]
    ptr : int64 [M + 1]
        Molecule offsets into ``atomic_numbers``.
    stats : dict
        From :func:`load_stats`.

    Returns
    -------
    float64 [M]
        Referenced energies, eV.

    Raises
    ------
    KeyError
        An element has no reference (names the element).
    """
    refs = np.full(256, np.nan)
    for z, e in stats["element_energy_eV"].items():
        refs[int(z)] = e
    z = np.asarray(atomic_numbers, dtype=np.int64)
    per_atom = refs[z]
    if np.isnan(per_atom).any():
        bad = sorted({int(v) for v in z[np.isnan(per_atom)]})
        raise KeyError(
            f"no energy reference for element(s) Z={bad} in stats "
            f"(references exist for Z={sorted(map(int, stats['element_energy_eV']))})"
        )
    ptr = np.asarray(ptr, dtype=np.int64)
    counts = np.diff(ptr)
    mol = np.repeat(np.arange(len(counts)), counts)
    ref_sum = np.bincount(mol, weights=per_atom, minlength=len(counts))
    return np.asarray(energy, dtype=np.float64) - ref_sum
