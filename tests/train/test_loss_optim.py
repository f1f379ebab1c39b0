"""The loss of eq. 1 against a hand computation; the muP learning rate; rotations."""

import math

import pytest
import torch

from pipeline.config import mup_learning_rate
from pipeline.train.augment import random_rotations, rotate_per_molecule
from pipeline.train.loss import combine, loss_terms, validation_metrics
from pipeline.train.optim import evaluation_weights, make_optimizer


def test_loss_matches_hand_computation():
    """Eq. 1 per molecule, then the mean over molecules: a 3-, a 1- and a 2-atom molecule."""
    energy_pred = torch.tensor([1.0, -2.0, 0.5])
    energy_true = torch.tensor([0.0, 1.0, 0.5])
    forces_pred = torch.tensor(
        [
            [3.0, 4.0, 0.0],  # molecule 0: norms 5, 0, 2
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 2.0],
            [1.0, 1.0, 1.0],  # molecule 1: norm sqrt 3
            [0.0, 6.0, 8.0],  # molecule 2: norms 10, 1
            [1.0, 0.0, 0.0],
        ]
    )
    forces_true = torch.zeros(6, 3)
    n_atoms = torch.tensor([3, 1, 2])
    terms = loss_terms(energy_pred, forces_pred, energy_true, forces_true, n_atoms)
    loss, energy_loss, force_loss = combine(terms, energy_weight=2.0, force_weight=0.5)
    # energy: mean over molecules of |de| / n
    energy_by_hand = (1.0 / 3 + 3.0 / 1 + 0.0 / 2) / 3
    # forces: per molecule the mean over its atoms of the L2 norm, then the mean over molecules
    force_by_hand = ((5.0 + 0.0 + 2.0) / 3 + math.sqrt(3.0) / 1 + (10.0 + 1.0) / 2) / 3
    assert energy_loss.item() == pytest.approx(energy_by_hand)
    assert force_loss.item() == pytest.approx(force_by_hand)
    # not the mean over all atoms of the batch, which weighs large molecules more
    assert force_loss.item() != pytest.approx((5.0 + 0.0 + 2.0 + math.sqrt(3.0) + 11.0) / 6)
    assert loss.item() == pytest.approx(2.0 * energy_by_hand + 0.5 * force_by_hand)


def test_validation_metrics_match_the_training_loss_and_split_over_batches():
    """Validation: sums over batches give the loss of the whole set in one batch."""
    gen = torch.Generator().manual_seed(1)
    e_pred, e_true = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    f_pred, f_true = torch.randn(12, 3, generator=gen), torch.randn(12, 3, generator=gen)
    n = torch.tensor([2, 3, 1, 4, 2])
    whole = loss_terms(e_pred, f_pred, e_true, f_true, n)
    first = loss_terms(e_pred[:2], f_pred[:5], e_true[:2], f_true[:5], n[:2])
    second = loss_terms(e_pred[2:], f_pred[5:], e_true[2:], f_true[5:], n[2:])
    assert (first.energy_sum + second.energy_sum).item() == pytest.approx(whole.energy_sum.item())
    assert (first.force_sum + second.force_sum).item() == pytest.approx(whole.force_sum.item())
    loss, energy_loss, force_loss = combine(whole, energy_weight=1.0, force_weight=3.0)
    metrics = validation_metrics(
        float(first.energy_sum + second.energy_sum),
        float(first.force_sum + second.force_sum),
        first.num_molecules + second.num_molecules,
        first.num_atoms + second.num_atoms,
        energy_weight=1.0,
        force_weight=3.0,
        energy_std_ev=0.5,
    )
    assert metrics["val_loss"] == pytest.approx(loss.item())
    assert metrics["val_force_loss"] == pytest.approx(force_loss.item())
    assert metrics["val_energy_mae_mev_per_atom"] == pytest.approx(500.0 * energy_loss.item())
    # by hand: per-molecule mean norms, then the mean over the five molecules
    norms = torch.linalg.vector_norm(f_pred - f_true, dim=-1)
    per_molecule = [chunk.mean() for chunk in norms.split(n.tolist())]
    assert metrics["val_force_loss"] == pytest.approx(float(sum(per_molecule)) / 5)


def test_loss_terms_reject_atom_counts_that_do_not_match():
    with pytest.raises(ValueError, match="n_atoms"):
        loss_terms(torch.zeros(2), torch.zeros(4, 3), torch.zeros(2), torch.zeros(4, 3),
                   torch.tensor([2, 3]))  # fmt: skip


