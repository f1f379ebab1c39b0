"""The Snakemake DAG: the default study's dry run, and partial reruns after config edits."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import arch_seeds, seeds_at_width
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
    for name, arch in config["archs"].items():
        seeds, seed_widths = arch_seeds(config, name)
        runs = sum(len(seeds_at_width(seeds, seed_widths, w)) for w in arch["widths"])
        if arch.get("train", {}).get("shared_fraction_run", config["train"]["shared_fraction_run"]):
            shared += runs  # one job per (width, seed) writes every fraction
        else:
            per_fraction += runs * len(arch.get("fractions", config["fractions"]))
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


# The rerun tests build extraction, training, kappa and the frontier for real (Snakemake
# metadata included) and dry-run those targets after each edit; the fit downstream takes
# params.fit exactly like the frontier does.
TARGETS = ["frontier/mpnn_flops.csv", "kappa.csv"]  # under config['results']


@pytest.fixture(scope="module")
def built_study(tmp_path_factory) -> tuple[Path, dict]:
    """The tiny study built once for real (metadata included), for rerun dry runs."""
    folder = tmp_path_factory.mktemp("study")
    config = _tiny_config(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"{config['results']}/{target}" for target in TARGETS]
    built = _snakemake("--cores", "2", *targets, cwd=folder, timeout=900)
    assert built.returncode == 0, built.stderr[-4000:]
    assert (folder / "results/frontier/mpnn_flops.csv").exists()
    assert (folder / "results/runs/mpnn/4/0.5/seed0/curve.csv").exists()
    return folder, config


class _PlannedJobs(tuple):
    """(rule counts, jobs) of a dry run, with Snakemake's reasons for assertion messages."""

    def __new__(cls, counts, jobs, reasons):
        planned = super().__new__(cls, (counts, jobs))
        planned.reasons = reasons
        return planned


def _plan_after(built_study, edit) -> tuple[Counter, set[tuple[str, str]]]:
    """Rule counts and jobs that a dry run plans after ``edit(config)`` (default triggers)."""
    folder, config = built_study
    edited = yaml.safe_load(yaml.safe_dump(config))
    edit(edited)
    (folder / "edited.yaml").write_text(yaml.safe_dump(edited))
    targets = [f"{config['results']}/{target}" for target in TARGETS]
    result = _snakemake("-n", *targets, "--configfile", "edited.yaml", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts, jobs = _planned_jobs(result.stdout)
    reasons = result.stdout[result.stdout.find("Reasons:") :]
    return _PlannedJobs(counts, jobs, reasons)


AGGREGATION = {"frontier", "kappa_table"}


@pytest.mark.slow
def test_nothing_reruns_when_nothing_changed(built_study):
    planned = _plan_after(built_study, lambda config: None)
    assert sum(planned[0].values()) == 0, planned.reasons


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["train"].update(threads=2),
        lambda c: c["train"].update(device="cpu"),
        lambda c: c["train"].update(checkpoint_every_seconds=60),
        lambda c: c["archs"]["mpnn"].update(resources={"runtime": 5, "mem_mb": 500}),
        lambda c: c.update(slurm={"account": "x", "partition": "p", "gres": "gpu:a100:2"}),
        lambda c: c.update(slurm={"cpu_jobs": {"cpus_per_task": 1, "mem_mb": 100}}),
    ],
    ids=["threads", "device", "checkpoint", "arch_resources", "slurm", "cpu_jobs"],
)
def test_how_a_job_runs_reruns_nothing(built_study, edit):
    planned = _plan_after(built_study, edit)
    assert sum(planned[0].values()) == 0, planned.reasons


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c["fit"].update(n_boot=30),
        lambda c: c["fit"].update(e_mode="free"),
        lambda c: c["fit"].update(ema={"mpnn": 0.5}),
        lambda c: c["fit"].update(compute="kappa"),
    ],
    ids=["n_boot", "e_mode", "ema", "compute"],
)
def test_fit_settings_rerun_only_fits_tables_and_figures(built_study, edit):
    planned = _plan_after(built_study, edit)
    assert set(planned[0]) == {"frontier"}, planned.reasons


