"""The `slurm` profile against a real SLURM (started by .ci/slurm-up.sh in CI).

What is checked comes from SLURM's own records (`scontrol show job`; the CI cluster
keeps finished jobs for MinJobAge = 1 h since it has no accounting database) and from
the job logs SLURM writes, not from what Snakemake says it asked for:

- a small target of the default study built through `snakemake --profile slurm`, with
  every training job on partition `a100` with one GPU, and extraction and kappa as SLURM
  jobs on the CPU partition (`cpu`, added by .ci/slurm-up.sh), all under the account of
  config `slurm.account`;
- the account, partition and time limit of the config reach a shared-fraction training
  job and a variant's training job (rules other than `train`);
- a training job killed by SLURM's time limit is rerun by Snakemake and resumes from
  its checkpoint;
- a training job requeued by SLURM (what preemption does) restarts under the same job
  id and resumes from its checkpoint.

Without a reachable SLURM these tests skip and say why; with CI=true they fail instead.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
PARTITION = DEFAULT_CONFIG["slurm"]["partition"]
CPU_PARTITION = "cpu"  # .ci/slurm-up.sh: the same node, no GPU asked for
ACCOUNT = "nnip_ci"  # no accounting database: SLURM records any account name
ARCH = "mpnn"
# First status query 5 s after submission instead of 40 s (MinJobAge must stay >= 3x).
FAST_STATUS = ["--slurm-init-seconds-before-status-checks", "5"]

SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def _slurm_unavailable() -> str | None:
    """Why SLURM cannot be used here, or None when `sinfo` lists the partition."""
    if shutil.which("sinfo") is None:
        return "no SLURM here: `sinfo` is not on PATH (CI starts one with .ci/slurm-up.sh)"
    try:
        result = subprocess.run(
            ["sinfo", "-h", "-p", PARTITION, "-o", "%P %t"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "no SLURM here: `sinfo` did not answer within 20 s"
    if result.returncode != 0:
        return f"no SLURM here: `sinfo` failed: {result.stderr.strip()}"
    if not result.stdout.strip():
        return f"SLURM answers but has no partition {PARTITION!r}"
    return None


@pytest.fixture(scope="module")
def slurm():
    if os.environ.get("NNIP_SKIP_SLURM") == "1":
        pytest.skip("SKIP_SLURM=1 (.ci/run as a non-root user): no SLURM was started")
    reason = _slurm_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


def _study_config(
    tmp_path: Path,
    *,
    widths,
    train: dict,
    runtime: int = 10,
    extra: str | None = None,
    cpu_jobs_on_slurm: bool = False,
    variants: dict | None = None,
) -> Path:
    """The default config with a tiny study: one arch, the given widths, fraction 1.

    Extraction and kappa run where Snakemake runs unless ``cpu_jobs_on_slurm`` (then on
    the CPU partition), so that most tests submit only what they are about."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["results"] = str(tmp_path / "results")
    config["fractions"] = [1.0]
    config["data"]["val_size"] = 50
    config["train"].update({"threads": 1, "num_evals": 3, "first_eval_fraction": 0.1, **train})
    arch = config["archs"][ARCH]
    arch.update({"widths": list(widths), "base_width": 8, "batch_size": 8})
    arch["hparams"]["num_layers"] = 2
    arch["resources"] = {"runtime": runtime, "mem_mb": 1000}
    arch["train"] = {}  # the demo's per-arch passes would override the test's train section
    arch.pop("fractions", None)  # and the demo's per-arch fractions the study's [1.0]
    arch.pop("seeds", None)  # one seed: the demo's second seeds name widths not here
    arch.pop("seed_widths", None)
    config["archs"] = {ARCH: arch}
    # the demo's experiments name families this study leaves out
    config["variants"] = variants or {}
    config["inherit_defaults"] = False  # a complete study: nothing merged under it
    config["kappa"]["num_molecules"] = 8
    # The CI node has 2 CPUs; a job asking for more is refused at submission.
    config["slurm"]["cpus_per_task"] = 1
    config["slurm"]["account"] = ACCOUNT
    config["slurm"]["cpu_jobs"] = {
        "on_slurm": cpu_jobs_on_slurm,
        "partition": CPU_PARTITION,
        "cpus_per_task": 1,
        "mem_mb": 1000,
        "runtime": 10,
    }
    if extra is not None:
        config["slurm"]["extra"] = extra
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake_cmd(tmp_path: Path, configfile: Path, *targets_and_options: str, kill_after: int):
    """`snakemake --profile slurm` run from the repository root, outputs in tmp_path.

    Wrapped in `timeout -s KILL`: a Snakemake waiting on a status query that never
    answers ignores SIGTERM.
    """
    return [
        "timeout", "-s", "KILL", str(kill_after),
        sys.executable, "-m", "snakemake", "--profile", "slurm",
        "--directory", str(tmp_path), "--configfile", str(configfile),
        *FAST_STATUS, "--slurm-keep-successful-logs", *targets_and_options,
    ]  # fmt: skip


