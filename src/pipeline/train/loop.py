"""One training job: an (arch, width) model on one or several nested fractions.

The job reads the first ceil(r M) molecules of the shuffled training set, trains with
schedule-free AdamW on the loss of eq. 1 (plus, optionally, the symmetry loss of eq. 2),
evaluates on the fixed validation set at the points of a fixed log grid in atoms seen
(:func:`.schedule.evaluation_grid`, or every N optimizer steps), and writes per
fraction ``curve.csv``, ``meta.json`` and ``model.pt``. It checkpoints periodically and
on SIGTERM/SIGUSR1 (what SLURM sends before preemption or the time limit), then exits
with ``RESUME_EXIT_CODE``; run again, it resumes from the checkpoint to the same result.

With ``shared_fraction_run`` (one pass only), the job trains once over the largest
fraction, cutting batches at every fraction boundary: schedule-free optimisation has
no horizon-dependent schedule and fractions are prefixes, so the state at the boundary
of fraction r is the final state of a separate fraction-r run. A finished shared pass
keeps its end state, and a later job that adds a larger fraction continues it instead of
retraining (:mod:`.continuation`).

The job is split as fairchem splits a runner from a unit: :mod:`.settings` (the config
sections), :mod:`.schedule` (batches, fraction boundaries, evaluation steps),
:mod:`.step` (the training/evaluation step), :mod:`.state` (everything a restart
carries), :mod:`.outputs` (the run folders); :class:`Trainer` here runs the loop.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from pipeline import models
from pipeline.config import mup_learning_rate
from pipeline.data.stats import load_stats
from pipeline.data.store import MoleculeStore
from pipeline.provenance import code_version, device_name, library_versions, resolve_device
from pipeline.train.checkpoint import CorruptCheckpointError, fingerprint
from pipeline.train.continuation import load_pass_end, pass_dir, save_pass_end
from pipeline.train.optim import make_optimizer
from pipeline.train.outputs import CURVE_COLUMNS, RunWriter, fraction_curve, model_payload
from pipeline.train.schedule import Schedule
from pipeline.train.settings import (
    AUGMENT_CHOICES,
    RUNTIME_KEYS,
    ArchSettings,
    TrainSettings,
)
from pipeline.train.signals import RESUME_EXIT_CODE, Preempted, SignalFlag
from pipeline.train.state import TrainState
from pipeline.train.step import NonFiniteError, TrainStep, normalised_energy

logger = logging.getLogger(__name__)

__all__ = [
    "AUGMENT_CHOICES",
    "CURVE_COLUMNS",
    "RESUME_EXIT_CODE",
    "RUNTIME_KEYS",
    "ArchSettings",
    "NonFiniteError",
    "Preempted",
    "Trainer",
    "TrainSettings",
    "normalised_energy",
    "train_job",
]


class Trainer:
    """Trains one model and writes the run folders of one or more fractions.

    Parameters
    ----------
    train_h5, val_h5, stats_json : path
        Outputs of the extract stage.
    arch : ArchSettings
        Model family and its learning rate, base width, batch size and hyperparameters.
    width : int
        Width of this model (eSEN: channels C).
    fraction_dirs : dict[float, path]
        Run folder of each training fraction r in (0, 1]. More than one requires
        ``settings.shared_fraction_run``.
    settings : TrainSettings
        The ``train`` config section.
    variant : str
        Name of the config variant this job belongs to (recorded in meta.json).
        ``"base"`` for the main study.
    """

    def __init__(
        self,
        train_h5,
        val_h5,
        stats_json,
        arch: ArchSettings,
        width: int,
        fraction_dirs: dict[float, str | Path],
        settings: TrainSettings,
        variant: str = "base",
    ):
        if len(fraction_dirs) > 1 and not settings.shared_fraction_run:
            raise ValueError("several fractions in one job need train.shared_fraction_run")
        if settings.shared_fraction_run and settings.epochs != 1:
            raise ValueError("train.shared_fraction_run needs train.epochs 1")
        self.arch, self.width, self.settings, self.variant = arch, width, settings, variant
        self.fractions = sorted(fraction_dirs)
        self.fraction_dirs = {r: Path(fraction_dirs[r]) for r in self.fractions}
        # Checkpoints and finished fractions wait in a work folder that is no declared
        # output, so Snakemake does not delete them when a preempted job fails.
        self.work_dir = self.fraction_dirs[self.fractions[-1]] / ".work"
        self.resume_path = self.work_dir / "resume.pt"
        self.writer = RunWriter(self.fraction_dirs, self.work_dir)

        torch.set_num_threads(settings.threads)
        self.device = resolve_device(settings.device)
        # TF32 only when asked (cuDNN allows it by default): fp32 means float32 matmuls
        torch.backends.cuda.matmul.allow_tf32 = settings.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = settings.precision == "tf32"
        self.stats = load_stats(stats_json)
        self.store = MoleculeStore.from_h5(train_h5, fraction=self.fractions[-1])
        with h5py.File(train_h5, "r") as handle:
            full_count = int(handle["energy"].shape[0])
        self.schedule = Schedule.build(
            self.fractions, full_count, self.store.atoms_per_molecule, arch.batch_size, settings
        )

        torch.manual_seed(settings.seed)
        self.model = models.build(arch.name, width=width, **arch.hparams).to(self.device)
        self.n_params = models.num_params(self.model)
        self.lr = mup_learning_rate(arch.lr, arch.base_width, width, arch.lr_max)
        optimizer = make_optimizer(
            self.model, self.lr, settings.warmup_steps, settings.weight_decay
        )
        self.state = TrainState(self.model, optimizer, torch.Generator().manual_seed(settings.seed))
        self.unit = TrainStep(
            self.state,
            store=self.store,
            val_store=MoleculeStore.from_h5(val_h5),
            stats=self.stats,
            settings=settings,
            batch_size=arch.batch_size,
            device=self.device,
            label=f"{arch.name} width {width}",
            cache_graphs=settings.epochs > 1,
        )
        self.spec = {
            "arch": arch.name,
            "width": width,
            "hparams": arch.hparams,
            "lr": self.lr,
            "batch_size": arch.batch_size,
            "fractions": self.fractions,
            "counts": self.schedule.counts,
            "settings": settings.trajectory(),
            "train_h5_molecules": full_count,
        }
        self.fingerprint = fingerprint(self.spec)
        # Build the next step's batch (gather + radius graph) in a background thread while
        # a step runs; no effect on the result. On by default on CUDA, where the host
        # otherwise waits for the device; off on CPU, where the benchmark measured no net
        # gain with the thread competing for the cores (benchmarks/bench_train.py).
        self.prefetch = self.device.type == "cuda"
        # a shared pass keeps its end state here, to be continued to a larger fraction
        self.pass_dir = pass_dir(self.fraction_dirs, settings.seed)
        self.saved_models: dict[float, dict] = {}  # model.pt of fractions of a saved pass

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.state.optimizer

    def run_id(self, fraction: float) -> str:
        """Name of the training pass that writes ``fraction``'s folder (meta.json).

        Every fraction of one shared-fraction pass has the same id,
        ``{variant}/{arch}/w{width}/seed{seed}``; a separate run's id names its fraction,
        ``{variant}/{arch}/w{width}/f{fraction}/seed{seed}``.
        """
        head = f"{self.variant}/{self.arch.name}/w{self.width}"
        if self.settings.shared_fraction_run:
            return f"{head}/seed{self.settings.seed}"
        return f"{head}/f{fraction:g}/seed{self.settings.seed}"

    # -- start ------------------------------------------------------------------------------
    def _resume(self) -> bool:
        """Restore the resume checkpoint when there is one; True when resumed."""
        if not self.resume_path.exists():
            return False
        try:
            self.state.load_state(self.resume_path, self.fingerprint)
        except CorruptCheckpointError as error:
            if not self.settings.restart_corrupt_checkpoint:
                raise
            aside = self.resume_path.with_name(self.resume_path.name + ".corrupt")
            self.resume_path.replace(aside)
            logger.warning("%s; moved to %s, starting fresh as asked", error, aside)
            return False
        logger.info("resumed from %s at step %d", self.resume_path, self.state.step)
        return True

    def _continue(self) -> bool:
        """Restore the saved end state of this pass when this job extends it (shared runs);
        True when continued. Earlier fractions are rewritten from the saved rows and
        models once the run starts."""
        if not self.settings.shared_fraction_run:
            return False
        stored = load_pass_end(self.pass_dir, self.spec)
        if stored is None:
            return False
        resume_at, saved = stored["step"], stored["fraction_models"]
        rows = {row["step"] for row in stored["rows"]}
        for r, last in self.schedule.fraction_last_step.items():
            needed = {s + 1 for s in self.schedule.eval_steps[r] if s < resume_at}
            if not needed <= rows or (last < resume_at - 1 and r not in saved):
                logger.info("saved pass lacks fraction %g's evaluations; training from scratch", r)
                return False
        self.state.load_state_dict(stored)
        self.state.written = set()
        self.saved_models = saved
        return True

    def checkpoint(self) -> None:
        self.state.save_state(self.resume_path, self.fingerprint, self.spec)
        logger.info("checkpoint at step %d: %s", self.state.step, self.resume_path)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Train to the last fraction's end, writing each fraction's outputs on the way."""
        state, schedule = self.state, self.schedule
        first_indices = schedule.batches[0][1]
        if not self._resume() and not self._continue():
            self.unit.prepare_model(first_indices)
        self.wall_start = time.time()
        last_step = schedule.last_step
        all_eval_steps = schedule.all_eval_steps
        self.forward_flops = self.unit.forward_flops(first_indices)
        for r, step in schedule.fraction_last_step.items():  # reached by a continued pass
            if step < state.step and r not in state.written:
                self._write_fraction(r, self.saved_models.get(r))
        logger.info(
            "%s width %d: %d parameters, lr %.3g, %d steps of %d molecules on %s",
            self.arch.name,
            self.width,
            self.n_params,
            self.lr,
            last_step + 1,
            self.arch.batch_size,
            device_name(self.device),
        )
        progress = tqdm(
            total=last_step + 1,
            initial=state.step,
            disable=not sys.stderr.isatty(),
            desc=f"{self.arch.name} w={self.width}",
            unit="step",
        )
        last_checkpoint = time.monotonic()
        # One thread builds the next step's batch (gather + radius graph) while this step
        # runs; waiting for it counts as data time.
        pool = ThreadPoolExecutor(1, thread_name_prefix="batches") if self.prefetch else None

        def submit(step: int) -> Future | None:
            if pool is None or step > last_step:
                return None
            return pool.submit(self.unit.load, schedule.batches[step][1])

        loop_start = time.perf_counter()
        try:
            with SignalFlag() as flag:
                pending = submit(state.step)
                while state.step <= last_step:
                    loaded, pending = pending, submit(state.step + 1)
                    epoch, indices = schedule.batches[state.step]
                    self._sync()
                    start = time.perf_counter()
                    losses = self.unit.train_step(epoch, indices, loaded)
                    self._sync()
                    state.train_seconds += time.perf_counter() - start
                    if losses is not None:
                        state.record_losses(*losses)
                    if state.step in all_eval_steps:
                        self._evaluate_row(epoch)
                    for r, step in schedule.fraction_last_step.items():
                        if step == state.step and r not in state.written:
                            self._write_fraction(r)
                    state.step += 1
                    progress.update(1)
                    if losses is not None and not progress.disable:
                        progress.set_postfix(
                            loss=f"{losses[0]:.4f}",
                            atoms_per_s=f"{self._atoms_per_second():.0f}",
                        )
                    if flag.received is not None:
                        self.checkpoint()
                        logger.warning("signal %d: checkpoint written, exiting", flag.received)
                        raise Preempted()
                    if time.monotonic() - last_checkpoint > self.settings.checkpoint_every_seconds:
                        self.checkpoint()
                        last_checkpoint = time.monotonic()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            # wall time of the training loop in this session (steps, evaluations, writing
            # outputs, bookkeeping), for the benchmark's overhead accounting
            self.loop_seconds = time.perf_counter() - loop_start
        progress.close()
        if self.settings.shared_fraction_run:
            staged = {r: self.writer.staging(r) / "model.pt" for r in self.fractions}
            save_pass_end(self.pass_dir, state.state_dict(), self.spec, staged)
        self.writer.publish()

    def _atoms_per_second(self) -> float:
        """Training throughput so far: atoms seen per second of training-step time."""
        cumulative = self.schedule.cumulative_atoms
        seen = int(cumulative[min(self.state.step, len(cumulative) - 1)])
        return seen / self.state.train_seconds if self.state.train_seconds > 0 else 0.0

    def _evaluate_row(self, epoch: int) -> None:
        state, schedule = self.state, self.schedule
        start = time.perf_counter()
        metrics = self.unit.evaluate()
        self._sync()
        duration = time.perf_counter() - start
        state.eval_seconds += duration
        row = {
            "step": state.step + 1,
            "epoch": epoch,
            "molecules_seen": int(schedule.cumulative_molecules[state.step]),
            "atoms_seen": int(schedule.cumulative_atoms[state.step]),
            "train_seconds": state.train_seconds,
            "eval_seconds": state.eval_seconds,
            "eval_duration": duration,
            **metrics,
            "train_loss": float(np.mean(state.loss_window)) if state.loss_window else float("nan"),
        }
        if self.settings.symmetry_loss_rotations:
            window = state.symmetry_window
            row["train_symmetry_loss"] = float(np.mean(window)) if window else float("nan")
        state.rows.append(row)
        logger.info(
            "step %d atoms %d: val_loss %.5f (energy %.2f meV/atom, forces %.1f meV/A), "
            "train_loss %.5f, %.0f atoms/s",
            row["step"],
            row["atoms_seen"],
            row["val_loss"],
            row["val_energy_mae_mev_per_atom"],
            row["val_force_mae_mev_per_angstrom"],
            row["train_loss"],
            self._atoms_per_second(),
        )

    # -- outputs ----------------------------------------------------------------------------
    def _meta(self, fraction: float, curve) -> dict:
        """meta.json of ``fraction``, whose curve is ``curve``."""
        settings, schedule, state = self.settings, self.schedule, self.state
        last = schedule.fraction_last_step[fraction]
        skipped = [s for s in state.nonfinite if s["step"] <= last]
        return {
            "arch": self.arch.name,
            "width": self.width,
            "fraction": fraction,
            "variant": self.variant,
            "seed": settings.seed,
            "run_id": self.run_id(fraction),
            "forces": getattr(self.model, "forces", "direct"),
            "precision": settings.precision,
            "n_params": self.n_params,
            "hparams": self.arch.hparams,
            "lr": self.lr,
            "lr_base": self.arch.lr,
            "lr_max": self.arch.lr_max,
            "base_width": self.arch.base_width,
            "batch_size": self.arch.batch_size,
            "train": dict(vars(settings)),
            "train_molecules": schedule.counts[self.fractions.index(fraction)],
            "steps": last + 1,
            "atoms_seen": int(schedule.cumulative_atoms[last]),
            "molecules_seen": int(schedule.cumulative_molecules[last]),
            "shared_run_fractions": self.fractions if len(self.fractions) > 1 else None,
            "cutoff_angstrom": self.model.cutoff,
            "max_neighbors": self.model.max_neighbors,
            "energy_std_eV": self.stats["energy_std_eV"],
            **self.forward_flops,
            "forward_passes_per_step": settings.forward_passes_per_step,
            "symmetry_loss_rotations": settings.symmetry_loss_rotations,
            "symmetry_loss_weight": settings.symmetry_loss_weight,
            "kappa_source": "measured by the kappa rule (results/kappa/<arch>.csv)",
            "nonfinite_steps": len(skipped),
            "nonfinite_records": skipped,
            "train_seconds": curve["train_seconds"].iloc[-1] if len(curve) else 0.0,
            "eval_seconds": curve["eval_seconds"].iloc[-1] if len(curve) else 0.0,
            "data_seconds": state.data_seconds,
            "wall_seconds_this_session": time.time() - self.wall_start,
            "device": device_name(self.device),
            "code_version": code_version(),
            "versions": library_versions(),
            "fingerprint": self.fingerprint,
        }

    def _write_fraction(self, fraction: float, payload: dict | None = None) -> None:
        """Stage curve.csv, model.pt and meta.json of one fraction (meta last); model.pt
        is ``payload`` when given (a continued pass's saved fraction), else the model's
        averaged weights now."""
        steps = {s + 1 for s in self.schedule.eval_steps[fraction]}
        curve = fraction_curve(self.state.rows, steps, bool(self.settings.symmetry_loss_rotations))
        if payload is None:
            payload = model_payload(
                self.model, self.optimizer, self.arch, self.width, self.settings
            )
        self.writer.stage(fraction, curve, payload, self._meta(fraction, curve))
        self.state.written.add(fraction)


