"""Training jobs: outputs, shared-fraction runs, kill-and-resume, non-finite steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch

from pipeline import models
from pipeline.train.checkpoint import CheckpointError, save_atomic
from pipeline.train.loop import (
    RESUME_EXIT_CODE,
    ArchSettings,
    NonFiniteError,
    Trainer,
    TrainSettings,
    train_job,
)

ARCH = {
    "base_width": 16,
    "lr": 0.01,
    "batch_size": 8,
    "hparams": {"num_layers": 2},
}
TIMING = ["train_seconds", "eval_seconds"]


def _settings(**overrides) -> dict:
    settings = {"threads": 1, "num_evals": 4, "first_eval_fraction": 0.1, "epochs": 1}
    settings.update(overrides)
    return settings


def _run(data, fraction_dirs, width=16, arch=ARCH, **overrides):
    train_job(
        data / "train.h5",
        data / "val.h5",
        data / "stats.json",
        "mpnn",
        arch,
        width,
        fraction_dirs,
        _settings(**overrides),
    )


def _state(path):
    return torch.load(path, weights_only=False)["state_dict"]


def test_run_writes_curve_meta_and_model(tiny_dataset, tmp_path):
    out = tmp_path / "mpnn/16/1"
    _run(tiny_dataset, {1.0: out}, epochs=2, augment="after_first_epoch")
    curve = pd.read_csv(out / "curve.csv")
    meta = json.loads((out / "meta.json").read_text())
    assert list(curve.columns[:10]) == [
        "step",
        "epoch",
        "molecules_seen",
        "atoms_seen",
        "train_seconds",
        "eval_seconds",
        "val_loss",
        "val_energy_loss",
        "val_force_loss",
        "val_energy_mae_mev_per_atom",
    ]
    assert curve["atoms_seen"].is_monotonic_increasing
    assert curve["train_seconds"].is_monotonic_increasing
    assert (curve["val_loss"] > 0).all() and curve["val_loss"].notna().all()
    assert curve["epoch"].iloc[-1] == 1
    # 80 training molecules, two passes
    assert meta["molecules_seen"] == curve["molecules_seen"].iloc[-1] == 160
    rebuilt = models.build("mpnn", width=16, **ARCH["hparams"])
    rebuilt.load_state_dict(_state(out / "model.pt"))
    assert meta["n_params"] == models.num_params(rebuilt)
    assert meta["lr"] == pytest.approx(0.01)
    assert meta["nonfinite_steps"] == 0
    assert meta["forward_flops_per_atom_counted"] > 0
    assert meta["device"].startswith("cpu")
    assert "torch" in meta["versions"] and meta["code_version"]
    assert not (out / ".work").exists()


def test_lr_max_caps_the_mup_rate_of_narrow_widths(tiny_dataset, tmp_path):
    # muP gives width 4 the rate 0.01 * 16 / 4 = 0.04; the cap trains it at 0.02, exactly
    # as a base rate of 0.005 would
    def run(folder, **arch):
        _run(tiny_dataset, {1.0: tmp_path / folder}, width=4, arch={**ARCH, **arch})
        return json.loads((tmp_path / folder / "meta.json").read_text())

    capped = run("capped", lr_max=0.02)
    assert capped["lr"] == pytest.approx(0.02) and capped["lr_max"] == 0.02
    assert run("lower_base", lr=0.005)["lr"] == pytest.approx(0.02)
    uncapped = run("uncapped")
    assert uncapped["lr"] == pytest.approx(0.04) and uncapped["lr_max"] is None
    same, other = _state(tmp_path / "lower_base/model.pt"), _state(tmp_path / "uncapped/model.pt")
    for name, weights in _state(tmp_path / "capped/model.pt").items():
        assert torch.equal(weights, same[name]), name
    assert any(not torch.equal(w, other[n]) for n, w in same.items())


@pytest.mark.parametrize(
    "variant", [{}, {"symmetry_loss_rotations": 1, "augment": "always", "eval_every_steps": 2}]
)
def test_shared_run_equals_separate_fraction_runs(tiny_dataset, tmp_path, variant):
    shared = {0.5: tmp_path / "shared/0.5", 1.0: tmp_path / "shared/1"}
    _run(tiny_dataset, shared, shared_fraction_run=True, **variant)
    _run(tiny_dataset, {0.5: tmp_path / "alone/0.5"}, **variant)
    a, b = _state(shared[0.5] / "model.pt"), _state(tmp_path / "alone/0.5/model.pt")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7)
    curve_shared = pd.read_csv(shared[0.5] / "curve.csv").drop(columns=TIMING)
    curve_alone = pd.read_csv(tmp_path / "alone/0.5/curve.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(curve_shared, curve_alone, rtol=1e-6)
    meta_full = json.loads((shared[1.0] / "meta.json").read_text())
    assert meta_full["molecules_seen"] == 80
    assert json.loads((shared[0.5] / "meta.json").read_text())["molecules_seen"] == 40


def test_shared_run_needs_one_epoch(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="epochs 1"):
        _run(
            tiny_dataset,
            {0.5: tmp_path / "a", 1.0: tmp_path / "b"},
            shared_fraction_run=True,
            epochs=2,
        )


_CHILD = textwrap.dedent(
    """
    import sys, logging
    from pathlib import Path
    from pipeline.logs import configure_logging
    from pipeline.train.loop import train_job
    configure_logging(None)
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    train_job(data / "train.h5", data / "val.h5", data / "stats.json", "mpnn",
              {ARCH}, 16, {{1.0: out}},
              {SETTINGS})
    """
)


_PLAIN = {
    "threads": 1,
    "num_evals": 40,
    "first_eval_fraction": 0.01,
    "epochs": 6,
    "augment": "after_first_epoch",
}
# every variant at once: augmentation, symmetry loss (rotations from the checkpointed
# generator), evaluation every N steps
_VARIANTS = {
    "threads": 1,
    "epochs": 4,
    "augment": "after_first_epoch",
    "symmetry_loss_rotations": 2,
    "symmetry_loss_weight": 0.5,
    "eval_every_steps": 2,
}


# train.compile: each process compiles (minutes on the CPU; measured 3.5 min for the
# three runs on the shared 2-core machine), so opt-in: PIPELINE_COMPILE_TESTS=1
_COMPILED = pytest.param(
    {**_PLAIN, "epochs": 3, "num_evals": 6, "first_eval_fraction": 0.05, "compile": True},
    id="compiled",
    marks=[
        pytest.mark.slow,
        pytest.mark.skipif(
            not os.environ.get("PIPELINE_COMPILE_TESTS"), reason="set PIPELINE_COMPILE_TESTS=1"
        ),
    ],
)


@pytest.mark.parametrize(
    "settings", [_PLAIN, _VARIANTS, _COMPILED], ids=["plain", "all_variants", "compiled"]
)
def test_killed_run_resumes_to_the_same_result(tiny_dataset, tmp_path, settings):
    """SIGTERM mid-run: checkpoint, exit code 75; rerun resumes; result bit-identical."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(ARCH=ARCH, SETTINGS=settings))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    child = subprocess.Popen(
        [sys.executable, str(script), str(tiny_dataset), str(killed)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    evaluations = 0
    for line in child.stderr:  # wait until training is under way
        evaluations += "val_loss" in line
        if evaluations == 3:
            child.send_signal(signal.SIGTERM)
            break
    child.stderr.read()
    assert child.wait(timeout=120) == RESUME_EXIT_CODE
    assert (killed / ".work/resume.pt").exists()
    assert not (killed / "curve.csv").exists()

    resumed = subprocess.run(
        [sys.executable, str(script), str(tiny_dataset), str(killed)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr

    straight = tmp_path / "straight"
    subprocess.run(
        [sys.executable, str(script), str(tiny_dataset), str(straight)],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    a, b = _state(killed / "model.pt"), _state(straight / "model.pt")
    assert all(torch.equal(a[name], b[name]) for name in a)
    pd.testing.assert_frame_equal(
        pd.read_csv(killed / "curve.csv").drop(columns=TIMING),
        pd.read_csv(straight / "curve.csv").drop(columns=TIMING),
        check_exact=True,
    )


def _trainer(data, out, **overrides):
    return Trainer(
        data / "train.h5",
        data / "val.h5",
        data / "stats.json",
        ArchSettings.from_config("mpnn", ARCH),
        16,
        {1.0: out},
        TrainSettings(**_settings(**overrides)),
    )


def _poison(trainer, bad_steps):
    """Make the model's energy NaN on the given steps."""
    forward = trainer.unit.forward

    def poisoned(batch, positions):
        energy, forces = forward(batch, positions)
        if trainer.state.step in bad_steps and torch.is_grad_enabled():
            energy = energy * float("nan")
        return energy, forces

    trainer.unit.forward = poisoned


def test_nonfinite_steps_are_skipped_and_counted(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path / "run")
    _poison(trainer, {2, 5})
    trainer.run()
    meta = json.loads((tmp_path / "run/meta.json").read_text())
    assert meta["nonfinite_steps"] == 2
    assert [r["step"] for r in meta["nonfinite_records"]] == [2, 5]
    assert len(meta["nonfinite_records"][0]["molecules"]) == ARCH["batch_size"]
    assert pd.read_csv(tmp_path / "run/curve.csv")["val_loss"].notna().all()


def test_too_many_nonfinite_steps_stop_the_job(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path / "run", max_nonfinite_steps=1)
    _poison(trainer, {1, 3})
    with pytest.raises(NonFiniteError, match="max_nonfinite_steps=1"):
        trainer.run()
    assert not (tmp_path / "run/curve.csv").exists()


def test_resume_refuses_a_checkpoint_of_another_config(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    other = _trainer(tiny_dataset, out, seed=1)
    save_atomic({"fingerprint": "not-this-config", "step": 0}, other.resume_path)
    with pytest.raises(CheckpointError, match="different configuration"):
        _trainer(tiny_dataset, out).run()


def test_corrupt_checkpoint_is_named(tiny_dataset, tmp_path):
    trainer = _trainer(tiny_dataset, tmp_path / "run")
    trainer.resume_path.parent.mkdir(parents=True)
    trainer.resume_path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="resume.pt: corrupt checkpoint"):
        trainer.run()


def test_corrupt_checkpoint_restarts_only_when_asked(tiny_dataset, tmp_path, caplog):
    trainer = _trainer(tiny_dataset, tmp_path / "run", restart_corrupt_checkpoint=True)
    trainer.resume_path.parent.mkdir(parents=True)
    trainer.resume_path.write_bytes(b"not a checkpoint")
    trainer.run()
    assert (tmp_path / "run/curve.csv").exists()
    assert "starting fresh as asked" in caplog.text
    assert not trainer.resume_path.exists()
