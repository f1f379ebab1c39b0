"""One training job: an (arch, width) model on one or several nested fractions.

The job reads the first ceil(r M) molecules of the shuffled training set, trains with
schedule-free AdamW on the loss of eq. 1 (plus, optionally, the symmetry loss of eq. 2),
evaluates on the fixed validation set at log-spaced points in atoms seen (or every N
optimizer steps), and writes per fraction ``curve.csv``, ``meta.json`` and ``model.pt``.
It checkpoints periodically and on SIGTERM/SIGUSR1 (what SLURM sends before preemption
or the time limit), then exits with ``RESUME_EXIT_CODE``; run again, it resumes from the
checkpoint to the same result.

With ``shared_fraction_run`` (one pass only), the job trains once over the largest
fraction, cutting batches at every fraction boundary: schedule-free optimisation has
no horizon-dependent schedule and fractions are prefixes, so the state at the boundary
of fraction r is the final state of a separate fraction-r run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline import models
from pipeline.data.loader import epoch_order, make_batch, validation_batches
from pipeline.data.stats import load_stats, referenced_energy
from pipeline.data.store import MoleculeStore
from pipeline.provenance import code_version, device_name, library_versions, resolve_device
from pipeline.train.augment import (
    centres_of_mass,
    random_rotations,
    replicate_batch,
    rotate_about_centres,
    rotate_per_molecule,
)
from pipeline.train.checkpoint import (
    CorruptCheckpointError,
    fingerprint,
    load_checkpoint,
    save_atomic,
)
from pipeline.train.flops import count_forward_flops
from pipeline.train.loss import combine, loss_terms, validation_metrics
from pipeline.train.optim import evaluation_weights, make_optimizer, mup_learning_rate

logger = logging.getLogger(__name__)

RESUME_EXIT_CODE = 75  # EX_TEMPFAIL: stopped by a signal, checkpoint written, run again
CURVE_COLUMNS = [
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
    "val_force_mae_mev_per_angstrom",
    "train_loss",
]


class NonFiniteError(RuntimeError):
    """Too many steps with a non-finite loss or gradient."""


class Preempted(SystemExit):
    """Raised after the checkpoint is written on SIGTERM/SIGUSR1."""

    def __init__(self):
        super().__init__(RESUME_EXIT_CODE)


AUGMENT_CHOICES = ("none", "always", "after_first_epoch")
# settings of how a job runs, not of what it computes (contract 6: not rerun triggers)
RUNTIME_KEYS = ("device", "threads", "checkpoint_every_seconds")


@dataclass
class TrainSettings:
    """The ``train`` section of the config (see workflow/schemas/config.schema.yaml).

    The paper's training variants are switches here: ``augment`` (random rotations of
    every training sample, section 4.5), ``epochs`` with ``eval_every_steps`` (multi-epoch
    training on a small fraction, evaluated every N optimizer steps), and
    ``symmetry_loss_rotations`` / ``symmetry_loss_weight`` (M and lambda of the symmetry
    loss of eq. 2, section 4.4). Rotations act about each molecule's centre of mass.
    """

    device: str = "auto"
    threads: int = 1
    seed: int = 0
    epochs: int = 1
    augment: str = "none"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    energy_weight: float = 1.0
    force_weight: float = 1.0
    num_evals: int = 16
    first_eval_fraction: float = 0.02
    shared_fraction_run: bool = False
    max_nonfinite_steps: int = 20
    restart_corrupt_checkpoint: bool = False
    checkpoint_every_seconds: float = 600.0
    max_steps: int | None = None
    symmetry_loss_rotations: int = 0
    symmetry_loss_weight: float = 1.0
    eval_every_steps: int | None = None

    def __post_init__(self):
        if self.augment not in AUGMENT_CHOICES:
            raise ValueError(
                f"train.augment must be one of {AUGMENT_CHOICES}, got {self.augment!r}"
            )
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.symmetry_loss_rotations < 0:
            raise ValueError(
                f"train.symmetry_loss_rotations must be >= 0 (0 = off), got "
                f"{self.symmetry_loss_rotations}"
            )
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise ValueError(
                f"train.eval_every_steps must be >= 1 or null, got {self.eval_every_steps}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"train.max_steps must be >= 1 or null, got {self.max_steps}")

    @property
    def forward_passes_per_step(self) -> int:
        """Forward (and backward) passes over a batch per optimizer step: 1 + M."""
        return 1 + self.symmetry_loss_rotations

    @classmethod
    def from_config(cls, section: dict) -> TrainSettings:
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"unknown train settings: {sorted(unknown)}")
        return cls(**section)


@dataclass
class ArchSettings:
    """One ``archs.<name>`` section of the config, without its width ladder."""

    name: str
    base_width: int
    lr: float
    batch_size: int
    hparams: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, section: dict) -> ArchSettings:
        return cls(
            name=name,
            base_width=section["base_width"],
            lr=section["lr"],
            batch_size=section["batch_size"],
            hparams=dict(section.get("hparams", {})),
        )


class _SignalFlag:
    """Remembers SIGTERM/SIGUSR1 so the loop can checkpoint at the next step boundary."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _segments(
    counts: list[int], epochs: int, seed: int, shared: bool
) -> list[tuple[int, np.ndarray]]:
    """(epoch, molecule indices) in training order.

    Per-fraction runs: ``epochs`` passes over the first ``counts[-1]`` molecules. Shared
    runs: one pass, split at every fraction boundary so that no batch crosses one.
    """
    if shared:
        bounds = [0, *counts]
        return [
            (0, np.arange(lo, hi))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
            if hi > lo
        ]
    return [(epoch, epoch_order(counts[-1], epoch, seed)) for epoch in range(epochs)]


