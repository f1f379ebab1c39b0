"""Shared fixtures for model tests: tiny molecules, edge-case batches, a short training loop.

Everything is synthetic and small so that each test runs in a few seconds on 2 CPU
cores. Symmetry tests run in float64 with the relative tolerance ``SYMMETRY_RTOL``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from pipeline.data.graphs import radius_graph
from pipeline.models.check import demo_batch

SYMMETRY_RTOL = 1e-10


@dataclass
class MolBatch:
    """A batch in the model's calling convention, plus targets for training tests."""

    z: torch.Tensor  # long [A]
    pos: torch.Tensor  # float [A, 3], Angstrom
    batch: torch.Tensor  # long [A]
    num_molecules: int

    def edges(self, cutoff: float, max_neighbors: int) -> torch.Tensor:
        return radius_graph(self.pos, self.batch, cutoff, max_neighbors)

    def run(self, model: torch.nn.Module, pos: torch.Tensor | None = None):
        """``model`` on this batch (optionally with other positions, same graph rule)."""
        pos = self.pos if pos is None else pos
        edge_index = radius_graph(pos, self.batch, model.cutoff, model.max_neighbors)
        return model(self.z, pos, edge_index, self.batch, self.num_molecules)

    def permuted(self, perm: torch.Tensor) -> MolBatch:
        """Atoms reordered by ``perm`` [A], molecules kept contiguous and in order."""
        return MolBatch(self.z[perm], self.pos[perm], self.batch[perm], self.num_molecules)


def random_molecules(
    seed: int = 0, sizes=(7, 5, 9), dtype: torch.dtype = torch.float64, spacing: float = 20.0
) -> MolBatch:
    """Bonded random clusters of H, C, N, O: the model checker's demo batch as a MolBatch."""
    mols = demo_batch(tuple(sizes), seed=seed, dtype=dtype, spacing=spacing)
    return MolBatch(mols.atomic_numbers, mols.positions, mols.batch, mols.num_molecules)


def edge_case_molecules(dtype: torch.dtype = torch.float64) -> MolBatch:
    """One batch mixing the awkward cases.

    Molecule 0: a bond exactly along +z and one along -z. Molecule 1: two atoms
    1e-5 Angstrom apart plus a normal neighbour. Molecule 2: a single atom.
    Molecule 3: two atoms 50 Angstrom apart (no neighbours within any cutoff).
    """
    pos = torch.tensor(
        [
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 1.1],
            [0.0, 0.0, -1.0],
            [10.0, 0.0, 0.0],
            [10.0, 0.0, 1e-5],
            [11.0, 0.3, 0.0],
            [30.0, 0.0, 0.0],
            [60.0, 0.0, 0.0],
            [110.0, 0.0, 0.0],
        ],
        dtype=dtype,
    )
    z = torch.tensor([6, 1, 8, 1, 1, 6, 8, 6, 1])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 2, 3, 3])
    return MolBatch(z, pos, batch, 4)


def synthetic_targets(mols: MolBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth pair-potential energies [M] and forces [A, 3] (no model involved)."""
    pos = mols.pos.detach().clone().requires_grad_(True)
    edge_index = radius_graph(pos, mols.batch, 6.0, 30)
    r = (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)
    pair = 0.5 * ((1.0 - torch.exp(-1.5 * (r - 1.3))) ** 2 - 1.0)
    atom_e = torch.zeros(len(pos), dtype=pos.dtype).index_add(0, edge_index[1], pair)
    energy = torch.zeros(mols.num_molecules, dtype=pos.dtype).index_add(0, mols.batch, atom_e)
    (grad,) = torch.autograd.grad(energy.sum(), pos)
    return energy.detach(), -grad.detach()


def paper_loss(energy, forces, target_e, target_f, batch, num_molecules) -> torch.Tensor:
    """Eq. (1): per-atom energy MAE + mean per-atom force L2 norm (lambda_e = lambda_f)."""
    n_atoms = torch.bincount(batch, minlength=num_molecules).to(energy.dtype)
    e_loss = ((energy - target_e).abs() / n_atoms).mean()
    f_loss = torch.linalg.vector_norm(forces - target_f, dim=-1).mean()
    return e_loss + f_loss


def demo_molecules(count: int = 24) -> tuple[MolBatch, torch.Tensor, torch.Tensor]:
    """The first ``count`` neutral closed-shell samples of the embedded GFN2-xTB dataset.

    Returns the batch (float32) and normalised targets as the trainer uses them:
    energies referenced by a per-element least-squares fit on these molecules and
    divided by their std, forces divided by the same std.
    """
    import h5py
    import numpy as np

    from pipeline.data.demo import demo_path

    with h5py.File(demo_path(), "r") as f:
        ok = np.flatnonzero((f["charge"][:200] == 0) & (f["spin"][:200] == 1))[:count]
        ptr = f["ptr"][: ok[-1] + 2]
        stop = int(ptr[-1])
        z_all, pos_all = f["atomic_numbers"][:stop], f["positions"][:stop]
        frc_all, energy = f["forces"][:stop], f["energy"][ok]
    zs, pos, frc, batch = [], [], [], []
    for i, m in enumerate(ok):
        sl = slice(int(ptr[m]), int(ptr[m + 1]))
        zs.append(z_all[sl])
        pos.append(pos_all[sl])
        frc.append(frc_all[sl])
        batch.append(np.full(sl.stop - sl.start, i))
    elements = np.unique(np.concatenate(zs))
    design = np.stack([[np.sum(z == e) for e in elements] for z in zs]).astype(float)
    coef, *_ = np.linalg.lstsq(design, energy, rcond=None)
    referenced = energy - design @ coef
    sigma = float(referenced.std())
    mols = MolBatch(
        torch.as_tensor(np.concatenate(zs).astype(np.int64)),
        torch.as_tensor(np.concatenate(pos)),
        torch.as_tensor(np.concatenate(batch)),
        len(ok),
    )
    target_e = torch.as_tensor((referenced - referenced.mean()) / sigma, dtype=torch.float32)
    target_f = torch.as_tensor(np.concatenate(frc) / sigma)
    return mols, target_e, target_f


def train_losses(
    model: torch.nn.Module,
    mols: MolBatch,
    steps: int = 15,
    lr: float = 3e-3,
    targets: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """Full-batch Adam on ``mols``; returns the loss per step.

    ``targets`` (energies [M], forces [A, 3]) default to a synthetic pair potential.
    """
    target_e, target_f = synthetic_targets(mols) if targets is None else targets
    edge_index = mols.edges(model.cutoff, model.max_neighbors)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        energy, forces = model(mols.z, mols.pos, edge_index, mols.batch, mols.num_molecules)
        loss = paper_loss(energy, forces, target_e, target_f, mols.batch, mols.num_molecules)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max().detach() / b.abs().max().detach().clamp(min=1e-300))


def assert_finite_with_grads(model: torch.nn.Module, mols: MolBatch) -> None:
    """Outputs, parameter gradients and position gradients are all finite."""
    pos = mols.pos.detach().clone().requires_grad_(True)
    energy, forces = mols.run(model, pos)
    assert energy.shape == (mols.num_molecules,)
    assert forces.shape == (len(mols.z), 3)
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()
    (energy.sum() + forces.square().sum()).backward()
    assert torch.isfinite(pos.grad).all()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Model tests run single-threaded: on a shared 2-core machine, two intra-op threads
    per process made the training tests 10x slower (measured: 64 s against 5 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def molecules() -> MolBatch:
    return random_molecules()


@pytest.fixture
def edge_cases() -> MolBatch:
    return edge_case_molecules()
