"""``pipeline.models.check``, "module:Class" models and the conservative-force wrapper."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline import models
from pipeline.models.check import ContractError, check_model, demo_batch
from pipeline.train.flops import count_forward_flops

ROOT = Path(__file__).resolve().parents[2]
SCHNET = "examples.schnet:SchNet"
BROKEN = "tests.models.broken_models"


@pytest.fixture(autouse=True)
def _checkout_importable(monkeypatch):
    """The checkout's root on sys.path, as Snakemake's working directory gives it."""
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_check_passes_on_every_builtin_family(name):
    report = check_model(name, width=4, hparams={"num_layers": 1})
    assert report.n_params > 0
    assert report.forward_flops_per_atom["counted"] > 0
    declared = set(report.symmetries)
    assert all(max(report.symmetry_errors[s].values()) <= 1e-6 for s in declared)


def test_check_passes_on_schnet_and_counts_the_backward_pass():
    report = check_model(SCHNET, width=8, hparams={"num_interactions": 2})
    assert report.forces == "conservative"
    assert set(report.symmetries) == set(models.SYMMETRIES)
    # the forward pass alone, without the autograd forces
    torch.manual_seed(0)
    inner = models.build("schnet", model=SCHNET, width=8, num_interactions=2).model
    demo = demo_batch()
    edges = demo.edges(inner)
    inputs = (demo.atomic_numbers, demo.positions, edges, demo.batch, demo.num_molecules)
    forward_only = count_forward_flops(inner, inputs)["counted"] / len(demo.atomic_numbers)
    assert report.forward_flops_per_atom["counted"] > 1.5 * forward_only


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        ("WrongShape", "forces has shape [24], expected [24, 3]"),
        ("FalseRotation", "declares 'rotation' but its"),
        ("NoCutoff", "attribute cutoff"),
        ("EnergyOnly", "forces is NoneType, not a tensor (energy-only models declare"),
        ("LostPrepare", "state_dict gives other outputs"),
    ],
)
def test_broken_models_get_a_one_line_error(cls, message):
    with pytest.raises(ContractError) as err:
        check_model(f"{BROKEN}:{cls}", width=8)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(cls)


def test_command_line_names_the_problem_and_fails():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.models.check", f"{BROKEN}:FalseRotation", "--width", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("check failed: FalseRotation: declares")


def test_build_resolves_module_class_and_the_model_keyword():
    direct = models.build(f"{BROKEN}:WrongShape", width=8)
    assert type(direct).__name__ == "WrongShape"
    labelled = models.build("mine", model=f"{BROKEN}:WrongShape", width=8)
    assert type(labelled).__name__ == "WrongShape"
    hparams = models.arch_hparams({"model": SCHNET, "hparams": {"num_interactions": 1}})
    assert hparams == {"num_interactions": 1, "model": SCHNET}
    with pytest.raises(ValueError, match="disagree"):
        models.arch_hparams({"model": SCHNET, "hparams": {"model": "x.y:Z"}})
    with pytest.raises(ValueError, match="unknown model 'schnet'"):
        models.build("schnet", width=8)
    with pytest.raises(ValueError, match="no nn.Module class 'Missing'"):
        models.build(f"{BROKEN}:Missing", width=8)


def test_conservative_forces_are_minus_the_energy_gradient():
    torch.manual_seed(0)
    model = models.build("schnet", model=SCHNET, width=8, num_interactions=2).double()
    demo = demo_batch(dtype=torch.float64)
    edges = demo.edges(model)
    args = (demo.atomic_numbers, demo.positions, edges, demo.batch, demo.num_molecules)
    energy, forces = model(*args)
    # finite differences of the summed energy along one coordinate
    atom, axis, h = 3, 1, 1e-5
    shifted = []
    for sign in (1, -1):
        pos = demo.positions.clone()
        pos[atom, axis] += sign * h
        shifted.append(model(demo.atomic_numbers, pos, edges, demo.batch, demo.num_molecules)[0])
    numeric = -(shifted[0].sum() - shifted[1].sum()) / (2 * h)
    assert torch.allclose(forces[atom, axis], numeric, rtol=1e-6, atol=1e-9)
    # training: a loss on the forces reaches the parameters (create_graph)
    forces.square().sum().backward()
    assert model.model.interactions[0].mlp[0].weight.grad.abs().sum() > 0
    # evaluation under no_grad: gradients enabled inside, outputs detached
    with torch.no_grad():
        e2, f2 = model(*args)
    assert not e2.requires_grad and not f2.requires_grad
    assert torch.allclose(f2, forces.detach())


def test_schnet_parameter_count_formula():
    width, gaussians, interactions, elements = 16, 24, 3, 100
    model = models.build(
        "schnet",
        model=SCHNET,
        width=width,
        num_gaussians=gaussians,
        num_interactions=interactions,
        num_elements=elements,
    )
    expected = (
        elements * width
        + interactions * (4 * width**2 + gaussians * width + 4 * width)
        + width**2 // 2
        + width
        + 1
    )
    assert models.num_params(model) == expected


@pytest.mark.slow
def test_schnet_trains_through_train_job(tiny_dataset, tmp_path, monkeypatch):
    """A few optimizer steps of the example family through the trainer's entry point."""
    from pipeline.train.loop import train_job

    monkeypatch.chdir(ROOT)
    section = {
        "base_width": 8,
        "lr": 0.01,
        "batch_size": 8,
        "model": SCHNET,
        "hparams": {"num_interactions": 2, "num_gaussians": 16},
    }
    arch = {**section, "hparams": models.arch_hparams(section)}
    del arch["model"]  # travels in hparams, as the trainer builds from them
    out = tmp_path / "schnet/8/1"
    train_job(
        tiny_dataset / "train.h5",
        tiny_dataset / "val.h5",
        tiny_dataset / "stats.json",
        "schnet",
        arch,
        8,
        {1.0: out},
        {"threads": 1, "num_evals": 2, "first_eval_fraction": 0.5, "max_steps": 4},
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["steps"] == 4
    assert meta["n_params"] == models.num_params(models.build("schnet", width=8, **arch["hparams"]))
    assert meta["forward_flops_per_atom_counted"] > 0
    assert (out / "curve.csv").exists() and (out / "model.pt").exists()


def test_schnet_example_config_is_valid_and_names_the_class():
    import yaml

    from pipeline.config import check_config, merge_config

    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    example = yaml.safe_load((ROOT / "config/examples/schnet.yaml").read_text())
    config = merge_config(base, example)
    check_config(config, ROOT / "workflow/schemas/config.schema.yaml")
    hparams = models.arch_hparams(config["archs"]["schnet"])
    assert models.model_class(hparams["model"]).__name__ == "SchNet"