@pytest.mark.slow
def test_a_new_seed_trains_only_its_runs(built_study):
    counts, jobs = _plan_after(built_study, lambda c: c.update(seeds=[0, 1]))
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {
        f"arch=mpnn, width={w}, fraction={f}, seed=1"
        for w in (4, 8, 12)
        for f in ("0.5", "0.75", "1")
    }
    assert set(counts) == {"train"} | AGGREGATION - {"kappa_table"}

    # a rung replicated alone: seed 1 only at the smallest and largest widths
    def replicate_ends(config):
        config["archs"]["mpnn"].update(seeds=[0, 1], seed_widths=[4, 12])

    _, jobs = _plan_after(built_study, replicate_ends)
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {
        f"arch=mpnn, width={w}, fraction={f}, seed=1" for w in (4, 12) for f in ("0.5", "0.75", "1")
    }


@pytest.mark.slow
def test_a_ladder_edit_reruns_only_its_jobs(built_study):
    # one width edited: its three training jobs, kappa (it measures the ladder) and the
    # aggregation downstream; no other training job
    def width_edit(config):
        config["archs"]["mpnn"]["widths"] = [4, 8, 16]

    counts, jobs = _plan_after(built_study, width_edit)
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {f"arch=mpnn, width=16, fraction={f}, seed=0" for f in ("0.5", "0.75", "1")}
    assert set(counts) == {"train", "kappa"} | AGGREGATION
    assert "extract" not in counts

    # one fraction edited: its three training jobs and the aggregation; kappa untouched
    counts, jobs = _plan_after(built_study, lambda c: c.update(fractions=[0.5, 0.8, 1.0]))
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {f"arch=mpnn, width={w}, fraction=0.8, seed=0" for w in (4, 8, 12)}
    assert set(counts) == {"train"} | AGGREGATION - {"kappa_table"}


@pytest.mark.slow
def test_an_lr_cap_reruns_only_the_widths_it_binds(built_study):
    # muP gives widths 4, 8, 12 the rates 0.02, 0.01, 0.0067: a cap of 0.015 binds at 4
    counts, jobs = _plan_after(built_study, lambda c: c["archs"]["mpnn"].update(lr_max=0.015))
    trained = {w for rule, w in jobs if rule == "train"}
    assert trained == {f"arch=mpnn, width=4, fraction={f}, seed=0" for f in ("0.5", "0.75", "1")}
    assert set(counts) == {"train"} | AGGREGATION - {"kappa_table"}
    planned = _plan_after(built_study, lambda c: c["archs"]["mpnn"].update(lr_max=0.05))
    assert sum(planned[0].values()) == 0, planned.reasons


# --- Snakemake's own job resources: one SLURM override reaches every training job -------

TRAIN_RULE = re.compile(r"^(train|train_shared_\w+|train_variant)$")