def _batches(segments, batch_size: int) -> list[tuple[int, np.ndarray]]:
    return [
        (epoch, indices[start : start + batch_size])
        for epoch, indices in segments
        for start in range(0, len(indices), batch_size)
    ]


def _eval_steps(cumulative_atoms: np.ndarray, last_step: int, settings: TrainSettings) -> set[int]:
    """Steps (0-based, evaluated after the step) at which to evaluate, the last included.

    Every ``eval_every_steps`` optimizer steps when that is set, else at
    ``num_evals`` log-spaced thresholds in atoms seen.
    """
    every = settings.eval_every_steps
    if every is not None:
        return set(range(every - 1, last_step + 1, every)) | {last_step}
    total = cumulative_atoms[last_step]
    thresholds = np.geomspace(settings.first_eval_fraction * total, total, settings.num_evals)
    steps = np.searchsorted(cumulative_atoms[: last_step + 1], thresholds, side="left")
    return {int(s) for s in np.minimum(steps, last_step)} | {last_step}


def normalised_energy(store: MoleculeStore, stats: dict) -> np.ndarray:
    """Energy targets e' = (e - sum_i ref[z_i] - mu) / sigma per molecule: float64 [M].

    ``stats`` is the extract stage's stats.json (per-element references, mu and sigma
    in eV); e' is dimensionless.
    """
    referenced = referenced_energy(store.energy, store.atomic_numbers, store.ptr, stats)
    return (referenced - stats["energy_mean_eV"]) / stats["energy_std_eV"]


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
        self.arch, self.width, self.settings = arch, width, settings
        self.variant = variant
        self.fractions = sorted(fraction_dirs)
        self.fraction_dirs = {r: Path(fraction_dirs[r]) for r in self.fractions}
        # Checkpoints and finished fractions wait in a work folder that is no declared
        # output, so Snakemake does not delete them when a preempted job fails; outputs
        # move to their run folders when the whole job is done.
        self.work_dir = self.fraction_dirs[self.fractions[-1]] / ".work"
        self.resume_path = self.work_dir / "resume.pt"

        torch.set_num_threads(settings.threads)
        self.device = resolve_device(settings.device)
        self.stats = load_stats(stats_json)
        self.store = MoleculeStore.from_h5(train_h5, fraction=self.fractions[-1])
        self.val_store = MoleculeStore.from_h5(val_h5)
        with h5py.File(train_h5, "r") as handle:
            full_count = int(handle["energy"].shape[0])
        self.counts = [math.ceil(r * full_count) for r in self.fractions]
        self.energy_target = normalised_energy(self.store, self.stats)
        self.val_energy_target = normalised_energy(self.val_store, self.stats)

        torch.manual_seed(settings.seed)
        self.model = models.build(arch.name, width=width, **arch.hparams).to(self.device)
        self.n_params = models.num_params(self.model)
        self.lr = mup_learning_rate(arch.lr, arch.base_width, width)
        self.optimizer = make_optimizer(
            self.model, self.lr, settings.warmup_steps, settings.weight_decay
        )
        self.generator = torch.Generator().manual_seed(settings.seed)

        segments = _segments(
            self.counts, settings.epochs, settings.seed, settings.shared_fraction_run
        )
        self.batches = _batches(segments, arch.batch_size)
        atoms = self.store.atoms_per_molecule
        self.cumulative_atoms = np.cumsum([int(atoms[idx].sum()) for _, idx in self.batches])
        self.cumulative_molecules = np.cumsum([len(idx) for _, idx in self.batches])
        self.fraction_last_step = self._fraction_last_steps()
        if settings.max_steps is not None:
            cap = settings.max_steps - 1
            self.fraction_last_step = {r: min(s, cap) for r, s in self.fraction_last_step.items()}
        self.eval_steps = {
            r: _eval_steps(self.cumulative_atoms, last, settings)
            for r, last in self.fraction_last_step.items()
        }
        self.val_batches = validation_batches(
            self.val_store, arch.batch_size, self.model.cutoff, self.model.max_neighbors
        )
        self.spec = {
            "arch": arch.name,
            "width": width,
            "hparams": arch.hparams,
            "lr": self.lr,
            "batch_size": arch.batch_size,
            "fractions": self.fractions,
            "counts": self.counts,
            "settings": {
                k: v
                for k, v in vars(settings).items()
                if k
                not in (
                    "device",
                    "threads",
                    "checkpoint_every_seconds",
                    "restart_corrupt_checkpoint",
                )
            },
            "train_h5_molecules": full_count,
        }
        self.fingerprint = fingerprint(self.spec)
        # Build the next step's batch (gather + radius graph) in a background thread while
        # a step runs; no effect on the result. On by default on CUDA, where the host
        # otherwise waits for the device; off on CPU, where the benchmark measured no net
        # gain with the thread competing for the cores (benchmarks/bench_train.py).
        self.prefetch = self.device.type == "cuda"
        # Training molecules' radius graphs, kept after their first use when molecules
        # repeat (several epochs): rotations do not change a graph. Not checkpointed (a
        # pure function of the data). int16 local indices: 2 x 2 bytes per edge.
        self.graph_cache: dict[int, np.ndarray] | None = {} if settings.epochs > 1 else None
        largest = int(self.store.atoms_per_molecule.max(initial=0))
        self._graph_cache_dtype = np.int16 if largest < 2**15 else np.int32

    # -- data -------------------------------------------------------------------------
    def _fraction_last_steps(self) -> dict[float, int]:
        """Index of the step that completes each fraction."""
        if not self.settings.shared_fraction_run:
            return {self.fractions[0]: len(self.batches) - 1}
        return {
            r: int(np.searchsorted(self.cumulative_molecules, count, side="left"))
            for r, count in zip(self.fractions, self.counts, strict=True)
        }

    @property
    def _graph_neighbors(self) -> int:
        """Neighbours per atom of the training graphs: 0 (no graph is built) for a model
        that declares ``uses_edges = False`` (e.g. one with global attention)."""
        return self.model.max_neighbors if getattr(self.model, "uses_edges", True) else 0

    def _load(self, step: int):
        """Gather and radius graph of step ``step``'s molecules (in the prefetch thread).

        Deterministic and free of random draws, so prefetching cannot change a run.
        """
        _, indices = self.batches[step]
        return self._make_batch(indices)

    def _make_batch(self, indices: np.ndarray):
        """:func:`make_batch` of training molecules, reusing cached per-molecule graphs.

        The radius graph depends on a molecule's own (unrotated) positions only, and
        the batched graph is the per-molecule graphs in batch order, each shifted by
        its first atom: the cache gives the same edges as building them (tested).
        """
        cutoff, neighbors, cache = self.model.cutoff, self._graph_neighbors, self.graph_cache
        if cache is None or neighbors == 0:
            return make_batch(self.store, indices, cutoff, neighbors)
        counts = self.store.atoms_per_molecule[indices]
        first_atom = np.cumsum(counts) - counts
        if all(int(m) in cache for m in indices):
            batch = make_batch(self.store, indices, cutoff, 0)  # no graph
            pieces = [cache[int(m)] for m in indices]
            edges = np.concatenate(pieces, axis=1).astype(np.int64)
            edges += np.repeat(first_atom, [piece.shape[1] for piece in pieces])
            batch.edge_index = torch.from_numpy(edges)
            return batch
        batch = make_batch(self.store, indices, cutoff, neighbors)
        edges = batch.edge_index.numpy()
        centre_molecule = batch.batch.numpy()[edges[1]]  # sorted: edges grouped by molecule
        bounds = np.searchsorted(centre_molecule, np.arange(len(indices) + 1))
        for j, m in enumerate(indices):
            local = edges[:, bounds[j] : bounds[j + 1]] - first_atom[j]
            cache[int(m)] = local.astype(self._graph_cache_dtype)
        return batch

    def _batch(self, store, indices, energy_target, batch=None):
        if batch is None:
            batch = make_batch(store, indices, self.model.cutoff, self._graph_neighbors)
        batch = batch.to(self.device)
        dtype = next(self.model.parameters()).dtype
        sigma = self.stats["energy_std_eV"]
        targets = (
            torch.as_tensor(energy_target[indices], dtype=dtype, device=self.device),
            batch.forces.to(dtype) / sigma,
        )
        return batch, targets

    def _forward(self, batch, positions):
        return self.model(
            batch.atomic_numbers, positions, batch.edge_index, batch.batch, len(batch.n_atoms)
        )

    # -- evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation losses of eq. 1 with the schedule-free averaged weights."""
        energy_sum = force_sum = 0.0
        molecules = atoms = 0
        with evaluation_weights(self.model, self.optimizer):
            for batch in self.val_batches:
                batch = batch.to(self.device)
                dtype = next(self.model.parameters()).dtype
                indices = batch.molecule_index.cpu().numpy()
                energy_target = torch.as_tensor(
                    self.val_energy_target[indices], dtype=dtype, device=self.device
                )
                forces_target = batch.forces.to(dtype) / self.stats["energy_std_eV"]
                energy, forces = self._forward(batch, batch.positions.to(dtype))
                terms = loss_terms(energy, forces, energy_target, forces_target, batch.n_atoms)
                energy_sum += float(terms.energy_sum)
                force_sum += float(terms.force_sum)
                molecules += terms.num_molecules
                atoms += terms.num_atoms
        metrics = validation_metrics(
            energy_sum,
            force_sum,
            molecules,
            atoms,
            self.settings.energy_weight,
            self.settings.force_weight,
            self.stats["energy_std_eV"],
        )
        if not math.isfinite(metrics["val_loss"]):
            raise NonFiniteError(
                f"{self.arch.name} width {self.width}: validation loss is {metrics['val_loss']}"
            )
        return metrics

    # -- training ---------------------------------------------------------------------
    def _prepare(self, epoch: int, indices: np.ndarray, loaded: Future | None = None):
        """Model input and targets of one step: (batch, positions, energy, forces targets).

        With augmentation, each molecule is rotated about its centre of mass by a Haar
        rotation (targets rotated alike). With the symmetry loss, M more copies of the
        batch follow the first, each molecule rotated by its own Haar rotation per copy:
        the returned batch then holds 1 + M copies (copy k's molecules are rows
        k n .. (k+1) n - 1, atoms k A .. (k+1) A - 1). The radius graph of a rotated copy
        is the graph of the unrotated molecule (distances are rotation invariant).
        Rotations come from the trainer's generator (checkpointed), augmentation first.
        ``loaded`` is the prefetch thread's future of this step's batch (built here if None).
        """
        batch, (energy_target, forces_target) = self._batch(
            self.store,
            indices,
            self.energy_target,
            batch=loaded.result() if loaded is not None else self._make_batch(indices),
        )
        dtype = energy_target.dtype
        positions = batch.positions.to(dtype)
        n = len(indices)
        augment = self.settings.augment
        rotations_m = self.settings.symmetry_loss_rotations
        rotate = augment == "always" or (augment == "after_first_epoch" and epoch > 0)
        if rotate or rotations_m:
            centres = centres_of_mass(positions, batch.atomic_numbers, batch.batch, n)  # (n, 3)
        if rotate:
            rotations = random_rotations(n, self.generator, dtype, self.device)
            positions = rotate_about_centres(positions, rotations, centres, batch.batch)
            forces_target = rotate_per_molecule(forces_target, rotations, batch.batch)
        if rotations_m:
            full = replicate_batch(batch, 1 + rotations_m)
            tiled = full.batch[positions.shape[0] :] - n  # molecule among the M n copies
            rotations = random_rotations(rotations_m * n, self.generator, dtype, self.device)
            positions = torch.cat(
                [
                    positions,
                    rotate_about_centres(
                        positions.repeat(rotations_m, 1),
                        rotations,
                        centres.repeat(rotations_m, 1),
                        tiled,
                    ),
                ]
            )
            forces_target = torch.cat(
                [
                    forces_target,
                    rotate_per_molecule(forces_target.repeat(rotations_m, 1), rotations, tiled),
                ]
            )
            energy_target = energy_target.repeat(1 + rotations_m)
            batch = full
        return batch, positions, energy_target, forces_target

    def _train_step(self, epoch: int, indices: np.ndarray, loaded: Future | None = None):
        """One optimizer step.

        Returns
        -------
        (total, symmetry) : tuple of float, or None when the step was skipped
            The objective of the step (eq. 1, plus lambda times eq. 2 when the symmetry
            loss is on) and the unweighted symmetry loss (nan when off).
        """
        start = time.perf_counter()
        batch, positions, energy_target, forces_target = self._prepare(epoch, indices, loaded)
        self.data_seconds += time.perf_counter() - start
        self.optimizer.zero_grad(set_to_none=True)
        energy, forces = self._forward(batch, positions)
        n, atoms = len(indices), int(self.store.atoms_per_molecule[indices].sum())
        terms = loss_terms(
            energy[:n],
            forces[:atoms],
            energy_target[:n],
            forces_target[:atoms],
            batch.n_atoms[:n],
        )
        loss, _, _ = combine(terms, self.settings.energy_weight, self.settings.force_weight)
        symmetry = loss.new_tensor(float("nan"))
        if self.settings.symmetry_loss_rotations:
            sym_terms = loss_terms(
                energy[n:],
                forces[atoms:],
                energy_target[n:],
                forces_target[atoms:],
                batch.n_atoms[n:],
            )
            # the mean over the M copies of eq. 1: each copy has the same n and atoms
            symmetry, _, _ = combine(
                sym_terms, self.settings.energy_weight, self.settings.force_weight
            )
            loss = loss + self.settings.symmetry_loss_weight * symmetry
        loss.backward()
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads)
        # one host synchronisation per step: the loss and gradient checks together
        loss_value, symmetry_value, grad_value = torch.stack(
            [loss.detach(), symmetry.detach(), grad_norm.to(loss.dtype)]
        ).tolist()
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip(indices, f"loss {loss_value}")
        if not math.isfinite(grad_value):
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip(indices, f"gradient norm {grad_value}")
        self.optimizer.step()
        return loss_value, symmetry_value

    def _skip(self, indices: np.ndarray, what: str):
        self.nonfinite.append({"step": self.step, "what": what, "molecules": indices.tolist()})
        logger.warning(
            "step %d skipped: non-finite %s (training molecules %s)",
            self.step,
            what,
            indices.tolist(),
        )
        if len(self.nonfinite) > self.settings.max_nonfinite_steps:
            raise NonFiniteError(
                f"{self.arch.name} width {self.width}: {len(self.nonfinite)} non-finite steps, "
                f"more than train.max_nonfinite_steps={self.settings.max_nonfinite_steps}; "
                f"last: {what}"
            )
        return None

    def _state(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "spec": self.spec,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "rows": self.rows,
            "nonfinite": self.nonfinite,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "loss_window": self.loss_window,
            "symmetry_window": self.symmetry_window,
            "data_seconds": self.data_seconds,
            "written": sorted(self.written),
        }

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = state["step"]
        self.rows = state["rows"]
        self.nonfinite = state["nonfinite"]
        self.train_seconds = state["train_seconds"]
        self.eval_seconds = state["eval_seconds"]
        self.loss_window = state["loss_window"]
        self.symmetry_window = state["symmetry_window"]
        self.data_seconds = state["data_seconds"]
        self.written = set(state["written"])

    def checkpoint(self) -> None:
        save_atomic(self._state(), self.resume_path)
        logger.info("checkpoint at step %d: %s", self.step, self.resume_path)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self) -> None:
        """Train to the last fraction's end, writing each fraction's outputs on the way."""
        self.step, self.rows, self.nonfinite = 0, [], []
        self.train_seconds = self.eval_seconds = self.data_seconds = 0.0
        self.loss_window: list[float] = []
        self.symmetry_window: list[float] = []
        self.written: set[float] = set()
        resumed = False
        if self.resume_path.exists():
            try:
                self._restore(load_checkpoint(self.resume_path, self.fingerprint))
                logger.info("resumed from %s at step %d", self.resume_path, self.step)
                resumed = True
            except CorruptCheckpointError as error:
                if not self.settings.restart_corrupt_checkpoint:
                    raise
                aside = self.resume_path.with_name(self.resume_path.name + ".corrupt")
                self.resume_path.replace(aside)
                logger.warning("%s; moved to %s, starting fresh as asked", error, aside)
        if not resumed:
            self._prepare_model()
        self.wall_start = time.time()
        last_step = max(self.fraction_last_step.values())
        all_eval_steps = set().union(*self.eval_steps.values())
        self.forward_flops = self._measure_flops()
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
            initial=self.step,
            disable=not sys.stderr.isatty(),
            desc=f"{self.arch.name} w={self.width}",
            unit="step",
        )
        last_checkpoint = time.monotonic()
        # One thread builds the next step's batch (gather + radius graph) while this step
        # runs; waiting for it counts as data time.
        pool = ThreadPoolExecutor(1, thread_name_prefix="batches") if self.prefetch else None

        def submit(step: int) -> Future | None:
            return pool.submit(self._load, step) if pool and step <= last_step else None

        loop_start = time.perf_counter()
        try:
            with _SignalFlag() as flag:
                pending = submit(self.step)
                while self.step <= last_step:
                    loaded, pending = pending, submit(self.step + 1)
                    epoch, indices = self.batches[self.step]
                    self._sync()
                    start = time.perf_counter()
                    losses = self._train_step(epoch, indices, loaded)
                    self._sync()
                    self.train_seconds += time.perf_counter() - start
                    if losses is not None:
                        self.loss_window = (self.loss_window + [losses[0]])[-50:]
                        self.symmetry_window = (self.symmetry_window + [losses[1]])[-50:]
                    if self.step in all_eval_steps:
                        self._evaluate_row(epoch)
                    for r, step in self.fraction_last_step.items():
                        if step == self.step and r not in self.written:
                            self._write_fraction(r)
                    self.step += 1
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
        self._publish()

    def _publish(self) -> None:
        """Move every staged fraction's files to its run folder (meta.json last)."""
        for fraction in self.fractions:
            staged, out = self._staging(fraction), self.fraction_dirs[fraction]
            out.mkdir(parents=True, exist_ok=True)
            for name in ("curve.csv", "model.pt", "meta.json"):
                (staged / name).replace(out / name)
        shutil.rmtree(self.work_dir)

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

    def _prepare_model(self) -> None:
        """Call the model's ``prepare`` on the first training batch (fresh runs only).

        A model may fit data-dependent constants before training (GemNet-OC's scale
        factors); it keeps them in buffers, so checkpoints and model.pt carry them and
        a resumed run never calls this again.
        """
        prepare = getattr(self.model, "prepare", None)
        if prepare is None:
            return
        _, indices = self.batches[0]
        batch, _ = self._batch(self.store, indices, self.energy_target, self._make_batch(indices))
        dtype = next(self.model.parameters()).dtype
        prepare(
            batch.atomic_numbers,
            batch.positions.to(dtype),
            batch.edge_index,
            batch.batch,
            batch.num_molecules,
        )
        logger.info(
            "%s width %d: model.prepare done on the first batch", self.arch.name, self.width
        )

    def _staging(self, fraction: float) -> Path:
        return self.work_dir / f"fraction_{fraction:g}"

    def _atoms_per_second(self) -> float:
        """Training throughput so far: atoms seen per second of training-step time."""
        seen = int(self.cumulative_atoms[min(self.step, len(self.cumulative_atoms) - 1)])
        return seen / self.train_seconds if self.train_seconds > 0 else 0.0

    def _evaluate_row(self, epoch: int) -> None:
        start = time.perf_counter()
        metrics = self.evaluate()
        self._sync()
        duration = time.perf_counter() - start
        self.eval_seconds += duration
        row = {
            "step": self.step + 1,
            "epoch": epoch,
            "molecules_seen": int(self.cumulative_molecules[self.step]),
            "atoms_seen": int(self.cumulative_atoms[self.step]),
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "eval_duration": duration,
            **metrics,
            "train_loss": float(np.mean(self.loss_window)) if self.loss_window else float("nan"),
        }
        if self.settings.symmetry_loss_rotations:
            window = self.symmetry_window
            row["train_symmetry_loss"] = float(np.mean(window)) if window else float("nan")
        self.rows.append(row)
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

    def _measure_flops(self) -> dict:
        _, indices = self.batches[0]
        batch, _ = self._batch(self.store, indices, self.energy_target)
        dtype = next(self.model.parameters()).dtype
        inputs = (
            batch.atomic_numbers,
            batch.positions.to(dtype),
            batch.edge_index,
            batch.batch,
            len(batch.n_atoms),
        )
        flops = count_forward_flops(self.model, inputs)
        atoms = int(batch.atomic_numbers.shape[0])
        return {f"forward_flops_per_atom_{k}": v / atoms for k, v in flops.items()}

    def _write_fraction(self, fraction: float) -> None:
        """Write curve.csv, model.pt and meta.json of one fraction (meta last)."""
        out = self._staging(fraction)
        out.mkdir(parents=True, exist_ok=True)
        last = self.fraction_last_step[fraction]
        steps = {s + 1 for s in self.eval_steps[fraction]}
        rows = [dict(row) for row in self.rows if row["step"] in steps]
        # Evaluation time of this fraction's own schedule only, as a separate run counts it.
        own_eval = np.cumsum([row.pop("eval_duration") for row in rows])
        for row, seconds in zip(rows, own_eval, strict=True):
            row["eval_seconds"] = float(seconds)
        columns = CURVE_COLUMNS + (
            ["train_symmetry_loss"] if self.settings.symmetry_loss_rotations else []
        )
        curve = pd.DataFrame(rows, columns=columns)
        _write_csv_atomic(curve, out / "curve.csv")
        with evaluation_weights(self.model, self.optimizer):
            model_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        save_atomic(
            {
                "arch": self.arch.name,
                "width": self.width,
                "hparams": self.arch.hparams,
                "state_dict": model_state,
                "batch_size": self.arch.batch_size,
                "energy_weight": self.settings.energy_weight,
                "force_weight": self.settings.force_weight,
            },
            out / "model.pt",
        )
        meta = {
            "arch": self.arch.name,
            "width": self.width,
            "fraction": fraction,
            "variant": self.variant,
            "seed": self.settings.seed,
            "run_id": self.run_id(fraction),
            "forces": getattr(self.model, "forces", "direct"),
            "n_params": self.n_params,
            "hparams": self.arch.hparams,
            "lr": self.lr,
            "lr_base": self.arch.lr,
            "base_width": self.arch.base_width,
            "batch_size": self.arch.batch_size,
            "train": {k: v for k, v in vars(self.settings).items()},
            "train_molecules": self.counts[self.fractions.index(fraction)],
            "steps": last + 1,
            "atoms_seen": int(self.cumulative_atoms[last]),
            "molecules_seen": int(self.cumulative_molecules[last]),
            "shared_run_fractions": self.fractions if len(self.fractions) > 1 else None,
            "cutoff_angstrom": self.model.cutoff,
            "max_neighbors": self.model.max_neighbors,
            "energy_std_eV": self.stats["energy_std_eV"],
            **self.forward_flops,
            "forward_passes_per_step": self.settings.forward_passes_per_step,
            "symmetry_loss_rotations": self.settings.symmetry_loss_rotations,
            "symmetry_loss_weight": self.settings.symmetry_loss_weight,
            "kappa_source": "measured by the kappa rule (results/kappa/<arch>.csv)",
            "nonfinite_steps": len([s for s in self.nonfinite if s["step"] <= last]),
            "nonfinite_records": [s for s in self.nonfinite if s["step"] <= last],
            "train_seconds": curve["train_seconds"].iloc[-1] if len(curve) else 0.0,
            "eval_seconds": curve["eval_seconds"].iloc[-1] if len(curve) else 0.0,
            "data_seconds": self.data_seconds,
            "wall_seconds_this_session": time.time() - self.wall_start,
            "device": device_name(self.device),
            "code_version": code_version(),
            "versions": library_versions(),
            "fingerprint": self.fingerprint,
        }
        tmp = out / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=float))
        tmp.replace(out / "meta.json")
        self.written.add(fraction)


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


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
