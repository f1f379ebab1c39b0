"""The Snakemake DAG: the default study's dry run, and partial reruns after config edits."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import write_morse_extxyz

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(*args, cwd=ROOT, timeout=600):
    result = subprocess.run(
        [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result


def _planned_jobs(output: str) -> tuple[Counter, set[tuple[str, str]]]:
    """Rule counts and (rule, wildcards) pairs from a dry run's output."""
    jobs, rule = [], None
    for line in output.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if match:
            rule = match.group(1)
            jobs.append([rule, ""])
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1][1] = line.strip().removeprefix("wildcards:").strip()
    return Counter(rule for rule, _ in jobs), {(rule, w) for rule, w in jobs}


def test_default_dag_has_every_stage():
    result = _snakemake("-n", "results/table1.csv", "--forceall")
    assert result.returncode == 0, result.stderr
    counts, _ = _planned_jobs(result.stdout + result.stderr)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    per_fraction, shared = 0, 0
    for arch in config["archs"].values():
        if arch.get("train", {}).get("shared_fraction_run", config["train"]["shared_fraction_run"]):
            shared += len(arch["widths"])  # one job per width writes every fraction
        else:
            per_fraction += len(arch["widths"]) * len(arch.get("fractions", config["fractions"]))
    assert counts["extract"] == 1
    assert counts["train"] == per_fraction >= 9
    assert sum(n for rule, n in counts.items() if rule.startswith("train_shared_")) == shared
    for rule in ("kappa", "frontier", "fit"):
        assert counts[rule] == len(config["archs"])
    assert counts["table1"] == 1


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"archs": {"mpnn": {"widths": [-8], "base_width": 8, "lr": 0.01, "batch_size": 4}}}
        )
    )
    result = _snakemake("-n", "--configfile", str(bad))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "config key 'archs.mpnn.widths[0]': -8 is less than the minimum of 1" in output
    assert "rule train" not in output


def _tiny_config(tmp_path: Path) -> dict:
    source = write_morse_extxyz(tmp_path / "molecules.extxyz", count=120)
    return {
        "data": {"source": "extxyz", "path": str(source), "val_size": 20, "seed": 0},
        "results": str(tmp_path / "results"),
        "fractions": [0.5, 0.75, 1.0],
        "train": {"threads": 1, "epochs": 1, "num_evals": 4, "first_eval_fraction": 0.1},
        "archs": {
            "mpnn": {
                "widths": [4, 8, 12],
                "base_width": 8,
                "lr": 0.01,
                "batch_size": 8,
                "hparams": {"num_layers": 2},
            }
        },
        "kappa": {"num_molecules": 8},
        "fit": {"n_boot": 20, "seed": 0},
    }


@pytest.mark.slow
def test_partial_reruns_touch_only_affected_jobs(tmp_path):
    config = _tiny_config(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    built = _snakemake("--cores", "2", cwd=tmp_path, timeout=900)
    assert built.returncode == 0, built.stderr[-4000:]
    assert (tmp_path / "results/table1.csv").exists()
    assert (tmp_path / "results/figures/fig1.pdf").exists()

    # nothing to do when nothing changed
    counts, _ = _planned_jobs(_snakemake("-n", cwd=tmp_path).stdout)
    assert sum(counts.values()) == 0

    aggregation = {"frontier", "fit", "table1", "fig1", "main", "kappa_table"}

    # one width edited: its three training jobs, kappa (it measures the ladder) and the
    # aggregation downstream; no other training job
    width_edit = yaml.safe_load(yaml.safe_dump(config))
    width_edit["archs"]["mpnn"]["widths"] = [4, 8, 16]
    (tmp_path / "width.yaml").write_text(yaml.safe_dump(width_edit))
    result = _snakemake("-n", "--configfile", "width.yaml", cwd=tmp_path)
    counts, jobs = _planned_jobs(result.stdout)
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {f"arch=mpnn, width=16, fraction={f}, seed=0" for f in ("0.5", "0.75", "1")}
    assert set(counts) == {"train", "kappa"} | aggregation
    assert "extract" not in counts

    # one fraction edited: its three training jobs and the aggregation; kappa untouched
    fraction_edit = yaml.safe_load(yaml.safe_dump(config))
    fraction_edit["fractions"] = [0.5, 0.8, 1.0]
    (tmp_path / "fraction.yaml").write_text(yaml.safe_dump(fraction_edit))
    result = _snakemake("-n", "--configfile", "fraction.yaml", cwd=tmp_path)
    counts, jobs = _planned_jobs(result.stdout)
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {f"arch=mpnn, width={w}, fraction=0.8, seed=0" for w in (4, 8, 12)}
    assert set(counts) == {"train"} | aggregation - {"kappa_table"}
