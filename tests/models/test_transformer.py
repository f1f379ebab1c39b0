"""Vanilla transformer (appendix K): centred coordinates, init scale, masking, robustness.

Its symmetries (translation and permutation only) are tested in test_symmetry.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.models import build, num_params
from pipeline.models.blocks import random_rotation
from pipeline.models.transformer import Transformer
from tests.models.conftest import (
    MolBatch,
    assert_finite_with_grads,
    demo_molecules,
    rel_err,
    train_losses,
)


def _small(**kw) -> Transformer:
    return Transformer(**({"width": 16, "num_layers": 2, "num_heads": 2} | kw)).double()


def test_shapes_registry_and_count(molecules):
    model = build("transformer", width=16, num_layers=2, num_heads=2).double()
    energy, forces = molecules.run(model)
    assert energy.shape == (3,) and forces.shape == (len(molecules.z), 3)
    w, layers, ratio, n_el = 16, 2, 4, 120
    block = 2 * 2 * w + (3 * w * w + 3 * w) + (w * w + w) + 2 * ratio * w * w + ratio * w + w
    expected = n_el * (w - 3) + layers * block + 2 * w + (w + 1) + (3 * w + 3)
    assert num_params(model) == expected


@torch.no_grad()
def test_coordinates_do_not_dominate_the_first_layer_norm_at_init():
    """At init every token entry enters the first LayerNorm at O(1): the coordinate entries'
    mean square is within 10x the embedding entries' (with GPT-2's N(0, 0.02) embedding
    it was 1.2e4 times, so the LayerNorm saw little but coordinates)."""
    torch.manual_seed(0)
    mols, _, _ = demo_molecules(24)
    for width in (32, 256):
        model = Transformer(width=width, num_layers=2, num_heads=4)
        seen: list[torch.Tensor] = []
        hook = model.blocks[0].norm1.register_forward_pre_hook(
            lambda _m, args, out=seen: out.append(args[0])
        )
        mols.run(model, mols.pos.float())
        hook.remove()
        tokens = seen[0]  # [M, n_max, w], padding rows are zero
        valid = tokens.abs().sum(-1) > 0
        emb, coords = tokens[valid][:, :-3], tokens[valid][:, -3:]
        ratio = float(coords.square().mean() / emb.square().mean())
        assert 0.1 < ratio < 10.0, (width, ratio)


def test_tokens_carry_centred_coordinates(molecules):
    """Coordinates relative to each molecule's centroid: a shift moves nothing, a rotation
    does (the rotation part of the symmetry test covers the rest)."""
    model = _small()
    energy, forces = molecules.run(model)
    e_t, f_t = molecules.run(model, molecules.pos + 1024.0)
    assert rel_err(e_t, energy) < 1e-12 and rel_err(f_t, forces) < 1e-12
    rot = random_rotation(torch.Generator().manual_seed(1))
    e_r, f_r = molecules.run(model, molecules.pos @ rot.T)
    assert rel_err(e_r, energy) > 1e-4 and rel_err(f_r, forces @ rot.T) > 1e-4


def test_attention_stays_within_molecules(edge_cases):
    """Each molecule's prediction is the same alone as in a batch (masking and padding)."""
    model = _small()
    energy, forces = edge_cases.run(model)
    for m in range(edge_cases.num_molecules):
        mask = edge_cases.batch == m
        zeros = torch.zeros(int(mask.sum()), dtype=torch.long)
        e_m, f_m = MolBatch(edge_cases.z[mask], edge_cases.pos[mask], zeros, 1).run(model)
        torch.testing.assert_close(e_m[0], energy[m], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f_m, forces[mask], rtol=1e-12, atol=1e-12)


def test_edge_cases_finite(edge_cases):
    assert_finite_with_grads(_small(), edge_cases)


def test_empty_molecule_in_batch_is_finite(molecules):
    """A molecule index with no atoms (M larger than the molecules present) gives energy 0."""
    model = _small()
    batch = molecules.batch.clone()
    batch[batch == 2] = 3  # molecule 2 empty
    energy, forces = model(
        molecules.z, molecules.pos, torch.zeros(2, 0, dtype=torch.long), batch, 4
    )
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()
    assert float(energy[2].detach()) == 0.0


def test_rejects_unsorted_batch(molecules):
    model = _small()
    with pytest.raises(ValueError, match="sorted"):
        model(molecules.z, molecules.pos, None, molecules.batch.flip(0), 3)


def test_loss_goes_down_on_demo_data():
    """30 full-batch Adam steps on 24 embedded GFN2-xTB molecules lower the eq. (1) loss."""
    torch.manual_seed(0)
    model = Transformer(width=32, num_layers=2, num_heads=4)
    mols, target_e, target_f = demo_molecules(24)
    losses = train_losses(model, mols, steps=30, lr=1e-2, targets=(target_e, target_f))
    assert all(map(math.isfinite, losses))
    assert losses[-1] < 0.98 * losses[0], losses
