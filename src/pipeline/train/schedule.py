"""The schedule of a training job: its batches, fraction boundaries and evaluation steps.

A pure function of the data sizes and the settings, built once per job; nothing here
draws random numbers or touches a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.data.loader import epoch_order
from pipeline.train.settings import TrainSettings


def segments(
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


def cut_batches(
    ordered: list[tuple[int, np.ndarray]], batch_size: int
) -> list[tuple[int, np.ndarray]]:
    """(epoch, molecule indices) of every optimizer step: segments cut into batches."""
    return [
        (epoch, indices[start : start + batch_size])
        for epoch, indices in ordered
        for start in range(0, len(indices), batch_size)
    ]


def evaluation_grid(first_eval_fraction: float, num_evals: int, total_atoms: float) -> np.ndarray:
    """Evaluation thresholds in atoms seen: a fixed log grid cut to [f T, T].

    The grid is 10^(k / p) atoms for integers k, with p = (num_evals - 1) / log10(1 / f)
    points per decade, so a run of T atoms gets about ``num_evals`` evaluations from
    f T on. The grid does not depend on T: a longer run of the same pass evaluates at
    the same points where the two overlap, which lets a shared pass be continued to a
    larger fraction with the curve a fresh pass would have (see :mod:`.continuation`).
    """
    if first_eval_fraction >= 1 or num_evals < 2:
        return np.array([float(total_atoms)])
    per_decade = (num_evals - 1) / math.log10(1 / first_eval_fraction)
    low = math.log10(first_eval_fraction * total_atoms) * per_decade
    high = math.log10(total_atoms) * per_decade
    k = np.arange(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1)
    return 10.0 ** (k / per_decade)


def evaluation_steps(
    cumulative_atoms: np.ndarray, last_step: int, settings: TrainSettings
) -> set[int]:
    """Steps (0-based, evaluated after the step) at which to evaluate, the last included.

    Every ``eval_every_steps`` optimizer steps when that is set, else at the thresholds
    of :func:`evaluation_grid` in atoms seen (from ``first_eval_fraction`` of the run's
    atoms on, about ``num_evals`` of them); a threshold falls on the first step that
    reaches it.
    """
    every = settings.eval_every_steps
    if every is not None:
        return set(range(every - 1, last_step + 1, every)) | {last_step}
    total = int(cumulative_atoms[last_step])
    thresholds = evaluation_grid(settings.first_eval_fraction, settings.num_evals, total)
    steps = np.searchsorted(cumulative_atoms[: last_step + 1], thresholds, side="left")
    return {int(s) for s in np.minimum(steps, last_step)} | {last_step}


@dataclass
class Schedule:
    """Every step of one job, in order.

    Attributes
    ----------
    fractions : list of float
        The job's training fractions, ascending.
    counts : list of int
        Molecules of each fraction, ceil(r M).
    batches : list of (epoch, int64 [B])
        Epoch and training-store rows of each optimizer step.
    cumulative_atoms, cumulative_molecules : int64 [S]
        Atoms and molecules seen after each step.
    fraction_last_step : dict[float, int]
        Index of the step that completes each fraction.
    eval_steps : dict[float, set[int]]
        Steps after which each fraction's curve has a row.
    """

    fractions: list[float]
    counts: list[int]
    batches: list[tuple[int, np.ndarray]]
    cumulative_atoms: np.ndarray
    cumulative_molecules: np.ndarray
    fraction_last_step: dict[float, int]
    eval_steps: dict[float, set[int]]

    @classmethod
    def build(
        cls,
        fractions: list[float],
        full_count: int,
        atoms_per_molecule: np.ndarray,
        batch_size: int,
        settings: TrainSettings,
    ) -> Schedule:
        """The schedule of a job over ``fractions`` of a training set of ``full_count``
        molecules (``atoms_per_molecule``: int [>= ceil(max(fractions) full_count)])."""
        fractions = sorted(fractions)
        counts = [math.ceil(r * full_count) for r in fractions]
        shared = settings.shared_fraction_run
        batches = cut_batches(segments(counts, settings.epochs, settings.seed, shared), batch_size)
        cumulative_atoms = np.cumsum([int(atoms_per_molecule[idx].sum()) for _, idx in batches])
        cumulative_molecules = np.cumsum([len(idx) for _, idx in batches])
        if shared:
            last = {
                r: int(np.searchsorted(cumulative_molecules, count, side="left"))
                for r, count in zip(fractions, counts, strict=True)
            }
        else:
            last = {fractions[0]: len(batches) - 1}
        if settings.max_steps is not None:
            last = {r: min(s, settings.max_steps - 1) for r, s in last.items()}
        eval_steps = {r: evaluation_steps(cumulative_atoms, s, settings) for r, s in last.items()}
        return cls(
            fractions, counts, batches, cumulative_atoms, cumulative_molecules, last, eval_steps
        )

    @property
    def last_step(self) -> int:
        """Index of the job's final step."""
        return max(self.fraction_last_step.values())

    @property
    def all_eval_steps(self) -> set[int]:
        """Steps after which any fraction evaluates."""
        return set().union(*self.eval_steps.values())
