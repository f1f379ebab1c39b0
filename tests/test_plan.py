"""The cost plan (pipeline.plan, rule plan): FLOPs, D, pilot hours, jobs against the DAG."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch

from pipeline import models
from pipeline.plan import FlopBatches, measure_family, plan_jobs, prefix_atoms, summarize
from pipeline.train.flops import count_forward_flops
from pipeline.train.kappa import measure_flop_points

ROOT = Path(__file__).resolve().parents[1]
MPNN = {"base_width": 16, "lr": 0.01, "batch_size": 8, "hparams": {"num_layers": 2}}
TRAIN = {"epochs": 1, "symmetry_loss_rotations": 0, "max_steps": None}


def _job(width, fractions=(1.0,), arch="mpnn", settings=MPNN, train=TRAIN, **extra):
    return {
        "rule": "train",
        "variant": None,
        "arch": arch,
        "width": width,
        "fractions": list(fractions),
        "seed": 0,
        "arch_settings": settings,
        "train": train,
        "data": "study",
        **extra,
    }


def test_flops_match_the_models_measured_flops(tiny_dataset):
    """Measured rungs equal kappa's FLOP points on the same batch; extrapolated rungs
    (quadratic in width) equal a direct count on the built model."""
    val = tiny_dataset / "val.h5"
    widths = [8, 12, 16, 20, 32, 48]
    batches = FlopBatches(val, 4)
    ladder = measure_family("mpnn", MPNN, widths, batches)
    assert ladder[48]["flops_source"].startswith("quadratic")
    points = measure_flop_points(
        "mpnn", widths, MPNN["hparams"], val, num_molecules=4, batch_molecules=(4,)
    )
    assert sorted(points["width"]) == widths
    for row in points.itertuples():
        planned = ladder[row.width]
        assert planned["n_params"] == row.n_params
        assert planned["forward_flops_per_atom_counted"] == pytest.approx(
            row.flops_counted / row.atoms, rel=1e-9
        )
        assert planned["forward_flops_per_atom_total"] == pytest.approx(
            row.flops_total / row.atoms, rel=1e-9
        )


def test_conservative_model_flops_include_the_backward_pass(tiny_dataset, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    settings = {**MPNN, "hparams": {"num_interactions": 1}, "model": "examples.schnet:SchNet"}
    plan = plan_jobs(
        [_job(8, arch="schnet", settings=settings)],
        {"study": tiny_dataset / "train.h5"},
        tiny_dataset / "val.h5",
    )
    batches = FlopBatches(tiny_dataset / "val.h5", 4)
    torch.manual_seed(0)
    inner = models.build("schnet", width=8, **models.arch_hparams(settings)).model
    inputs = batches.inputs(inner)
    forward_only = count_forward_flops(inner, inputs)["counted"] / len(inputs[0])
    assert plan["forward_flops_per_atom_counted"].iloc[0] > 1.5 * forward_only
    assert "incl. force backward" in plan["flops"].iloc[0]


def test_atoms_compute_and_scaling(tiny_dataset):
    train_h5 = {"study": tiny_dataset / "train.h5"}
    with h5py.File(train_h5["study"], "r") as handle:
        ptr = handle["ptr"][:]
    molecules = len(ptr) - 1
    jobs = [
        _job(16, fractions=(0.25, 0.5, 1.0)),  # a shared run: one pass over 1.0
        _job(16, fractions=(0.5,), train={**TRAIN, "epochs": 3}),
        _job(16, fractions=(1.0,), train={**TRAIN, "symmetry_loss_rotations": 2}),
        _job(16, fractions=(1.0,), train={**TRAIN, "max_steps": 2}),
    ]
    plan = plan_jobs(jobs, train_h5, tiny_dataset / "val.h5")
    half = int(ptr[-(-molecules // 2)])
    assert list(plan["atoms_D"]) == pytest.approx(
        [ptr[-1], 3 * half, ptr[-1], 2 * 8 * ptr[-1] / molecules]
    )
    assert list(plan["passes_per_step"]) == [1, 1, 3, 1]
    per_atom = plan["forward_flops_per_atom_counted"]
    expected = 3 * per_atom * plan["atoms_D"] * plan["passes_per_step"] / 1e15
    assert list(plan["training_pflops"]) == pytest.approx(list(expected))
    assert plan["hours_estimate"].isna().all()
    scaled = plan_jobs(jobs[:1], train_h5, tiny_dataset / "val.h5", train_atoms=9.2e8)
    assert scaled["atoms_D"].iloc[0] == pytest.approx(9.2e8)
    assert prefix_atoms(train_h5["study"], 1.0) == ptr[-1]


def test_hours_from_pilot_runs_scale_with_flops(tiny_dataset, tmp_path):
    run = tmp_path / "results/runs/mpnn/8/1/seed0"
    run.mkdir(parents=True)
    pilot = {
        "arch": "mpnn",
        "device": "NVIDIA A100-SXM4-80GB",
        "forward_flops_per_atom_counted": 1.0e5,
        "atoms_seen": 1.0e6,
        "train_seconds": 30.0,
        "forward_passes_per_step": 1,
    }
    (run / "meta.json").write_text(json.dumps(pilot))
    other = tmp_path / "results/runs/mpnn/8/1/seed1"
    other.mkdir(parents=True)
    (other / "meta.json").write_text(json.dumps({**pilot, "device": "cpu", "train_seconds": 1.0}))
    plan = plan_jobs(
        [_job(16), _job(8, arch="egnn", settings={**MPNN, "hparams": {"num_layers": 1}})],
        {"study": tiny_dataset / "train.h5"},
        tiny_dataset / "val.h5",
        results=tmp_path / "results",
        device_kind="NVIDIA A100-SXM4-80GB",
    )
    rate = 3 * 1.0e5 * 1.0e6 / 30.0  # FLOP/s of the pilot on that device
    mpnn = plan.iloc[0]
    assert mpnn["hours_estimate"] == pytest.approx(mpnn["training_pflops"] * 1e15 / rate / 3600)
    assert mpnn["pilot_runs"] == 1 and mpnn["pilot_device"] == "NVIDIA A100-SXM4-80GB"
    assert pd.isna(plan.iloc[1]["hours_estimate"])  # no egnn pilot
    summary = summarize(plan)
    assert summary.loc["study", "jobs"] == 2
    assert summary.loc["study", "jobs_without_hours"] == 1


def _job_counts(text: str) -> dict[str, int]:
    """Training rules' counts from Snakemake's job stats table."""
    counts = {}
    for name, count in re.findall(r"^(train\S*)\s+(\d+)$", text, flags=re.M):
        counts[name] = int(count)
    return counts


@pytest.mark.slow
def test_plan_lists_every_training_job_of_the_dag(tmp_path):
    """`snakemake plan` on config.yaml: its jobs are the training jobs of `snakemake -n all`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = f"results={tmp_path / 'results'}"
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1"]
    config = ["--config", results]
    run = subprocess.run(
        [*snakemake, "plan", *config], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Cost plan" in run.stdout and "SLURM jobs:" in run.stdout
    plan = pd.read_csv(tmp_path / "results/plan.csv")
    dry = subprocess.run(
        [*snakemake, "-n", "all", *config], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    dag = _job_counts(dry.stdout + dry.stderr)
    assert dag and plan["rule"].value_counts().to_dict() == dag


def test_paper_plan_overlay_is_valid():
    import yaml

    from pipeline.config import check_config, merge_config

    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    overlay = yaml.safe_load((ROOT / "config/examples/paper_plan_on_demo.yaml").read_text())
    config = merge_config(paper, overlay)
    check_config(config, ROOT / "workflow/schemas/config.schema.yaml")
    assert config["plan"]["train_atoms"] == 9.2e8  # section 3.1's D
    assert config["data"]["source"] == "demo"
