"""A cost plan of a study before any training: N, D, FLOPs and hours of every job.

``snakemake --cores 1 plan`` writes ``results/plan.csv`` (one row per training job of
the configured study: base runs, shared-fraction runs, variants, every seed) and
prints per-arch totals. Nothing is trained and no GPU is needed:

- N is counted on the instantiated model (``pipeline.models.build``);
- the forward FLOPs per atom are measured with ``pipeline.train.flops`` on the first
  ``num_molecules`` validation molecules (the kappa rule's batch), on the graph the
  trainer builds; for a conservative model they include the backward pass that
  computes the forces;
- D counts the atoms the job trains on: the atoms of its largest fraction's prefix of
  train.h5 (``ptr``), times ``epochs``, capped by ``train.max_steps`` (at the mean
  atoms per molecule); with ``train_atoms`` the study's data are scaled to that size
  (a plan of the paper's dataset from the embedded one);
- training compute is ``3 x FLOPs/atom x D x passes`` (passes per step: 1 + the
  symmetry loss's rotations), in PFLOPs;
- hours, when pilot runs of the same arch on the same device kind exist (any
  meta.json under the results folder), are the training FLOPs divided by the pilots'
  median measured rate (3 x FLOPs/atom x atoms seen x passes / train seconds): the
  rate is assumed constant across widths, which small pilots overstate on a GPU.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pipeline.data.extract import train_fraction_size
from pipeline.plan_jobs import cpu_job_count, study_jobs, train_files

# torch, the models and the FLOP counter are imported where FLOPs are measured, so that
# workflow/rules/plan.smk (which lists the jobs at parse time) costs no torch import.

logger = logging.getLogger(__name__)

PLAN_COLUMNS = [
    "rule",
    "variant",
    "arch",
    "width",
    "fractions",
    "seed",
    "n_params",
    "atoms_D",
    "forward_flops_per_atom_counted",
    "forward_flops_per_atom_total",
    "flops",
    "flops_source",
    "passes_per_step",
    "training_pflops",
    "hours_estimate",
    "pilot_device",
    "pilot_runs",
]


class FlopBatches:
    """The FLOP-count batch: the first ``num_molecules`` validation molecules, with the
    graph the trainer builds for a model (none for ``uses_edges = False``)."""

    def __init__(self, val_h5: str | os.PathLike, num_molecules: int):
        from pipeline.data.store import MoleculeStore

        self.store = MoleculeStore.from_h5(val_h5)
        self.count = min(num_molecules, self.store.num_molecules)
        self.cache: dict[tuple, tuple] = {}

    def inputs(self, model) -> tuple:
        from pipeline.data.loader import make_batch

        neighbors = model.max_neighbors if getattr(model, "uses_edges", True) else 0
        key = (float(model.cutoff), int(neighbors))
        if key not in self.cache:
            batch = make_batch(self.store, list(range(self.count)), model.cutoff, neighbors)
            self.cache[key] = (
                batch.atomic_numbers,
                batch.positions,
                batch.edge_index,
                batch.batch,
                self.count,
            )
        return self.cache[key]


def measure_model(
    arch: str, width: int, arch_settings: dict, val_h5, num_molecules: int = 4
) -> dict:
    """N and forward FLOPs per atom of one rung, on the first validation molecules.

    ``val_h5`` is a path or a :class:`FlopBatches`.

    Returns
    -------
    dict
        ``n_params``, ``forward_flops_per_atom_counted``, ``forward_flops_per_atom_total``,
        ``forces`` ("direct" or "conservative"), ``flops_source`` ("measured").
    """
    import torch

    from pipeline import models
    from pipeline.train.flops import count_forward_flops

    batches = val_h5 if isinstance(val_h5, FlopBatches) else FlopBatches(val_h5, num_molecules)
    torch.manual_seed(0)
    model = models.build(arch, width=int(width), **models.arch_hparams(arch_settings))
    inputs = batches.inputs(model)
    flops = count_forward_flops(model, inputs)
    atoms = int(inputs[0].shape[0])
    return {
        "n_params": models.num_params(model),
        "forward_flops_per_atom_counted": flops["counted"] / atoms,
        "forward_flops_per_atom_total": flops["total"] / atoms,
        "forces": getattr(model, "forces", "direct"),
        "flops_source": "measured",
    }


def _count_params(arch: str, width: int, arch_settings: dict) -> int:
    """N of a rung, built on the meta device (no memory, no init) where the class allows."""
    import torch

    from pipeline import models

    hparams = models.arch_hparams(arch_settings)
    try:
        with torch.device("meta"):
            return models.num_params(models.build(arch, width=int(width), **hparams))
    except (RuntimeError, NotImplementedError):  # e.g. .item() on a meta tensor in __init__
        return models.num_params(models.build(arch, width=int(width), **hparams))


def _quadratic(widths: list[int], values: list[float]):
    """The parabola through three (width, value) points, as a function of width."""
    coefficients = np.polyfit(np.asarray(widths, float), np.asarray(values, float), 2)
    return lambda w: float(np.polyval(coefficients, float(w)))


def measure_family(
    arch: str, arch_settings: dict, widths, batches: FlopBatches, probes: int = 4
) -> dict[int, dict]:
    """:func:`measure_model` over a ladder, the large rungs' FLOPs from the small ones.

    A model whose layer sizes are affine in the width has forward FLOPs (matmuls and
    element-wise work) exactly quadratic in the width, on a fixed batch. The first
    three rungs are measured and fit a parabola; the fourth is measured and must match
    it (relative 1e-6, counted and total FLOPs), and then the larger rungs take the
    parabola's FLOPs (``flops_source`` says so) and N from the model built on the meta
    device. Otherwise, and for ladders of fewer than ``probes + 1`` rungs, every rung
    is measured. (The paper's MC-EGNN at w = 800 takes ~70 s to count on 16 molecules
    on a loaded 2-core machine; its parabola, from w = 32 ... 64, takes 0.)
    """
    widths = sorted({int(w) for w in widths})
    if len(widths) <= probes:
        return {w: measure_model(arch, w, arch_settings, batches) for w in widths}
    out = {w: measure_model(arch, w, arch_settings, batches) for w in widths[:probes]}
    fits = {}
    for kind in ("counted", "total"):
        column = f"forward_flops_per_atom_{kind}"
        fits[column] = _quadratic(widths[:3], [out[w][column] for w in widths[:3]])
        measured = out[widths[3]][column]
        if abs(fits[column](widths[3]) - measured) > 1e-6 * max(abs(measured), 1.0):
            logger.info(
                "%s: FLOPs not quadratic in width (w=%d), every rung measured", arch, widths[3]
            )
            out.update({w: measure_model(arch, w, arch_settings, batches) for w in widths[probes:]})
            return out
    source = f"quadratic in width, verified at w={widths[3]}"
    for w in widths[probes:]:
        out[w] = {
            "n_params": _count_params(arch, w, arch_settings),
            **{column: fit(w) for column, fit in fits.items()},
            "forces": out[widths[0]]["forces"],
            "flops_source": source,
        }
    return out


def prefix_atoms(train_h5: str | os.PathLike, fraction: float) -> int:
    """Atoms of the fraction-``fraction`` prefix of an extracted training split."""
    with h5py.File(train_h5, "r") as handle:
        ptr = handle["ptr"]
        molecules = int(ptr.shape[0]) - 1
        return int(ptr[train_fraction_size(molecules, float(fraction))])


def pilot_rates(results: str | os.PathLike, flops: str) -> pd.DataFrame:
    """Measured training rates of every finished run under ``results`` (pilots).

    Returns
    -------
    DataFrame
        One row per meta.json with FLOPs and timing: arch, device, rate_flops_per_s
        (3 x FLOPs/atom x atoms seen x passes / train seconds), mtime.
    """
    rows = []
    for path in sorted(Path(results).rglob("meta.json")):
        try:
            meta = json.loads(path.read_text())
            per_atom = float(meta[f"forward_flops_per_atom_{flops}"])
            seconds = float(meta["train_seconds"])
            atoms = float(meta["atoms_seen"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.warning("pilot %s skipped: %s", path, err)
            continue
        if seconds <= 0 or atoms <= 0:
            continue
        passes = int(meta.get("forward_passes_per_step", 1))
        rows.append(
            {
                "arch": meta.get("arch"),
                "device": meta.get("device", "unknown"),
                "rate_flops_per_s": 3.0 * per_atom * atoms * passes / seconds,
                "mtime": path.stat().st_mtime,
            }
        )
    return pd.DataFrame(rows) if rows else pilot_rates_empty()


def _family_key(job: dict) -> str:
    """Jobs whose models differ only in width (one ladder)."""
    settings = job["arch_settings"]
    return json.dumps(
        [job["arch"], settings.get("hparams"), settings.get("model")], sort_keys=True, default=str
    )


def pilot_rates_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["arch", "device", "rate_flops_per_s", "mtime"])


def plan_jobs(
    jobs: list[dict],
    train_h5: dict[str, str | os.PathLike],
    val_h5: str | os.PathLike,
    *,
    flops: str = "counted",
    num_molecules: int = 4,
    train_atoms: float | None = None,
    results: str | os.PathLike | None = None,
    device_kind: str | None = None,
) -> pd.DataFrame:
    """One row per training job with N, D, FLOPs and (with pilots) hours.

    Parameters
    ----------
    jobs : list of dict
        The study's training jobs as the rules see them (``workflow/rules/plan.smk``):
        ``rule``, ``variant`` (None for base runs), ``arch``, ``width``, ``fractions``
        (every fraction the job writes), ``seed``, ``arch_settings`` (base_width, lr,
        batch_size, hparams, model), ``train`` (the merged train section), ``data`` (a
        key of ``train_h5``).
    train_h5 : dict
        Extracted training split of each data key ("study", or a variant's own).
    val_h5 : path
        The study's validation split: the FLOP-count batch.
    flops : {"counted", "total"}
        Which FLOPs make the training compute (config ``kappa.flops``).
    num_molecules : int
        Validation molecules in the FLOP-count batch.
    train_atoms : float, optional
        Atoms of the study's whole training set to plan for; D scales by this over the
        extracted study's atoms (every data key by the same factor).
    results : path, optional
        Folder searched for pilot runs' meta.json.
    device_kind : str, optional
        Pilots' device to use (default: the device of the most recent pilot).
    """
    if flops not in ("counted", "total"):
        raise ValueError(f"plan: flops must be 'counted' or 'total', got {flops!r}")
    scale = 1.0
    if train_atoms is not None:
        scale = float(train_atoms) / prefix_atoms(train_h5["study"], 1.0)
    pilots = pilot_rates(results, flops) if results is not None else pilot_rates_empty()
    if device_kind is None and len(pilots):
        device_kind = str(pilots.sort_values("mtime")["device"].iloc[-1])
    rates = (
        pilots[pilots["device"] == device_kind]
        .groupby("arch")["rate_flops_per_s"]
        .agg(["median", "count"])
        if len(pilots)
        else pd.DataFrame(columns=["median", "count"])
    )
    batches = FlopBatches(val_h5, num_molecules)
    families: dict[str, tuple[dict, set]] = {}
    for job in jobs:
        key = _family_key(job)
        families.setdefault(key, (job, set()))[1].add(int(job["width"]))
    measured: dict[str, dict[int, dict]] = {}
    for key, (job, widths) in families.items():
        measured[key] = measure_family(job["arch"], job["arch_settings"], widths, batches)
        logger.info("%s: %d rungs measured or extrapolated (%s)", key, len(widths), sorted(widths))
    atoms_cache: dict[tuple, int] = {}
    rows = []
    for job in jobs:
        model = measured[_family_key(job)][int(job["width"])]
        train = job["train"]
        largest = max(float(r) for r in job["fractions"])
        cache_key = (job["data"], largest)
        if cache_key not in atoms_cache:
            atoms_cache[cache_key] = prefix_atoms(train_h5[job["data"]], largest)
        atoms = atoms_cache[cache_key] * scale * int(train.get("epochs", 1))
        if train.get("max_steps"):
            molecules = prefix_molecules(train_h5[job["data"]], largest)
            per_molecule = atoms_cache[cache_key] * scale / max(molecules, 1)
            cap = int(train["max_steps"]) * int(job["arch_settings"]["batch_size"])
            atoms = min(atoms, cap * per_molecule)
        passes = 1 + int(train.get("symmetry_loss_rotations", 0) or 0)
        per_atom = model[f"forward_flops_per_atom_{flops}"]
        training_flops = 3.0 * per_atom * atoms * passes
        hours, pilot_runs = math.nan, 0
        if job["arch"] in rates.index:
            rate, pilot_runs = (
                rates.loc[job["arch"], "median"],
                int(rates.loc[job["arch"], "count"]),
            )
            hours = training_flops / rate / 3600.0
        conservative = model["forces"] == "conservative"
        rows.append(
            {
                "rule": job["rule"],
                "variant": job.get("variant") or "",
                "arch": job["arch"],
                "width": int(job["width"]),
                "fractions": ";".join(f"{float(r):g}" for r in job["fractions"]),
                "seed": int(job["seed"]),
                "n_params": model["n_params"],
                "atoms_D": atoms,
                "forward_flops_per_atom_counted": model["forward_flops_per_atom_counted"],
                "forward_flops_per_atom_total": model["forward_flops_per_atom_total"],
                "flops": flops + (" (incl. force backward)" if conservative else ""),
                "flops_source": model["flops_source"],
                "passes_per_step": passes,
                "training_pflops": training_flops / 1e15,
                "hours_estimate": hours,
                "pilot_device": device_kind if pilot_runs else "",
                "pilot_runs": pilot_runs,
            }
        )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def prefix_molecules(train_h5: str | os.PathLike, fraction: float) -> int:
    """Molecules of the fraction-``fraction`` prefix of an extracted training split."""
    with h5py.File(train_h5, "r") as handle:
        return train_fraction_size(int(handle["ptr"].shape[0]) - 1, float(fraction))


def summarize(plan: pd.DataFrame, *, cpu_jobs: int = 0) -> pd.DataFrame:
    """Per-arch totals (base runs and variants together) and a study total row.

    ``hours`` is NaN for an arch with no pilot; the study total then sums the known
    ones and says how many jobs lack an estimate (``jobs_without_hours``).
    """
    grouped = plan.groupby("arch", sort=False)
    table = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "largest_N": grouped["n_params"].max(),
            "atoms_D": grouped["atoms_D"].sum(),
            "training_pflops": grouped["training_pflops"].sum(),
            "hours": grouped["hours_estimate"].sum(min_count=1),
            "jobs_without_hours": grouped["hours_estimate"].apply(lambda h: int(h.isna().sum())),
        }
    )
    total = pd.DataFrame(
        {
            "jobs": [len(plan)],
            "largest_N": [plan["n_params"].max() if len(plan) else 0],
            "atoms_D": [plan["atoms_D"].sum()],
            "training_pflops": [plan["training_pflops"].sum()],
            "hours": [plan["hours_estimate"].sum(min_count=1)],
            "jobs_without_hours": [int(plan["hours_estimate"].isna().sum())],
        },
        index=["study"],
    )
    table = pd.concat([table, total])
    table.index.name = "arch"
    table.attrs["slurm_jobs"] = {"training (GPU)": len(plan), "cpu (extract, kappa)": cpu_jobs}
    return table


def format_summary(summary: pd.DataFrame) -> str:
    """The printed plan: per-arch totals and the number of SLURM jobs."""
    shown = summary.copy()
    shown["largest_N"] = shown["largest_N"].map(lambda n: f"{n:,.0f}")
    shown["atoms_D"] = shown["atoms_D"].map(lambda d: f"{d:.3g}")
    shown["training_pflops"] = shown["training_pflops"].map(lambda c: f"{c:.4g}")
    shown["hours"] = shown["hours"].map(lambda h: "no pilot" if pd.isna(h) else f"{h:.3g}")
    slurm = summary.attrs.get("slurm_jobs", {})
    lines = [shown.to_string()]
    if slurm:
        lines.append("SLURM jobs: " + ", ".join(f"{count} {kind}" for kind, count in slurm.items()))
    return "\n".join(lines)


def write_plan(
    jobs: list[dict],
    train_h5: dict[str, str | os.PathLike],
    val_h5: str | os.PathLike,
    out_csv: str | os.PathLike,
    *,
    cpu_jobs: int = 0,
    **options,
) -> str:
    """:func:`plan_jobs` to ``out_csv``; returns the printed summary."""
    plan = plan_jobs(jobs, train_h5, val_h5, **options)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    plan.to_csv(out_csv, index=False)
    text = format_summary(summarize(plan, cpu_jobs=cpu_jobs))
    counts = Counter(plan["rule"])
    logger.info("plan: %d training jobs (%s) -> %s", len(plan), dict(counts), out_csv)
    return text


__all__ = [
    "PLAN_COLUMNS",
    "FlopBatches",
    "cpu_job_count",
    "study_jobs",
    "train_files",
    "format_summary",
    "measure_model",
    "pilot_rates",
    "plan_jobs",
    "prefix_atoms",
    "summarize",
    "write_plan",
]