def _job_record(job_id: str) -> dict[str, str]:
    """`scontrol show job -o` as a dict (SLURM's own record of the job)."""
    result = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, f"scontrol show job {job_id}: {result.stderr.strip()}"
    fields = {}
    for token in result.stdout.split():
        key, sep, value = token.partition("=")
        if sep:
            fields.setdefault(key, value)
    return fields


def _submissions(text: str) -> list[tuple[str, Path]]:
    """(SLURM job id, SLURM log path) of every job Snakemake submitted."""
    return [(job, Path(log)) for job, log in SUBMITTED.findall(text)]


def _rule_of(record: dict[str, str]) -> str:
    # the plugin puts the rule and wildcards into the job comment: rule_<rule>_wildcards_...
    return record.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]


def _is_train_job(record: dict[str, str]) -> bool:
    return record.get("Comment", "").startswith(f"rule_train_wildcards_{ARCH}_")


def _wait_for(predicate, timeout: float, what: str, process=None, output: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = output.read_text()[-3000:] if output else ""
            pytest.fail(f"snakemake exited ({process.returncode}) before {what}:\n{tail}")
        time.sleep(1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_profile_is_found_from_the_repo_root_and_shapes_training_jobs(tmp_path):
    """No SLURM needed: the dry run shows what the profile and the rule would submit."""
    extra = "--signal=TERM@120 --open-mode=append"
    configfile = _study_config(
        tmp_path, widths=[4], train={"epochs": 1, "max_steps": 5}, extra=extra
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", str(tmp_path / f"results/frontier/{ARCH}_flops.csv"),
         "--profile", "slurm", "-n", "--forceall",
         "--directory", str(tmp_path), "--configfile", str(configfile)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Using profile slurm" in output
    # a workflow profile would override the executor key by key, silently
    assert "workflow specific profile" not in output
    train = [line for line in output.splitlines() if "slurm_partition=" in line]
    assert len(train) == 1, output[-3000:]
    resources = dict(
        item.split("=", 1) for item in train[0].split("resources:", 1)[1].strip().split(", ")
    )
    assert resources["slurm_partition"] == PARTITION
    assert resources["gres"] == "gpu:1"
    assert int(resources["cpus_per_task"]) == 1
    # slurm_extra reaches sbatch verbatim through a shell: each option must stay one
    # shell word (quoted as a whole, "--a --b" is one unknown option and sbatch fails)
    assert shlex.split(resources["slurm_extra"]) == extra.split()


@pytest.mark.slurm
@pytest.mark.slow
def test_training_jobs_run_on_a100_with_one_gpu(slurm, tmp_path):
    configfile = _study_config(
        tmp_path, widths=[4, 8], train={"epochs": 1, "max_steps": 20}, cpu_jobs_on_slurm=True
    )
    target = tmp_path / f"results/frontier/{ARCH}_flops.csv"
    result = subprocess.run(
        _snakemake_cmd(tmp_path, configfile, str(target), kill_after=600),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert target.exists()

    records = {job: _job_record(job) for job, _ in _submissions(output)}
    train = {job: rec for job, rec in records.items() if _is_train_job(rec)}
    heavy = {job: rec for job, rec in records.items() if _rule_of(rec) in ("extract", "kappa")}
    # one SLURM job per training run, extraction and kappa on the CPU partition, nothing
    # else submitted (the light rules frontier, fit, tables, figures are local)
    assert len(train) == 2 and len(heavy) == 2 and len(records) == 4, records
    assert sorted(_rule_of(rec) for rec in heavy.values()) == ["extract", "kappa"]
    for job, record in train.items():
        assert record["JobState"] == "COMPLETED", (job, record)
        assert record["Partition"] == PARTITION, (job, record)
        assert record["Account"] == ACCOUNT, (job, record)
        # 22.05 writes gres:gpu:1, newer releases gres/gpu:1
        assert re.fullmatch(r"gres[:/]gpu:1", record.get("TresPerNode", "")), (job, record)
        assert record["NumCPUs"] == "1", (job, record)
    for job, record in heavy.items():
        assert record["JobState"] == "COMPLETED", (job, record)
        assert record["Partition"] == CPU_PARTITION, (job, record)
        assert record["Account"] == ACCOUNT, (job, record)
        assert "gpu" not in record.get("TresPerNode", ""), (job, record)
    for width in (4, 8):
        run = tmp_path / f"results/runs/{ARCH}/{width}/1/seed0"
        assert (run / "curve.csv").exists() and (run / "model.pt").exists()
        meta = yaml.safe_load((run / "meta.json").read_text())
        assert meta["device"], "meta.json records no device"


@pytest.mark.slurm
@pytest.mark.slow
def test_config_slurm_settings_reach_shared_and_variant_training_jobs(slurm, tmp_path):
    """Issue 17 item 1: the account, partition and time limit set once in the config reach
    the jobs of train_shared_<arch> and train_variant, not only those of rule `train`."""
    configfile = _study_config(
        tmp_path,
        widths=[4],
        train={"epochs": 1, "max_steps": 5, "shared_fraction_run": True},
        runtime=7,
        variants={"probe": {"arch": ARCH, "widths": [4], "train": {"shared_fraction_run": False}}},
    )
    targets = [
        tmp_path / f"results/runs/{ARCH}/4/1/seed0/curve.csv",
        tmp_path / f"results/variants/probe/{ARCH}/4/1/seed0/curve.csv",
    ]
    result = subprocess.run(
        _snakemake_cmd(tmp_path, configfile, *map(str, targets), kill_after=600),
        cwd=ROOT, capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    records = [_job_record(job) for job, _ in _submissions(output)]
    assert sorted(_rule_of(rec) for rec in records) == [f"train_shared_{ARCH}", "train_variant"]
    for record in records:
        assert record["Account"] == ACCOUNT, record
        assert record["Partition"] == PARTITION, record
        assert record["TimeLimit"] == "00:07:00", record
        assert re.fullmatch(r"gres[:/]gpu:1", record.get("TresPerNode", "")), record
    assert all(target.exists() for target in targets)


@pytest.mark.slurm
@pytest.mark.slow
def test_partition_slurm_refuses_fails_with_sbatch_message(slurm, tmp_path):
    """A value SLURM refuses ends the run with sbatch's own message, not a hang."""
    configfile = _study_config(tmp_path, widths=[4], train={"epochs": 1, "max_steps": 5})
    target = tmp_path / f"results/runs/{ARCH}/4/1/seed0/curve.csv"
    result = subprocess.run(
        _snakemake_cmd(
            tmp_path, configfile, str(target),
            "--config", "slurm={partition: no_such_partition}", "--retries", "0",
            kill_after=300,
        ),
        cwd=ROOT, capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode not in (0, -9, 137), output[-3000:]  # failed, not killed
    assert "SLURM sbatch failed" in output, output[-3000:]
    assert "invalid partition specified: no_such_partition" in output, output[-3000:]
    assert not _submissions(output)


def _start_long_training(tmp_path: Path, runtime: int, extra: str | None = None):
    """Start a one-job study whose training would last many minutes.

    The tests stop it once the resume is seen, so they do not depend on how fast this
    machine trains. Returns (process, its output file).
    """
    configfile = _study_config(
        tmp_path,
        widths=[4],
        train={"epochs": 20, "max_steps": 40000},
        runtime=runtime,
        extra=extra,
    )
    target = tmp_path / f"results/runs/{ARCH}/4/1/seed0/curve.csv"
    output = tmp_path / "snakemake.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            _snakemake_cmd(tmp_path, configfile, str(target), kill_after=900),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,  # _stop kills the whole group
        )
    return process, output


def _stop(process, output: Path) -> None:
    """Cancel this run's SLURM jobs, then kill its Snakemake (a process group of its own)."""
    jobs = [job for job, _ in _submissions(_read(output))]
    if jobs:
        subprocess.run(["scancel", *jobs], capture_output=True, timeout=20)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def _wait_submission(process, output: Path, index: int) -> tuple[str, Path]:
    """The (index+1)-th SLURM submission of this Snakemake: (job id, SLURM log)."""

    def submitted():
        subs = _submissions(_read(output))
        return subs[index] if len(subs) > index else None

    return _wait_for(submitted, 300, f"SLURM submission #{index + 1}", process, output)


def _logged_step(pattern: str, log: Path, process, output: Path, what: str) -> int:
    """Wait until the job log has ``pattern`` (one group: a step number); return it."""

    def found():
        match = re.search(pattern, _read(log))
        return match.group(1) if match else None

    return int(_wait_for(found, 300, what, process, output))


CHECKPOINTED = r"checkpoint at step (\d+)"
RESUMED = r"resumed from \S+ at step (\d+)"
STARTED = r"(\d+) steps of \d+ molecules"


@pytest.mark.slurm
@pytest.mark.slow
def test_time_limit_kill_reruns_and_resumes_from_checkpoint(slurm, tmp_path):
    """The training rule's runtime (1 min here) is the SLURM time limit. At the limit
    SLURM sends SIGTERM (SIGKILL KillWait later); the trainer checkpoints and exits, the
    job ends TIMEOUT, Snakemake resubmits it (profile `retries`) and the new job resumes
    from the step that was checkpointed.

    The config's early warning (``--signal=TERM@120``) is left out here: 120 s before a
    1 min limit is at once. It takes the same path 2 min before a real limit, with the
    job ending FAILED instead of TIMEOUT."""
    process, output = _start_long_training(tmp_path, runtime=1, extra="--open-mode=append")
    try:
        first, first_log = _wait_submission(process, output, 0)
        saved = _logged_step(CHECKPOINTED, first_log, process, output, "checkpoint at the limit")
        second, second_log = _wait_submission(process, output, 1)
        resumed = _logged_step(RESUMED, second_log, process, output, "resume in the rerun")
        first_record = _job_record(first)
    finally:
        _stop(process, output)
    assert first_record["JobState"] == "TIMEOUT", first_record
    assert "signal 15: checkpoint written" in _read(first_log)
    assert resumed == saved > 0
    assert second != first


@pytest.mark.slurm
@pytest.mark.slow
def test_requeued_job_restarts_and_resumes_from_checkpoint(slurm, tmp_path):
    """`scontrol requeue` does what preemption with PreemptMode=REQUEUE does: SIGTERM,
    then the job goes back to the queue under the same id (sbatch --requeue, from the
    profile). Snakemake keeps waiting for it, and the restarted job resumes."""
    process, output = _start_long_training(tmp_path, runtime=10)
    try:
        job, log = _wait_submission(process, output, 0)
        _logged_step(STARTED, log, process, output, f"training in job {job}")
        requeue = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=20
        )
        assert requeue.returncode == 0, requeue.stderr
        # SLURM truncates the job's log when it starts again: read the checkpoint first
        saved = _logged_step(CHECKPOINTED, log, process, output, "checkpoint on requeue")
        resumed = _logged_step(RESUMED, log, process, output, "resume after the restart")
        record = _job_record(job)
        still_one_submission = len(_submissions(_read(output))) == 1
    finally:
        _stop(process, output)
    assert record["Restarts"] == "1" and record["JobState"] == "RUNNING", record
    assert resumed == saved > 0
    # the requeue happened inside SLURM, not through a Snakemake resubmission
    assert still_one_submission
