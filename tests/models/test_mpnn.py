"""Unconstrained MPNN: shapes, the symmetries it has and the one it lacks, robustness, training."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models import build, num_params
from pipeline.models.blocks import random_rotation
from pipeline.models.mpnn import MPNN
from tests.models.conftest import (
    SYMMETRY_RTOL,
    assert_finite_with_grads,
    demo_molecules,
    rel_err,
    train_losses,
)


def _small(**kw) -> MPNN:
    return MPNN(**({"width": 16, "num_layers": 3, "num_radial": 12} | kw)).double()


def test_shapes_and_registry(molecules):
    model = build("mpnn", width=16, num_layers=2).double()
    energy, forces = molecules.run(model)
    assert energy.shape == (3,) and forces.shape == (len(molecules.z), 3)
    assert energy.dtype == forces.dtype == torch.float64
    assert model.cutoff == 6.0 and model.max_neighbors == 30
    assert MPNN.properties == dict(characteristic="unconstrained", tensor_order="-", body_order=2)


@pytest.mark.parametrize("radial", ["gaussian", "raw"])
@pytest.mark.parametrize("width", [16, 17])
def test_param_count_formula(radial, width):
    model = MPNN(width=width, num_layers=3, num_radial=12, num_elements=20, radial=radial)
    formula = MPNN.param_count_formula(
        width, num_layers=3, num_elements=20, radial=radial, num_radial=12
    )
    assert num_params(model) == formula


def test_translation_invariant_and_permutation_equivariant(molecules):
    model = _small()
    energy, forces = molecules.run(model)
    shift = torch.tensor([3.7, -12.0, 0.4], dtype=torch.float64)
    e_t, f_t = molecules.run(model, molecules.pos + shift)
    assert rel_err(e_t, energy) < SYMMETRY_RTOL
    assert rel_err(f_t, forces) < SYMMETRY_RTOL

    gen = torch.Generator().manual_seed(1)
    # permute atoms within each molecule, keeping molecules contiguous
    perm = torch.cat(
        [
            torch.nonzero(molecules.batch == m).squeeze(1)[
                torch.randperm(int((molecules.batch == m).sum()), generator=gen)
            ]
            for m in range(molecules.num_molecules)
        ]
    )
    e_p, f_p = molecules.permuted(perm).run(model)
    assert rel_err(e_p, energy) < SYMMETRY_RTOL
    assert rel_err(f_p, forces[perm]) < SYMMETRY_RTOL


def test_not_rotation_invariant(molecules):
    """Raw r_uv components are inputs: a rotation changes energies and forces visibly."""
    model = _small()
    energy, forces = molecules.run(model)
    rot = random_rotation(torch.Generator().manual_seed(2))
    e_r, f_r = molecules.run(model, molecules.pos @ rot.T)
    assert rel_err(e_r, energy) > 1e-4
    assert rel_err(f_r, forces @ rot.T) > 1e-4  # forces not equivariant either


def test_energy_continuous_at_cutoff():
    """An edge about to leave the cutoff contributes ~0 (the envelope), one well inside does not."""
    model = _small(cutoff=3.0)
    z = torch.tensor([6, 8, 1])
    batch = torch.zeros(3, dtype=torch.long)
    near = torch.tensor([[1, 0], [0, 1]])  # atoms 0 and 1, 1.2 Angstrom apart
    with_far = torch.cat([near, torch.tensor([[2, 0], [0, 2]])], dim=1)  # plus 0 <-> 2

    def jump(d: float) -> float:
        pos = torch.tensor([[0.0, 0, 0], [-1.2, 0, 0], [d, 0, 0]], dtype=torch.float64)
        e_with = model(z, pos, with_far, batch, 1)[0]
        e_without = model(z, pos, near, batch, 1)[0]
        return abs(float((e_with - e_without).detach()))

    assert jump(3.0 * (1 - 1e-4)) < 1e-9
    assert jump(2.0) > 1e-4


def test_edge_cases_finite(edge_cases):
    """Edges along z, a 1e-5 Angstrom edge, a single atom, atoms without neighbours."""
    assert_finite_with_grads(_small(), edge_cases)


def test_mixed_batch_matches_separate_molecules(edge_cases):
    """Molecules in one batch do not interact: batching changes nothing."""
    model = _small()
    energy, forces = edge_cases.run(model)
    for m in range(edge_cases.num_molecules):
        mask = edge_cases.batch == m
        sub = type(edge_cases)(
            edge_cases.z[mask],
            edge_cases.pos[mask],
            torch.zeros(int(mask.sum()), dtype=torch.long),
            1,
        )
        e_m, f_m = sub.run(model)
        torch.testing.assert_close(e_m[0], energy[m], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f_m, forces[mask], rtol=1e-12, atol=1e-12)


def test_loss_goes_down_on_demo_data():
    """30 full-batch Adam steps on 24 embedded GFN2-xTB molecules lower the eq. (1) loss."""
    torch.manual_seed(0)
    model = MPNN(width=32, num_layers=3, num_radial=16, radial_start=0.5)
    mols, target_e, target_f = demo_molecules(24)
    losses = train_losses(model, mols, steps=30, lr=1e-2, targets=(target_e, target_f))
    assert all(map(math.isfinite, losses))
    assert losses[-1] < 0.95 * losses[0], losses


def test_rejects_unknown_element(molecules):
    model = _small(num_elements=5)
    with pytest.raises(ValueError, match="num_elements"):
        molecules.run(model)


def test_absolute_positions_ablation_breaks_translation_invariance(molecules):
    """Appendix J: fed absolute positions, the MPNN is no longer translation invariant."""
    torch.manual_seed(0)
    relative = _small()
    torch.manual_seed(0)
    absolute = _small(translation_invariant=False)
    assert num_params(absolute) == num_params(relative)
    energy, forces = molecules.run(absolute)
    shift = torch.tensor([3.7, -12.0, 0.4], dtype=torch.float64)
    e_t, f_t = molecules.run(absolute, molecules.pos + shift)
    assert rel_err(e_t, energy) > 1e-4
    assert rel_err(f_t, forces) > 1e-4
