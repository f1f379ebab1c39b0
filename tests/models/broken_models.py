"""Deliberately broken models for ``pipeline.models.check`` (importable by path)."""

from __future__ import annotations

import torch
from torch import nn


class _Base(nn.Module):
    """A small MLP on absolute positions: translation- and rotation-dependent."""

    symmetries = frozenset({"permutation"})

    def __init__(self, width: int, cutoff: float = 6.0, max_neighbors: int = 30):
        super().__init__()
        self.cutoff, self.max_neighbors = cutoff, max_neighbors
        self.embed = nn.Embedding(10, width)
        self.mlp = nn.Sequential(nn.Linear(width + 3, width), nn.SiLU(), nn.Linear(width, 4))

    def heads(self, atomic_numbers, positions, batch, num_molecules):
        out = self.mlp(torch.cat([self.embed(atomic_numbers).to(positions.dtype), positions], -1))
        energy = out.new_zeros(num_molecules).index_add(0, batch, out[:, 0])  # [M]
        return energy, out[:, 1:]  # [M], [A, 3]


class WrongShape(_Base):
    """Returns forces [A] instead of [A, 3]."""

    def forward(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        energy, forces = self.heads(atomic_numbers, positions, batch, num_molecules)
        return energy, forces.sum(-1)


class FalseRotation(_Base):
    """Claims rotation invariance while reading absolute coordinates."""

    symmetries = frozenset({"permutation", "rotation"})

    def forward(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        return self.heads(atomic_numbers, positions, batch, num_molecules)


class NoCutoff(_Base):
    """Lacks the cutoff attribute."""

    def __init__(self, width: int):
        super().__init__(width)
        del self.cutoff

    def forward(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        return self.heads(atomic_numbers, positions, batch, num_molecules)


class EnergyOnly(_Base):
    """Returns (energy, None) without declaring forces = 'conservative'."""

    def forward(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        return self.heads(atomic_numbers, positions, batch, num_molecules)[0], None


class LostPrepare(_Base):
    """``prepare`` sets a plain attribute that checkpoints do not carry."""

    scale = 1.0

    def prepare(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        self.scale = 3.0

    def forward(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        energy, forces = self.heads(atomic_numbers, positions, batch, num_molecules)
        return self.scale * energy, forces