@pytest.mark.parametrize(("width", "expected"), [(32, 2e-2), (64, 1e-2), (8, 8e-2), (128, 5e-3)])
def test_mup_learning_rate(width, expected):
    assert mup_learning_rate(2e-2, 32, width) == pytest.approx(expected)


@pytest.mark.parametrize(("width", "expected"), [(2, 4e-2), (4, 4e-2), (8, 2e-2), (16, 1e-2)])
def test_mup_learning_rate_is_capped_at_lr_max(width, expected):
    assert mup_learning_rate(1e-2, 16, width, lr_max=4e-2) == pytest.approx(expected)


def test_mup_rejects_nonpositive_lr_max():
    with pytest.raises(ValueError, match="lr_max"):
        mup_learning_rate(1e-2, 16, 2, lr_max=0.0)


def test_mup_rejects_nonpositive_width():
    with pytest.raises(ValueError, match="width"):
        mup_learning_rate(1e-3, 32, 0)


def test_evaluation_weights_restore_training_weights_exactly():
    model = torch.nn.Linear(4, 2)
    optimizer = make_optimizer(model, lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).pow(2).sum().backward()
        optimizer.step()
    before = [p.detach().clone() for p in model.parameters()]
    with evaluation_weights(model, optimizer):
        averaged = [p.detach().clone() for p in model.parameters()]
    after = list(model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(averaged, before, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert all(group["train_mode"] for group in optimizer.param_groups)


def test_random_rotations_are_proper_and_rotate_vectors():
    rotations = random_rotations(64, torch.Generator().manual_seed(0), torch.float64)
    identity = torch.eye(3, dtype=torch.float64).expand(64, 3, 3)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), identity, atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(64, dtype=torch.float64))
    # Haar: the mean of the matrices goes to zero
    assert rotations.mean(0).abs().max() < 0.3
    vectors = torch.randn(5, 3, dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1, 1])
    rotated = rotate_per_molecule(vectors, rotations[:2], batch)
    assert torch.allclose(rotated[3], rotations[1] @ vectors[3])
    assert torch.allclose(rotated.norm(dim=1), vectors.norm(dim=1))


def test_rotation_about_the_centre_of_mass():
    """The centre of mass stays put, distances are kept, and it is g x up to a shift."""
    from ase.data import atomic_masses

    from pipeline.train.augment import centres_of_mass, rotate_about_centres

    gen = torch.Generator().manual_seed(2)
    positions = torch.randn(5, 3, generator=gen, dtype=torch.float64) + 10.0
    numbers = torch.tensor([1, 8, 6, 1, 1])
    batch = torch.tensor([0, 0, 0, 1, 1])
    centres = centres_of_mass(positions, numbers, batch, 2)
    masses = torch.as_tensor(atomic_masses[numbers.numpy()])
    by_hand = (masses[:3, None] * positions[:3]).sum(0) / masses[:3].sum()
    assert torch.allclose(centres[0], by_hand)
    rotations = random_rotations(2, gen, torch.float64)
    rotated = rotate_about_centres(positions, rotations, centres, batch)
    assert torch.allclose(centres_of_mass(rotated, numbers, batch, 2), centres)
    assert torch.allclose(
        torch.cdist(rotated[:3], rotated[:3]), torch.cdist(positions[:3], positions[:3])
    )
    shift = rotated[0] - rotations[0] @ positions[0]
    assert torch.allclose(rotated[1], rotations[0] @ positions[1] + shift)


def test_replicate_batch_shifts_edges_and_molecules():
    from pipeline.data.loader import Batch
    from pipeline.train.augment import replicate_batch

    batch = Batch(
        atomic_numbers=torch.tensor([1, 6, 8]),
        positions=torch.zeros(3, 3),
        forces=torch.zeros(3, 3),
        energy=torch.zeros(2, dtype=torch.float64),
        n_atoms=torch.tensor([2, 1]),
        batch=torch.tensor([0, 0, 1]),
        edge_index=torch.tensor([[1, 0], [0, 1]]),
        molecule_index=torch.tensor([4, 7]),
    )
    copies = replicate_batch(batch, 3)
    assert copies.batch.tolist() == [0, 0, 1, 2, 2, 3, 4, 4, 5]
    assert copies.edge_index.tolist() == [[1, 0, 4, 3, 7, 6], [0, 1, 3, 4, 6, 7]]
    assert copies.n_atoms.tolist() == [2, 1] * 3
    assert copies.molecule_index.tolist() == [4, 7] * 3
