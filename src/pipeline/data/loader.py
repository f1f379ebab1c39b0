"""Batches of molecules with radius graphs, from an in-memory :class:`MoleculeStore`.

The store holds the whole training (or validation) subset in memory, so a batch is a
gather from numpy arrays plus one batched :func:`radius_graph`; no HDF5 chunk is read
at random during training. Order is deterministic from the seed and epoch, and
iteration can resume from any batch index.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from pipeline.data.graphs import radius_graph
from pipeline.data.store import MoleculeStore


@dataclass
class Batch:
    """A batch of M molecules with A atoms and E edges.

    Attributes
    ----------
    atomic_numbers : long [A]
    positions : float32 [A, 3]
        Angstrom.
    forces : float32 [A, 3]
        eV/Angstrom.
    energy : float64 [M]
        Raw total energy, eV.
    n_atoms : long [M]
    batch : long [A]
        Molecule of each atom (0..M-1).
    edge_index : long [2, E]
        Row 0 neighbour, row 1 centre (see :func:`radius_graph`).
    molecule_index : long [M]
        Row of each molecule in the store.
    """

    atomic_numbers: torch.Tensor
    positions: torch.Tensor
    forces: torch.Tensor
    energy: torch.Tensor
    n_atoms: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    molecule_index: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Copy of the batch on ``device``."""
        return Batch(
            **{
                f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                for f in fields(self)
            }
        )

    @property
    def num_molecules(self) -> int:
        return int(self.n_atoms.numel())

    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.numel())


def make_batch(store: MoleculeStore, molecule_indices, cutoff: float, max_neighbors: int) -> Batch:
    """Gather molecules ``molecule_indices`` (store rows) into a :class:`Batch`.

    Parameters
    ----------
    store : MoleculeStore
    molecule_indices : int array-like [M]
    cutoff : float
        Radius-graph cutoff, Angstrom.
    max_neighbors : int
        Neighbours kept per atom (nearest).
    """
    idx = np.asarray(molecule_indices, dtype=np.int64)
    if idx.ndim != 1 or len(idx) == 0:
        raise ValueError("molecule_indices must be a non-empty 1-D sequence")
    if idx.min() < 0 or idx.max() >= store.num_molecules:
        raise IndexError(f"molecule index out of range [0, {store.num_molecules})")
    starts = store.ptr[idx]
    counts = store.ptr[idx + 1] - starts
    offs = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    atoms = np.repeat(starts, counts) + offs
    batch = torch.from_numpy(np.repeat(np.arange(len(idx)), counts))
    positions = torch.from_numpy(store.positions[atoms])
    return Batch(
        atomic_numbers=torch.from_numpy(store.atomic_numbers[atoms].astype(np.int64)),
        positions=positions,
        forces=torch.from_numpy(store.forces[atoms]),
        energy=torch.from_numpy(store.energy[idx].astype(np.float64)),
        n_atoms=torch.from_numpy(counts.astype(np.int64)),
        batch=batch,
        edge_index=radius_graph(positions, batch, cutoff, max_neighbors),
        molecule_index=torch.from_numpy(idx.copy()),
    )


def epoch_order(num_molecules: int, epoch: int, seed: int) -> np.ndarray:
    """Molecule order of an epoch.

    Epoch 0 is the identity (the store was shuffled once at extraction, so training on
    a prefix reads the nested fraction subsets in order); later epochs use a
    permutation from ``np.random.default_rng([seed, epoch])``.

    Returns
    -------
    int64 [num_molecules]
    """
    if epoch == 0:
        return np.arange(num_molecules, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(num_molecules).astype(np.int64)


def iterate_batches(
    store: MoleculeStore,
    order: np.ndarray,
    batch_size: int,
    cutoff: float,
    max_neighbors: int,
    start_batch: int = 0,
) -> Iterator[Batch]:
    """Yield batches of ``batch_size`` molecules following ``order``.

    Batch b holds ``order[b * batch_size:(b + 1) * batch_size]``; the last partial batch
    is included. Starting at ``start_batch`` resumes an interrupted pass exactly.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.asarray(order, dtype=np.int64)
    for b0 in range(start_batch * batch_size, len(order), batch_size):
        yield make_batch(store, order[b0 : b0 + batch_size], cutoff, max_neighbors)


def validation_batches(
    store: MoleculeStore, batch_size: int, cutoff: float, max_neighbors: int
) -> list[Batch]:
    """All validation molecules in batches of similar size, computed once and cached.

    Molecules are sorted by atom count (stable, so ties keep store order) and cut
    into batches of ``batch_size``; this reduces padding in the radius graph. The list
    is cached on the store per (batch_size, cutoff, max_neighbors), since validation
    runs many times; an empty store gives an empty list.
    """
    key = ("validation", int(batch_size), float(cutoff), int(max_neighbors))
    if key not in store.cache:
        order = np.argsort(store.atoms_per_molecule, kind="stable")
        store.cache[key] = list(iterate_batches(store, order, batch_size, cutoff, max_neighbors))
    return store.cache[key]
