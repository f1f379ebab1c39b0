"""Synthetic learning curves that follow eq. (5) exactly (plus noise), for tests and benchmarks.

Each run (N, fraction r) sees ``D_t`` atoms at its evaluations, up to
``r * d_max``; its validation loss is ``(E + A N**-alpha + B D_t**-beta) * exp(eps)``
with ``eps ~ Normal(0, noise)``. Wall-clock grows like N * D_t (plus an overhead),
so the hours frontier is a distorted copy of the FLOPs one, as in the paper.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def write_synthetic_runs(
    root: str | Path,
    arch: str = "synth",
    *,
    n_params: Sequence[int] = (20_000, 60_000, 200_000, 600_000, 2_000_000),
    fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.7, 1.0),
    d_max: float = 5e7,
    E: float = 0.0,
    A: float = 10**1.6,
    B: float = 10**2.7,
    alpha: float = 0.39,
    beta: float = 0.39,
    noise: float = 0.01,
    n_evals: int = 20,
    seed: int = 0,
) -> list[Path]:
    """Write ``root/{arch}/{N}/{fraction}/curve.csv`` and ``meta.json`` for a grid of runs.

    Parameters
    ----------
    root : path
        Output folder.
    arch : str
        Architecture name written to meta.json.
    n_params : sequence of int
        Model sizes N.
    fractions : sequence of float
        Data fractions r; a run sees ``r * d_max`` atoms.
    d_max : float
        Atoms of the full training set.
    E, A, B, alpha, beta : float
        Eq. (5) truth.
    noise : float
        Standard deviation of the log-normal noise on each loss.
    n_evals : int
        Evaluations per run (evenly spaced in atoms).
    seed : int
        Noise seed.

    Returns
    -------
    list of Path
        The run folders.
    """
    rng = np.random.default_rng(seed)
    dirs = []
    for n in n_params:
        for r in fractions:
            d_run = r * d_max
            atoms = np.linspace(d_run / n_evals, d_run, n_evals)
            loss = (E + A * n**-alpha + B * atoms**-beta) * np.exp(rng.normal(0, noise, n_evals))
            train_s = 1e-9 * n * atoms + 2e-5 * atoms  # compute-bound + per-atom overhead
            eval_s = np.cumsum(np.full(n_evals, 1e-4 * n**0.5))
            step = np.arange(1, n_evals + 1) * 100
            df = pd.DataFrame(
                {
                    "step": step,
                    "epoch": np.zeros(n_evals, dtype=int),
                    "molecules_seen": (atoms / 20).astype(np.int64),
                    "atoms_seen": atoms.astype(np.int64),
                    "train_seconds": train_s,
                    "eval_seconds": eval_s,
                    "val_loss": loss,
                    "val_energy_loss": 0.3 * loss,
                    "val_force_loss": 0.7 * loss,
                    "train_loss": loss * 1.05,
                }
            )
            rd = Path(root) / arch / str(n) / f"{r:g}"
            rd.mkdir(parents=True, exist_ok=True)
            df.to_csv(rd / "curve.csv", index=False)
            meta = {
                "arch": arch, "width": int(n), "fraction": float(r), "n_params": int(n),
                "variant": "base", "synthetic": {"E": E, "A": A, "B": B, "alpha": alpha,
                                                 "beta": beta, "noise": noise, "seed": seed},
            }  # fmt: skip
            (rd / "meta.json").write_text(json.dumps(meta, indent=1))
            dirs.append(rd)
    return dirs
