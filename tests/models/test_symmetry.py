"""Every registered model has exactly the symmetries its class declares (contract 5).

One parametrised test over the model registry, driven by each class's ``symmetries``
(a subset of rotation, reflection, translation, permutation): in float64, energies are
invariant and forces equivariant under every declared transformation, and visibly not
under the others; and in float32, a molecule 1000 Angstrom from the origin is predicted
as accurately as one at the origin (translation-invariant models only).
"""

from __future__ import annotations

import pytest
import torch

from pipeline.models import REGISTRY, SYMMETRIES, build, model_class
from pipeline.models.blocks import random_orthogonal, random_rotation
from tests.models.conftest import SYMMETRY_RTOL, MolBatch, random_molecules, rel_err

# Small, fast instances of each family (float64); the structure is the default one.
SMALL_HPARAMS: dict[str, dict] = {
    "mpnn": {"width": 16, "num_layers": 3},
    "egnn": {"width": 16, "num_layers": 3, "num_radial": 8},
    "esen": {"width": 4, "lmax": 2, "mmax": 2, "hidden_channels": 8, "num_layers": 2},
    "gemnet_oc": {"width": 16, "num_layers": 2},
    "transformer": {"width": 16, "num_layers": 2, "num_heads": 2},
}
# An undeclared symmetry must be broken by at least this much (else the declaration is
# incomplete: add the symmetry to the class's ``symmetries``).
BROKEN_RTOL = 1e-4


def _declared(name: str, model: torch.nn.Module | None = None) -> frozenset[str]:
    """The symmetries ``model`` claims: its own attribute where an option changes them
    (the MPNN's absolute-position ablation), else its class's; skip if undeclared."""
    cls = model_class(name)
    if not hasattr(cls, "symmetries"):
        pytest.skip(f"{cls.__name__} declares no `symmetries` yet (contract 5)")
    declared = frozenset(getattr(model, "symmetries", cls.symmetries))
    assert declared <= SYMMETRIES, f"{cls.__name__}.symmetries: unknown {declared - SYMMETRIES}"
    return declared


def _model(name: str, dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(name, **SMALL_HPARAMS[name]).to(dtype)


def _within_molecule_permutation(mols: MolBatch, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for m in range(mols.num_molecules):
        idx = torch.nonzero(mols.batch == m).squeeze(1)
        parts.append(idx[torch.randperm(len(idx), generator=gen)])
    return torch.cat(parts)


def _errors(model, mols: MolBatch, symmetry: str, seed: int) -> tuple[float, float]:
    """Relative errors (energy, forces) of the model's outputs under ``symmetry``."""
    energy, forces = mols.run(model)
    gen = torch.Generator().manual_seed(seed)
    if symmetry == "permutation":
        perm = _within_molecule_permutation(mols, seed)
        e_t, f_t = mols.permuted(perm).run(model)
        return rel_err(e_t, energy), rel_err(f_t, forces[perm])
    if symmetry == "translation":
        shift = 10.0 * torch.randn(3, generator=gen, dtype=torch.float64)
        e_t, f_t = mols.run(model, mols.pos + shift)
        return rel_err(e_t, energy), rel_err(f_t, forces)
    if symmetry == "rotation":
        q = random_rotation(gen)
    else:  # reflection: an improper orthogonal map (a rotation times the inversion)
        q = random_orthogonal(gen)
        q = q if torch.linalg.det(q) < 0 else -q
    # about each molecule's centroid, so that the test isolates the linear part
    centre = torch.zeros(mols.num_molecules, 3, dtype=mols.pos.dtype).index_add_(
        0, mols.batch, mols.pos
    ) / torch.bincount(mols.batch).unsqueeze(1)
    local = mols.pos - centre[mols.batch]
    e_t, f_t = mols.run(model, local @ q.T + centre[mols.batch])
    return rel_err(e_t, energy), rel_err(f_t, forces @ q.T)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_declares_symmetries_and_force_mode(name):
    cls = model_class(name)
    if not hasattr(cls, "symmetries"):
        pytest.skip(f"{cls.__name__} declares no `symmetries` yet (contract 5)")
    assert isinstance(cls.symmetries, frozenset) and cls.symmetries <= SYMMETRIES
    assert "permutation" in cls.symmetries  # every family is a set function of its atoms
    assert getattr(cls, "forces", "direct") in ("direct", "conservative")


@pytest.mark.parametrize("symmetry", sorted(SYMMETRIES))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_declared_symmetries_hold_and_undeclared_ones_do_not(name, symmetry):
    """Float64: exact under each declared symmetry, broken under each undeclared one."""
    _declared(name)
    model = _model(name)
    declared = _declared(name, model)
    mols = random_molecules(seed=3)
    for seed in (0, 1):
        e_err, f_err = _errors(model, mols, symmetry, seed)
        if symmetry in declared:
            assert e_err < SYMMETRY_RTOL, f"{name}: energy changes by {e_err:.1e} ({symmetry})"
            assert f_err < SYMMETRY_RTOL, f"{name}: forces err {f_err:.1e} ({symmetry})"
        else:
            assert max(e_err, f_err) > BROKEN_RTOL, (
                f"{name}: outputs respect the undeclared {symmetry} to {max(e_err, f_err):.1e}; "
                f"declare it in {type(model).__name__}.symmetries"
            )


def test_instance_declarations_follow_options():
    """The absolute-position ablation (appendix J) claims, and has, no translation invariance."""
    torch.manual_seed(0)
    model = build("mpnn", **SMALL_HPARAMS["mpnn"], translation_invariant=False).double()
    assert _declared("mpnn", model) == {"permutation"}
    e_err, f_err = _errors(model, random_molecules(seed=3), "translation", seed=0)
    assert max(e_err, f_err) > BROKEN_RTOL


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_symmetry_checks_are_not_vacuous(name):
    """Energies and forces respond to the geometry (zero outputs are trivially symmetric)."""
    _declared(name)
    model = _model(name)
    mols = random_molecules(seed=3)
    energy, forces = mols.run(model)
    e_s, f_s = mols.run(model, mols.pos * 1.05)
    assert forces.abs().max() > 1e-6 and energy.abs().max() > 1e-6
    assert rel_err(e_s, energy) > BROKEN_RTOL and rel_err(f_s, forces) > BROKEN_RTOL


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_float32_accuracy_does_not_depend_on_distance_from_the_origin(name):
    """A 1000 Angstrom shift leaves float32 error (against float64 on the same float32
    coordinates) within a small factor of the error at the origin."""
    _declared(name)
    model64 = _model(name)
    if "translation" not in _declared(name, model64):
        pytest.skip(f"{name} is not translation invariant")
    model32 = _model(name, torch.float32)
    mols = random_molecules(seed=3, dtype=torch.float64)
    mols = MolBatch(mols.z, mols.pos - mols.pos.mean(0), mols.batch, mols.num_molecules)
    errors = {}
    for shift in (0.0, 1000.0):
        pos32 = (mols.pos + shift * torch.tensor([1.0, -0.6, 0.8], dtype=torch.float64)).float()
        e64, f64 = mols.run(model64, pos32.double())  # exact maths on the rounded inputs
        e32, f32 = mols.run(model32, pos32)
        errors[shift] = max(rel_err(e32.double(), e64), rel_err(f32.double(), f64))
    assert errors[0.0] < 1e-4, errors
    assert errors[1000.0] < 10 * errors[0.0] + 1e-6, errors
