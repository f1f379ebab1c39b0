"""train.precision and the GPU data path, as far as the CPU can test them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from pipeline.train.loop import ArchSettings, Trainer, TrainSettings, train_job

ARCH = {"base_width": 16, "lr": 0.01, "batch_size": 8, "hparams": {"num_layers": 2}}
SETTINGS = {"num_evals": 3, "first_eval_fraction": 0.2, "max_steps": 5, "device": "cpu"}


def _trainer(data, out, **overrides):
    return Trainer(
        data / "train.h5",
        data / "val.h5",
        data / "stats.json",
        ArchSettings.from_config("mpnn", ARCH),
        16,
        {1.0: out},
        TrainSettings(**{**SETTINGS, **overrides}),
    )


def _model(folder):
    return torch.load(folder / "model.pt", weights_only=True)["state_dict"]


def test_bf16_mixed_runs_on_the_cpu_and_is_recorded(tiny_dataset, tmp_path):
    runs = {}
    for precision in ("fp32", "bf16-mixed"):
        out = tmp_path / precision
        train_job(
            tiny_dataset / "train.h5",
            tiny_dataset / "val.h5",
            tiny_dataset / "stats.json",
            "mpnn",
            ARCH,
            16,
            {1.0: out},
            {**SETTINGS, "precision": precision},
        )
        meta = json.loads((out / "meta.json").read_text())
        assert meta["precision"] == meta["train"]["precision"] == precision
        runs[precision] = meta, pd.read_csv(out / "curve.csv"), _model(out)
    (meta32, curve32, model32), (meta16, curve16, model16) = runs["fp32"], runs["bf16-mixed"]
    assert meta32["fingerprint"] != meta16["fingerprint"]
    assert curve16["val_loss"].notna().all()
    # float32 weights either way; bfloat16 forward passes change them a little
    assert all(v.dtype == model32[k].dtype for k, v in model16.items())
    assert not all(torch.equal(model16[k], model32[k]) for k in model32)
    torch.testing.assert_close(
        torch.tensor(curve16["val_loss"].to_numpy()),
        torch.tensor(curve32["val_loss"].to_numpy()),
        rtol=0.05,
        atol=0.0,
    )


def test_autocast_forward_returns_the_weights_dtype(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path / "run", precision="bf16-mixed")
    _, indices = trainer.schedule.batches[0]
    batch, _ = trainer.unit.on_device(indices, trainer.unit.load(indices))
    energy, forces = trainer.unit.forward(batch, batch.positions)
    assert energy.dtype == forces.dtype == torch.float32
    assert energy.shape == (len(indices),) and forces.shape == (batch.num_atoms, 3)


def test_bad_precision_is_named():
    with pytest.raises(ValueError, match="train.precision must be one of"):
        TrainSettings(precision="fp16")


def test_graphs_built_on_the_device_path_give_the_same_run(tiny_dataset, tmp_path):
    """The CUDA data path (host gathers without a graph, the graph is built after the
    copy to the device) run with device='cpu': the same edges, the same run."""
    states = {}
    for on_device in (False, True):
        trainer = _trainer(tiny_dataset, tmp_path / str(on_device), augment="always")
        trainer.unit.graph_on_device = on_device
        trainer.prefetch = on_device  # the CUDA default: batches from the prefetch thread
        _, indices = trainer.schedule.batches[0]
        host = trainer.unit.load(indices)
        assert (host.edge_index.shape[1] == 0) == on_device
        batch, _ = trainer.unit.on_device(indices, host)
        assert torch.equal(batch.edge_index, trainer.unit.make_batch(indices).edge_index)
        trainer.run()
        states[on_device] = _model(tmp_path / str(on_device))
    assert all(torch.equal(states[False][k], states[True][k]) for k in states[False])


def test_compile_wraps_the_forward_and_changes_the_fingerprint(tiny_dataset, tmp_path):
    """train.compile routes every forward through torch.compile (lazily: nothing is
    compiled until the first step, which takes minutes on the CPU, so this test does
    not run one; benchmarks/bench_train.py --compile measures it)."""
    eager = _trainer(tiny_dataset, tmp_path / "a")
    compiled = _trainer(tiny_dataset, tmp_path / "b", compile=True)
    assert eager.unit.network is eager.model
    assert compiled.unit.network is not compiled.model
    assert compiled.unit.network._orig_mod is compiled.model  # same parameters
    assert compiled.fingerprint != eager.fingerprint
