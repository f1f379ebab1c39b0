"""Every table and figure of the paper is a target of the DAG, in both configs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [f"results/table{n}.csv" for n in range(1, 8)] + [
    f"results/figures/fig{n}.pdf" for n in range(1, 17)
]


def _dry_run(*args, cwd=ROOT) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "--forceall",
         *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _outputs(dry_run: str) -> set[str]:
    outputs = set()
    for line in dry_run.splitlines():
        line = line.strip()
        if line.startswith("output:"):
            outputs.update(p.strip() for p in line.removeprefix("output:").split(","))
    return outputs


def _jobs(dry_run: str) -> list[tuple[str, str]]:
    jobs = []
    for line in dry_run.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if match:
            jobs.append([match.group(1), ""])
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1][1] = line.strip().removeprefix("wildcards:").strip()
    return [tuple(job) for job in jobs]


@pytest.fixture(scope="module")
def paper_config(tmp_path_factory) -> Path:
    """config/paper.yaml pointed at an (empty) folder: a dry run reads no data."""
    folder = tmp_path_factory.mktemp("omol25")
    override = folder / "paths.yaml"
    override.write_text(
        f"data: {{path: {folder}}}\nvariants:\n"
        f"  diverse_mpnn: {{arch: mpnn, data: {{neutral_only: false, path: {folder}}}}}\n"
        f"  diverse_esen: {{arch: esen, data: {{neutral_only: false, path: {folder}}}}}\n"
    )
    return override


@pytest.mark.parametrize("which", ["default", "paper"])
def test_every_table_and_figure_is_in_the_dag(which, paper_config):
    args = ["all"] if which == "default" else [
        "all", "--configfile", str(ROOT / "config/paper.yaml"), str(paper_config)
    ]  # fmt: skip
    outputs = _outputs(_dry_run(*args))
    missing = [target for target in TARGETS if target not in outputs]
    assert not missing
    assert "results/report.md" in outputs


@pytest.mark.parametrize("target", [f"table{n}" for n in range(1, 8)] + ["fig1", "fig16"])
def test_targets_by_rule_name(target):
    assert _dry_run(target)


def test_fig7_plans_only_its_runs():
    jobs = _jobs(_dry_run("fig7"))
    trained = {(rule, wildcards) for rule, wildcards in jobs if rule.startswith("train")}
    assert trained
    for rule, wildcards in trained:
        assert "arch=mpnn" in wildcards, (rule, wildcards)
        assert rule == "train" or "variant=symmetry_loss" in wildcards, (rule, wildcards)
    rules = {rule for rule, _ in jobs}
    assert {"train", "train_variant", "kappa", "fig7"} <= rules
    assert not rules & {"fit", "frontier", "table1", "group_average", "extract_variant"}
