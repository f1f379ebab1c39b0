"""Everything a training job must carry across a restart, in one checkpointable object.

A resumed run equals an uninterrupted one bit for bit because every value that the
remaining steps read passes through :class:`TrainState`: the model and optimizer
tensors, the rotation generator and torch's global RNG, the step counter, the curve
rows so far, the skipped steps and the timing counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.train.checkpoint import load_checkpoint, save_atomic

WINDOW = 50  # training-loss values averaged into a curve row's train_loss


@dataclass
class TrainState:
    """The mutable state of one training job.

    Attributes
    ----------
    model, optimizer, generator
        The module, its schedule-free optimizer and the generator of every rotation.
    step : int
        Index of the next optimizer step.
    rows : list of dict
        One curve row per evaluation so far (every fraction's evaluations together).
    nonfinite : list of dict
        Skipped steps: ``step``, ``what`` and the batch's training ``molecules``.
    train_seconds, eval_seconds, data_seconds : float
        Wall time of training steps, evaluations and batch preparation so far (s).
    loss_window, symmetry_window : list of float
        The last :data:`WINDOW` step losses (objective and unweighted symmetry loss).
    written : set of float
        Fractions whose outputs are staged.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    rows: list[dict] = field(default_factory=list)
    nonfinite: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    data_seconds: float = 0.0
    loss_window: list[float] = field(default_factory=list)
    symmetry_window: list[float] = field(default_factory=list)
    written: set[float] = field(default_factory=set)

    def record_losses(self, total: float, symmetry: float) -> None:
        """Append one step's losses to the running windows."""
        self.loss_window = (self.loss_window + [total])[-WINDOW:]
        self.symmetry_window = (self.symmetry_window + [symmetry])[-WINDOW:]

    def state_dict(self) -> dict:
        """Every value of the job's state (tensors by reference), torch's RNG included."""
        return {
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

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict` output (torch's global RNG included)."""
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

    def save_state(self, path: str | Path, fingerprint: str, spec: dict, **extra) -> None:
        """Write the state atomically with the job's ``fingerprint`` and ``spec``;
        ``extra`` entries are stored alongside."""
        save_atomic({"fingerprint": fingerprint, "spec": spec, **self.state_dict(), **extra}, path)

    def load_state(self, path: str | Path, fingerprint: str) -> dict:
        """Restore from a file of :meth:`save_state` whose fingerprint is ``fingerprint``
        (:class:`~pipeline.train.checkpoint.CheckpointError` otherwise); returns the
        whole stored dict."""
        stored = load_checkpoint(path, fingerprint)
        self.load_state_dict(stored)
        return stored
