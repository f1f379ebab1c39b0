"""What other stages rely on: seeds, run ids, runtime settings, model.prepare."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.models.mpnn import MPNN
from pipeline.train.loop import train_job

ARCH = {"base_width": 16, "lr": 0.01, "batch_size": 8, "hparams": {"num_layers": 2}}
SETTINGS = {"num_evals": 3, "first_eval_fraction": 0.2, "max_steps": 3}


def _meta(folder) -> dict:
    return json.loads((folder / "meta.json").read_text())


def _job(data, fraction_dirs, **kwargs):
    train = kwargs.pop("train", SETTINGS)
    train_job(
        data / "train.h5",
        data / "val.h5",
        data / "stats.json",
        "mpnn",
        ARCH,
        16,
        fraction_dirs,
        train,
        **kwargs,
    )


def test_seed_overrides_the_train_section_and_names_the_run(tiny_dataset, tmp_path):
    _job(tiny_dataset, {0.5: tmp_path / "a"}, train={**SETTINGS, "seed": 0}, seed=3)
    _job(tiny_dataset, {0.5: tmp_path / "b"}, train={**SETTINGS, "seed": 3})
    a, b = _meta(tmp_path / "a"), _meta(tmp_path / "b")
    assert a["seed"] == b["seed"] == 3 and a["train"]["seed"] == 3
    assert a["fingerprint"] == b["fingerprint"]
    assert a["run_id"] == "base/mpnn/w16/f0.5/seed3"
    assert a["variant"] == "base" and a["forces"] == "direct"
    first = torch.load(tmp_path / "a/model.pt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "b/model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_shared_pass_fractions_share_one_run_id(tiny_dataset, tmp_path):
    dirs = {0.5: tmp_path / "0.5/seed1", 1.0: tmp_path / "1/seed1"}
    _job(
        tiny_dataset,
        dirs,
        train={**SETTINGS, "shared_fraction_run": True, "max_steps": None},
        seed=1,
        variant="lmax4",
    )
    ids = {_meta(folder)["run_id"] for folder in dirs.values()}
    assert ids == {"lmax4/mpnn/w16/seed1"}


def test_runtime_settings_reach_the_job_and_do_not_change_the_fingerprint(tiny_dataset, tmp_path):
    _job(tiny_dataset, {1.0: tmp_path / "a"})
    _job(
        tiny_dataset,
        {1.0: tmp_path / "b"},
        runtime={"device": "cpu", "threads": 1, "checkpoint_every_seconds": 5.0},
    )
    a, b = _meta(tmp_path / "a"), _meta(tmp_path / "b")
    assert b["train"]["checkpoint_every_seconds"] == 5.0 and b["train"]["device"] == "cpu"
    assert a["fingerprint"] == b["fingerprint"]
    with pytest.raises(ValueError, match="unknown runtime settings"):
        _job(tiny_dataset, {1.0: tmp_path / "c"}, runtime={"gpus": 2})


class _Prepared(MPNN):
    """An MPNN whose ``prepare`` stores the first batch's atom count in a buffer."""

    calls = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("prepared_atoms", torch.zeros((), dtype=torch.long))

    def prepare(self, atomic_numbers, positions, edge_index, batch, num_molecules):
        type(self).calls += 1
        assert positions.shape == (atomic_numbers.shape[0], 3) and num_molecules == 8
        self.prepared_atoms.fill_(atomic_numbers.shape[0])


def test_prepare_runs_on_a_fresh_run_only(tiny_dataset, tmp_path, monkeypatch):
    from pipeline import models

    monkeypatch.setitem(models.REGISTRY, "prepared", f"{__name__}:_Prepared")
    _Prepared.calls = 0
    out = tmp_path / "run"
    args = (tiny_dataset / "train.h5", tiny_dataset / "val.h5", tiny_dataset / "stats.json")
    from pipeline.train.loop import ArchSettings, Trainer, TrainSettings

    def trainer():
        return Trainer(
            *args,
            ArchSettings.from_config("prepared", ARCH),
            16,
            {1.0: out},
            TrainSettings(**{**SETTINGS, "max_steps": None}),
        )

    first = trainer()
    first.unit.prepare_model(first.schedule.batches[0][1])
    first.checkpoint()  # as if preempted before the first step
    assert _Prepared.calls == 1
    resumed = trainer()
    resumed.run()
    assert _Prepared.calls == 1  # the checkpoint carried the prepared buffer
    state = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert int(state["prepared_atoms"]) == int(
        first.store.atoms_per_molecule[first.schedule.batches[0][1]].sum()
    )
