"""Unconstrained MPNN: shapes, eq. 9's message, robustness, training.

The symmetries it has and lacks are tested in test_symmetry.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models import build, num_params
from pipeline.models.mpnn import MPNN
from tests.models.conftest import (
    assert_finite_with_grads,
    demo_molecules,
    rel_err,
    train_losses,
)


def _small(**kw) -> MPNN:
    return MPNN(**({"width": 16, "num_layers": 3} | kw)).double()


def test_shapes_and_registry(molecules):
    model = build("mpnn", width=16, num_layers=2).double()
    energy, forces = molecules.run(model)
    assert energy.shape == (3,) and forces.shape == (len(molecules.z), 3)
    assert energy.dtype == forces.dtype == torch.float64
    assert model.cutoff == 6.0 and model.max_neighbors == 30
    assert MPNN.properties == dict(characteristic="unconstrained", tensor_order="-", body_order=2)


@pytest.mark.parametrize("message_input", ["paper", "radial_basis"])
@pytest.mark.parametrize("width", [16, 17])
def test_param_count_formula(message_input, width):
    kw = dict(num_layers=3, num_elements=20, message_input=message_input)
    kw |= {"num_radial": 12} if message_input == "radial_basis" else {}
    assert num_params(MPNN(width=width, **kw)) == MPNN.param_count_formula(width, **kw)


def test_paper_message_is_one_mlp_on_h_u_h_v_r_uv_and_its_length():
    """Eq. 9: every layer's phi_m reads [h_u, h_v, r_uv, |r_uv|] (2w + 4 inputs) -> w."""
    model = MPNN(width=16, num_layers=3).double()
    assert [lin.in_features for lin in model.message_lins] == [2 * 16 + 4] * 3
    assert [lin.out_features for lin in model.message_lins] == [16] * 3
    assert MPNN.param_count_formula(128) == 12 * 128**2 + 151 * 128 + 4


@torch.no_grad()
def test_every_layer_reads_the_geometry(molecules):
    """Zeroing the r_uv or the |r_uv| columns of any single layer's phi_m changes the output:
    direction and distance enter every message, not one shared embedding."""
    torch.manual_seed(0)
    model = _small()
    energy, forces = molecules.run(model)
    w = model.width
    for lin in model.message_lins:
        for columns in (slice(2 * w, 2 * w + 3), slice(2 * w + 3, 2 * w + 4)):
            saved = lin.weight[:, columns].clone()
            lin.weight[:, columns] = 0.0
            e_z, f_z = molecules.run(model)
            lin.weight[:, columns] = saved
            assert rel_err(e_z, energy) > 1e-6 and rel_err(f_z, forces) > 1e-6


def test_radial_basis_option_feeds_gaussians_of_the_distance():
    model = MPNN(width=8, num_layers=2, message_input="radial_basis", num_radial=10)
    assert [lin.in_features for lin in model.message_lins] == [2 * 8 + 3 + 10] * 2
    with pytest.raises(ValueError, match="message_input"):
        MPNN(width=8, message_input="gaussian")
    with pytest.raises(ValueError, match="num_radial"):
        MPNN(width=8, num_radial=10)  # the paper's message has no radial basis


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
    model = MPNN(width=32, num_layers=3)
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
