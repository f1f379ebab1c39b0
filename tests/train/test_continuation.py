"""A shared pass continued to a larger fraction equals a fresh pass over all fractions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.train.continuation import END_STATE, pass_dir
from pipeline.train.loop import train_job
from pipeline.train.schedule import Schedule
from pipeline.train.settings import TrainSettings

ARCH = {"base_width": 16, "lr": 0.01, "batch_size": 8, "hparams": {"num_layers": 2}}
SHARED = {"num_evals": 4, "first_eval_fraction": 0.1, "shared_fraction_run": True}
# provenance and wall-clock fields; everything else must be equal
TIMING = {"train_seconds", "eval_seconds", "data_seconds", "wall_seconds_this_session"}
PROVENANCE = {"code_version"}


def _dirs(root, fractions):
    return {r: root / f"{r:g}" / "seed0" for r in fractions}


def _pass(data, root, fractions, arch=ARCH, **settings):
    dirs = _dirs(root, fractions)
    train_job(
        data / "train.h5",
        data / "val.h5",
        data / "stats.json",
        "mpnn",
        arch,
        16,
        dirs,
        {**SHARED, **settings},
    )
    return dirs


def _delete_outputs(dirs):
    """What Snakemake does before rerunning a job: remove its declared outputs."""
    for folder in dirs.values():
        for name in ("curve.csv", "meta.json", "model.pt"):
            (folder / name).unlink()


def _assert_same_run(a, b):
    curve_a, curve_b = pd.read_csv(a / "curve.csv"), pd.read_csv(b / "curve.csv")
    pd.testing.assert_frame_equal(
        curve_a.drop(columns=["train_seconds", "eval_seconds"]),
        curve_b.drop(columns=["train_seconds", "eval_seconds"]),
        check_exact=True,
    )
    state_a = torch.load(a / "model.pt", weights_only=True)
    state_b = torch.load(b / "model.pt", weights_only=True)
    assert state_a.keys() == state_b.keys()
    assert all(
        torch.equal(state_a["state_dict"][k], state_b["state_dict"][k])
        for k in state_a["state_dict"]
    )
    meta_a, meta_b = (json.loads((d / "meta.json").read_text()) for d in (a, b))
    for key in TIMING | PROVENANCE:
        meta_a.pop(key), meta_b.pop(key)
    assert meta_a == meta_b


@pytest.mark.parametrize(
    "variant", [{}, {"augment": "always", "symmetry_loss_rotations": 1}], ids=["plain", "rotated"]
)
def test_continued_pass_equals_a_fresh_pass(tiny_dataset, tmp_path, caplog, variant):
    fresh = _pass(tiny_dataset, tmp_path / "fresh", [0.25, 0.5, 1.0], **variant)
    root = tmp_path / "continued"
    first = _pass(tiny_dataset, root, [0.25, 0.5], **variant)
    assert (pass_dir(first, 0) / END_STATE).exists()
    assert pass_dir(first, 0) == root / "pass-seed0"
    _delete_outputs(first)
    with caplog.at_level("INFO", logger="pipeline.train.continuation"):
        continued = _pass(tiny_dataset, root, [0.25, 0.5, 1.0], **variant)
    assert "continuing the pass over [0.25, 0.5]" in caplog.text
    for r in (0.25, 0.5, 1.0):
        _assert_same_run(continued[r], fresh[r])


def test_pass_folder_sits_beside_the_fraction_folders(tmp_path):
    seeded = {0.1: tmp_path / "runs/esen/4/0.1/seed2", 0.2: tmp_path / "runs/esen/4/0.2/seed2"}
    assert pass_dir(seeded, 2) == tmp_path / "runs/esen/4/pass-seed2"
    plain = {0.1: tmp_path / "runs/esen/4/0.1", 0.2: tmp_path / "runs/esen/4/0.2"}
    assert pass_dir(plain, 0) == tmp_path / "runs/esen/4/pass-seed0"


def test_other_changes_train_from_scratch(tiny_dataset, tmp_path, caplog):
    root = tmp_path / "run"
    first = _pass(tiny_dataset, root, [0.5, 1.0])
    _delete_outputs(first)
    with caplog.at_level("INFO", logger="pipeline.train.continuation"):
        _pass(tiny_dataset, root, [0.25, 0.5, 1.0])  # a smaller fraction
    assert "do not extend the saved pass's [0.5, 1.0]" in caplog.text
    caplog.clear()
    other = {**ARCH, "hparams": {"num_layers": 3}}
    shutil.rmtree(root / "0.25")
    with caplog.at_level("INFO", logger="pipeline.train.continuation"):
        _pass(tiny_dataset, root, [0.25, 0.5, 1.0, 0.75], arch=other)
    assert "saved pass has other settings" in caplog.text
    meta = json.loads((root / "0.25/seed0/meta.json").read_text())
    assert meta["hparams"] == {"num_layers": 3}


@pytest.mark.parametrize("num_evals", [3, 7])
def test_evaluation_steps_do_not_depend_on_later_fractions(num_evals):
    """Each fraction's evaluations are the same whatever larger fractions follow."""
    rng = np.random.default_rng(0)
    atoms = rng.integers(3, 40, size=1000)
    settings = TrainSettings(
        num_evals=num_evals, first_eval_fraction=0.05, shared_fraction_run=True
    )
    short = Schedule.build([0.1, 0.3], 1000, atoms, 16, settings)
    long = Schedule.build([0.1, 0.3, 1.0], 1000, atoms, 16, settings)
    for r in (0.1, 0.3):
        assert short.eval_steps[r] == long.eval_steps[r]
        assert short.fraction_last_step[r] == long.fraction_last_step[r]
    # about num_evals evaluations per fraction, log-spaced, the fraction's end included
    assert abs(len(long.eval_steps[1.0]) - num_evals) <= 1
    assert max(long.eval_steps[1.0]) == long.last_step
    # the larger fraction's evaluations before the old end were all made by the old pass
    old_end = short.last_step
    assert {s for s in long.eval_steps[1.0] if s <= old_end} <= short.all_eval_steps