def _planned_resources(output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job of a dry run, as Snakemake printed them."""
    jobs = []
    for line in output.splitlines():
        line = line.strip()
        match = re.match(r"^(?:local)?rule (\w+):", line)
        if match:
            jobs.append((match.group(1), {}))
        elif line.startswith("resources:") and jobs:
            for item in line.removeprefix("resources:").strip().split(", "):
                key, _, value = item.partition("=")
                jobs[-1][1][key] = value
    return jobs


def _write_user_file(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.fixture(scope="module")
def omol25_folders(tmp_path_factory) -> Path:
    """A neutral-subset folder and the diverse split beside it (../train_4M), each one
    small OMol25-style aselmdb shard, as config/paper.yaml expects them."""
    from tests.data.data_synth import make_atoms, random_molecule, write_aselmdb

    root = tmp_path_factory.mktemp("omol25")
    rng = np.random.default_rng(0)
    for split in ("neutral", "train_4M"):
        (root / split).mkdir()
        atoms = [make_atoms(*random_molecule(rng, int(rng.integers(3, 8)))) for _ in range(8)]
        write_aselmdb(root / split / "data0000.aselmdb", atoms)
    return root


@pytest.mark.parametrize("study", ["default", "paper"])
def test_slurm_settings_reach_every_training_job(study, tmp_path, omol25_folders):
    """The done-when of issue 17 item 1: a user file that sets only data.path (paper) and
    the account; every training job, whatever its rule, carries the account, partition,
    GPUs, CPUs, time limit and memory, and the heavy CPU jobs carry the account too."""
    if study == "paper":
        # paper.yaml's own partition, GPUs and CPUs; the user adds only the account
        config_path = ROOT / "config/paper.yaml"
        slurm = {"account": "acct42", "partition": "a100", "gres": "gpu:1", "cpus_per_task": 8}
        user = _write_user_file(
            tmp_path / "user.yaml",
            data={"path": str(omol25_folders / "neutral")},
            slurm={"account": "acct42"},
        )
        configs = ["--configfile", str(config_path), str(user)]
    else:
        config_path = ROOT / "config.yaml"
        slurm = {
            "account": "acct42",
            "partition": "gpu_x",
            "gres": "gpu:h100:1",
            "cpus_per_task": 3,
        }
        user = _write_user_file(tmp_path / "user.yaml", slurm=slurm)
        configs = ["--configfile", str(user)]
    result = _snakemake("-n", "--forceall", "--profile", "slurm", "all", *configs, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = _planned_resources(result.stdout)
    config = yaml.safe_load(config_path.read_text())
    training = [(rule, res) for rule, res in jobs if TRAIN_RULE.match(rule)]
    rules = {rule for rule, _ in training}
    assert "train_variant" in rules and any(r.startswith("train_shared_") for r in rules)
    if study == "default":
        assert "train" in rules
    for rule, resources in training:
        assert resources["slurm_account"] == "acct42", (rule, resources)
        assert resources["slurm_partition"] == slurm["partition"], (rule, resources)
        assert resources["gres"] == slurm["gres"], (rule, resources)
        assert int(resources["cpus_per_task"]) == slurm["cpus_per_task"], (rule, resources)
        assert int(resources["runtime"]) > 0 and int(resources["mem_mb"]) > 0
    # the time limit and memory are the arch's
    shared = [res for rule, res in training if rule == "train_shared_egnn"]
    assert {int(res["runtime"]) for res in shared} == {
        config["archs"]["egnn"]["resources"]["runtime"]
    }
    heavy = [(rule, res) for rule, res in jobs if rule in ("extract", "extract_variant", "kappa")]
    assert {rule for rule, _ in heavy} >= {"extract", "kappa"}
    for rule, resources in heavy:
        assert resources["slurm_account"] == "acct42", (rule, resources)
        assert "gres" not in resources, (rule, resources)


def test_paper_study_runs_from_one_data_path(tmp_path, omol25_folders):
    """Issue 17 item 3: config/paper.yaml plus a user file with data.path only plans `all`,
    and that one path reaches every extraction, the diverse split's included."""
    from pipeline.config import expand_variants, merge_config

    neutral = omol25_folders / "neutral"
    user = _write_user_file(tmp_path / "user.yaml", data={"path": str(neutral)})
    result = _snakemake(
        "-n", "--forceall", "all", "--configfile", str(ROOT / "config/paper.yaml"), str(user)
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts, _ = _planned_jobs(result.stdout)
    assert counts["extract"] == 1 and counts["extract_variant"] == 2

    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    merged = merge_config(paper, yaml.safe_load(user.read_text()))
    paths = {
        name: variant["data"]["path"]
        for name, variant in expand_variants(merged).items()
        if variant["own_data"]
    }
    assert set(paths) == {"diverse_mpnn", "diverse_esen"}
    for path in paths.values():
        assert Path(path) == omol25_folders / "train_4M"
        assert list(Path(path).glob("*.aselmdb"))


# Snakemake's own record of which rules run where it runs (`localrule: True`).
LOCAL_RULES = """
import contextlib, io, json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(configfiles=[Path(sys.argv[2])]),
        snakefile=Path(sys.argv[1]),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        workflow.list_rules()
    rules = workflow._workflow.rules
    local = workflow._workflow._localrules
print(json.dumps({rule.name: rule.name in local for rule in rules}))
"""


@pytest.mark.parametrize("on_slurm", [True, False])
def test_only_light_rules_are_local(on_slurm, tmp_path):
    """Issue 15 item 4: training, extraction and kappa are cluster jobs (extraction and
    kappa unless slurm.cpu_jobs.on_slurm is false); aggregations run where Snakemake runs."""
    user = _write_user_file(tmp_path / "user.yaml", slurm={"cpu_jobs": {"on_slurm": on_slurm}})
    result = subprocess.run(
        [sys.executable, "-c", LOCAL_RULES, str(ROOT / "Snakefile"), str(user)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    is_local = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = {"extract", "extract_variant", "kappa"}
    training = {rule for rule in is_local if TRAIN_RULE.match(rule)}
    assert {"train", "train_variant"} <= training
    assert not any(is_local[rule] for rule in training)
    assert all(is_local[rule] != on_slurm for rule in heavy)
    light = set(is_local) - training - heavy
    assert {"frontier", "fit", "table1", "fig1", "report", "group_average", "all"} <= light
    assert all(is_local[rule] for rule in light), sorted(r for r in light if not is_local[r])
