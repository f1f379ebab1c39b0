"""MC-EGNN: the 1/E scaled channel mixer, centred vector channels, robustness, training.

Its E(3) and permutation symmetries are tested in test_symmetry.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models import build, num_params
from pipeline.models.egnn import MCEGNN, default_vector_channels
from tests.models.conftest import (
    MolBatch,
    assert_finite_with_grads,
    demo_molecules,
    rel_err,
    train_losses,
)


def _small(**kw) -> MCEGNN:
    args = {"width": 16, "num_layers": 3, "num_radial": 8, "num_elements": 10} | kw
    return MCEGNN(**args).double()


def _within_molecule_perm(mols: MolBatch, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for m in range(mols.num_molecules):
        idx = torch.nonzero(mols.batch == m).squeeze(1)
        parts.append(idx[torch.randperm(len(idx), generator=gen)])
    return torch.cat(parts)


def test_shapes_registry_and_properties(molecules):
    model = build("egnn", width=16, num_layers=2, num_radial=8).double()
    energy, forces = molecules.run(model)
    assert energy.shape == (3,) and forces.shape == (len(molecules.z), 3)
    assert model.vector_channels == 4 and model.cutoff == 6.0 and model.max_neighbors == 30
    assert MCEGNN.properties == dict(characteristic="equivariant", tensor_order="1", body_order=2)


@pytest.mark.parametrize("width,expected", [(32, 5), (48, 6), (64, 8), (120, 10), (721, 26)])
def test_vector_channels_floor_sqrt(width, expected):
    assert default_vector_channels(width) == expected


@pytest.mark.parametrize("width,vec", [(16, None), (20, 3), (9, 1)])
def test_param_count_formula(width, vec):
    model = MCEGNN(width=width, num_layers=3, vector_channels=vec, num_radial=8, num_elements=10)
    formula = MCEGNN.param_count_formula(
        width, num_layers=3, vector_channels=vec, num_radial=8, num_elements=10
    )
    assert num_params(model) == formula


@torch.no_grad()
def test_mixer_init_keeps_entries_order_one_along_the_ladder():
    """W_x ~ N(0, min(w, E^2) / w^2): with E = floor(sqrt(w)), W_x m has O(1) entries for all w."""
    torch.manual_seed(0)
    stds = []
    for w in (64, 256, 900):
        layer = MCEGNN(width=w, num_layers=2, num_radial=4).layers[1]
        w_x = layer.mixer[-1]
        e = layer.vec_in
        assert w_x.bias is None and w_x.weight.shape == (e * e, w)
        expected = min(w, e * e) ** 0.5 / w
        assert abs(float(w_x.weight.std()) / expected - 1) < 0.1
        stds.append(float(w_x(torch.randn(4000, w)).std()))
    assert all(0.7 < s < 1.3 for s in stds), stds


def test_edge_cases_finite(edge_cases):
    """Edges along z, a 1e-5 Angstrom edge, a single atom, atoms without neighbours."""
    assert_finite_with_grads(_small(), edge_cases)
    _, forces = edge_cases.run(_small())
    # an atom without neighbours keeps X = x: its force is exactly zero
    assert torch.equal(forces[6], torch.zeros(3, dtype=torch.float64))


def test_mixed_batch_matches_separate_molecules(edge_cases):
    model = _small()
    energy, forces = edge_cases.run(model)
    for m in range(edge_cases.num_molecules):
        mask = edge_cases.batch == m
        zeros = torch.zeros(int(mask.sum()), dtype=torch.long)
        e_m, f_m = MolBatch(edge_cases.z[mask], edge_cases.pos[mask], zeros, 1).run(model)
        torch.testing.assert_close(e_m[0], energy[m], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f_m, forces[mask], rtol=1e-12, atol=1e-12)


def test_vector_channels_start_from_centred_positions(molecules):
    """X^0 is x minus the molecule's centroid: a molecule's outputs are bit-for-bit the same
    wherever it sits when the shift is exactly representable, and float32 forces 1000
    Angstrom out agree with those at the origin (absolute X^0 lost 3e-3 relative there)."""
    model = _small()
    energy, forces = molecules.run(model)
    e_t, f_t = molecules.run(model, molecules.pos + 1024.0)  # exact in float64
    assert rel_err(e_t, energy) < 1e-12 and rel_err(f_t, forces) < 1e-12
    model32 = _small().float()
    model32.load_state_dict(model.state_dict())
    pos32 = molecules.pos.float()
    _, f_near = molecules.run(model32, pos32)
    _, f_far = molecules.run(model32, pos32 + torch.tensor([1000.0, -600.0, 800.0]))
    assert rel_err(f_far.double(), f_near.double()) < 1e-4


def test_loss_goes_down_on_demo_data():
    """30 full-batch Adam steps on 24 embedded GFN2-xTB molecules lower the eq. (1) loss."""
    torch.manual_seed(0)
    model = MCEGNN(width=32, num_layers=3, num_radial=16)
    mols, target_e, target_f = demo_molecules(24)
    losses = train_losses(model, mols, steps=30, lr=1e-2, targets=(target_e, target_f))
    assert all(map(math.isfinite, losses))
    assert losses[-1] < 0.95 * losses[0], losses