def train_job(
    train_h5,
    val_h5,
    stats_json,
    arch_name: str,
    arch_section: dict,
    width: int,
    fraction_dirs: dict[float, str | Path],
    train_section: dict,
    variant: str = "base",
    seed: int | None = None,
    runtime: dict | None = None,
) -> None:
    """Entry point of the ``train`` rule: build the trainer from config sections and run.

    Parameters
    ----------
    variant : str
        The config variant (results/variants/{variant}/...), recorded in meta.json;
        ``"base"`` for the main study.
    seed : int, optional
        The run's seed (the study's ``seeds`` axis); overrides ``train_section['seed']``.
    runtime : dict, optional
        How the job runs, not what it computes: ``device``, ``threads``,
        ``checkpoint_every_seconds`` (None values are ignored). Overrides the same keys
        of ``train_section``, where they are still accepted.
    """
    section = dict(train_section)
    unknown = set(runtime or {}) - set(RUNTIME_KEYS)
    if unknown:
        raise ValueError(f"unknown runtime settings {sorted(unknown)}; expected {RUNTIME_KEYS}")
    section.update({k: v for k, v in (runtime or {}).items() if v is not None})
    if seed is not None:
        section["seed"] = int(seed)
    trainer = Trainer(
        train_h5,
        val_h5,
        stats_json,
        ArchSettings.from_config(arch_name, arch_section),
        int(width),
        fraction_dirs,
        TrainSettings.from_config(section),
        variant=variant,
    )
    trainer.run()
