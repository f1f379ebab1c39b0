"""Random rotations (Haar measure on SO(3)) for augmentation and symmetry losses."""

from __future__ import annotations

import torch

from pipeline.data.loader import Batch


def random_rotations(
    count: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``count`` rotation matrices drawn uniformly from SO(3): (count, 3, 3).

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q gives the Haar
    measure on O(3); flipping one column where det = -1 maps it onto SO(3).
    """
    gaussian = torch.randn(count, 3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    flip = torch.linalg.det(q) < 0
    q[flip, :, 0] = -q[flip, :, 0]
    return q.to(dtype=dtype, device=device)


def rotate_per_molecule(
    vectors: torch.Tensor, rotations: torch.Tensor, batch: torch.Tensor
) -> torch.Tensor:
    """Apply molecule m's rotation to each of its atoms' vectors: (A, 3) -> (A, 3)."""
    return torch.einsum("aij,aj->ai", rotations[batch], vectors)


_MASSES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def atomic_masses(atomic_numbers: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard atomic masses (u, from ``ase.data.atomic_masses``) of each atom: (A,)."""
    key = (dtype, atomic_numbers.device)
    if key not in _MASSES:
        from ase.data import atomic_masses as table

        _MASSES[key] = torch.as_tensor(table, dtype=dtype, device=atomic_numbers.device)
    return _MASSES[key][atomic_numbers]


def centres_of_mass(
    positions: torch.Tensor, atomic_numbers: torch.Tensor, batch: torch.Tensor, num_molecules: int
) -> torch.Tensor:
    """Mass-weighted centre of each molecule: positions (A, 3) Angstrom -> (M, 3) Angstrom."""
    masses = atomic_masses(atomic_numbers, positions.dtype)  # (A,)
    weighted = positions.new_zeros(num_molecules, 3).index_add_(
        0, batch, positions * masses[:, None]
    )
    total = positions.new_zeros(num_molecules).index_add_(0, batch, masses)
    return weighted / total[:, None]


def rotate_about_centres(
    positions: torch.Tensor, rotations: torch.Tensor, centres: torch.Tensor, batch: torch.Tensor
) -> torch.Tensor:
    """x' = c + g (x - c) per molecule, with c its centre of mass: (A, 3) -> (A, 3).

    Rotating about the centre of mass (the paper centres molecules there, section 2.2)
    changes the orientation only: a model of absolute coordinates (the transformer)
    sees the molecule at the same place, and for translation-invariant models it is
    the rotation g x up to float rounding.
    """
    anchor = centres[batch]  # (A, 3)
    return anchor + rotate_per_molecule(positions - anchor, rotations, batch)


def replicate_batch(batch: Batch, copies: int) -> Batch:
    """``copies`` consecutive copies of a batch as one batch (positions copied unchanged).

    Copy k holds molecules k M .. (k+1) M - 1 and atoms k A .. (k+1) A - 1; its edges
    are the original edges shifted by k A, so every copy keeps the radius graph of the
    original molecules (the graph of a rigidly rotated molecule is the same graph).
    """
    num_atoms, num_molecules = batch.num_atoms, batch.num_molecules
    device = batch.batch.device
    atom_shift = torch.arange(copies, device=device) * num_atoms  # (copies,)
    molecule_shift = torch.arange(copies, device=device) * num_molecules
    edge_index = (batch.edge_index[:, None, :] + atom_shift[None, :, None]).reshape(2, -1)
    return Batch(
        atomic_numbers=batch.atomic_numbers.repeat(copies),
        positions=batch.positions.repeat(copies, 1),
        forces=batch.forces.repeat(copies, 1),
        energy=batch.energy.repeat(copies),
        n_atoms=batch.n_atoms.repeat(copies),
        batch=(batch.batch[None, :] + molecule_shift[:, None]).reshape(-1),
        edge_index=edge_index,
        molecule_index=batch.molecule_index.repeat(copies),
    )
