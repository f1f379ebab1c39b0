"""Learning curves, loss-compute Pareto frontiers and (N, D, L) triplets (figs. 1, 3, 5).

Compute per evaluation row: ``compute_pflops = 3 * kappa * n_params * atoms_seen / 1e15``
(eq. 3, D counts atoms); wall-clock ``hours = (train_seconds + eval_seconds) / 3600``
(the paper counts validation passes in training time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: columns the analysis needs; the others are carried when present
REQUIRED_CURVE_COLUMNS = ("step", "atoms_seen", "train_seconds", "eval_seconds", "val_loss")
META_KEYS = ("arch", "width", "fraction", "n_params")
X_COLUMNS = {"flops": "compute_pflops", "hours": "hours"}
COMPUTE_MODES = ("measured", "kappa")
FLOPS_MODES = ("counted", "total")


def load_curves(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """Read ``curve.csv`` and ``meta.json`` of every run into one long table.

    Parameters
    ----------
    run_dirs : iterable of path
        Run folders ``results/runs/{arch}/{width}/{fraction}[/{variant}]``.

    Returns
    -------
    DataFrame
        One row per evaluation: the curve columns plus ``run`` (the folder),
        ``arch``, ``width``, ``fraction``, ``n_params``, ``variant`` (``"base"``
        when meta has none), ``seed``, ``run_id`` (the training pass, see
        :func:`run_identity`), the measured ``forward_flops_per_atom_counted`` /
        ``_total`` and ``forward_passes_per_step`` (NaN / 1 when meta has none)
        and ``hours``. Rows whose ``val_loss`` is NaN or
        infinite (a diverged evaluation) are dropped; the counts per run are
        logged and stored in ``df.attrs["dropped"]`` ({run: count}).

    Raises
    ------
    ValueError
        A missing file, column or meta key, named with its path; no run dirs.
    """
    frames = []
    dropped: dict[str, int] = {}
    for rd in run_dirs:
        rd = Path(rd)
        curve_path, meta_path = rd / "curve.csv", rd / "meta.json"
        for p in (curve_path, meta_path):
            if not p.is_file():
                raise ValueError(f"{p}: missing (run folder {rd})")
        meta = json.loads(meta_path.read_text())
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise ValueError(f"{meta_path}: missing key(s) {missing}")
        df = pd.read_csv(curve_path)
        missing = [c for c in REQUIRED_CURVE_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{curve_path}: missing column(s) {missing}; has {list(df.columns)}")
        if df.empty:
            raise ValueError(f"{curve_path}: no evaluation rows")
        bad = ~np.isfinite(df["val_loss"].to_numpy(dtype=float))
        if bad.any():
            dropped[str(rd)] = int(bad.sum())
            logger.warning("%s: dropped %d row(s) with non-finite val_loss", curve_path, bad.sum())
            df = df.loc[~bad]
        df = df.sort_values("step", kind="stable").reset_index(drop=True)
        df.insert(0, "run", str(rd))
        df.insert(1, "arch", str(meta["arch"]))
        df.insert(2, "variant", str(meta.get("variant") or "base"))
        df.insert(3, "width", meta["width"])
        df.insert(4, "fraction", float(meta["fraction"]))
        df.insert(5, "n_params", int(meta["n_params"]))
        seed, run_id = run_identity(meta)
        df.insert(6, "seed", seed)
        df.insert(7, "run_id", run_id)
        for mode in FLOPS_MODES:
            value = meta.get(f"forward_flops_per_atom_{mode}")
            df[f"forward_flops_per_atom_{mode}"] = float("nan") if value is None else float(value)
        df["forward_passes_per_step"] = int(meta.get("forward_passes_per_step") or 1)
        frames.append(df)
    if not frames:
        raise ValueError("load_curves: no run folders given")
    out = pd.concat(frames, ignore_index=True)
    out["hours"] = (out["train_seconds"] + out["eval_seconds"]) / 3600.0
    out.attrs["dropped"] = dropped
    return out


def run_identity(meta: Mapping) -> tuple[int, str]:
    """(seed, run_id) of a run folder's meta.json: the training pass that wrote it.

    ``run_id`` comes from meta (contract 2); without it, it is built from the
    variant, arch, width, seed and, unless the meta says the folder came from a
    shared-fraction pass (``shared_run_fractions``), the fraction. ``seed``
    falls back to ``train.seed`` and then 0.
    """
    seed = meta.get("seed")
    if seed is None:
        seed = (meta.get("train") or {}).get("seed", 0)
    seed = int(seed)
    run_id = meta.get("run_id")
    if not run_id:
        variant = str(meta.get("variant") or "base")
        parts = [variant, str(meta["arch"]), f"w{meta['width']}"]
        if not meta.get("shared_run_fractions"):
            parts.append(f"f{float(meta['fraction']):g}")
        run_id = "/".join([*parts, f"seed{seed}"])
    return seed, str(run_id)


def smooth_curves(curves: pd.DataFrame, ema: float | None) -> pd.DataFrame:
    """Exponential moving average of ``val_loss`` within each run.

    ``s_t = ema * s_{t-1} + (1 - ema) * loss_t`` (``s_0 = loss_0``), the paper's
    smoothing factor 0.9 for GemNet-OC (footnote 4). The raw values are kept in
    ``val_loss_raw``. ``ema=None`` or 0 returns the input unchanged.
    """
    if not ema:
        return curves
    if not 0.0 < ema < 1.0:
        raise ValueError(f"ema smoothing factor must be in (0, 1), got {ema}")
    out = curves.copy()
    out["val_loss_raw"] = out["val_loss"]
    out["val_loss"] = out.groupby("run", sort=False)["val_loss"].transform(
        lambda s: s.ewm(alpha=1.0 - ema, adjust=False).mean()
    )
    return out


def add_compute(
    curves: pd.DataFrame,
    kappa: float | Mapping[str, float] | None,
    *,
    compute: Literal["kappa", "measured"] = "kappa",
    flops: Literal["counted", "total"] = "counted",
) -> pd.DataFrame:
    """Add ``compute_pflops`` (training compute in PFLOPs) to every row.

    ``compute="kappa"``: ``3 kappa N D / 1e15`` (eq. 3, D = atoms_seen); ``kappa``
    is one float or {arch: kappa} and an arch without kappa raises ValueError.
    ``compute="measured"``: ``3 * forward_flops_per_atom_<flops> *
    forward_passes_per_step * D / 1e15`` from each run's meta.json (the model's own
    measured forward FLOPs, the backward pass counted as twice the forward);
    a run without them raises ValueError naming it.
    """
    if compute not in COMPUTE_MODES:
        raise ValueError(f"fit.compute must be one of {COMPUTE_MODES}, got {compute!r}")
    if flops not in FLOPS_MODES:
        raise ValueError(f"kappa.flops must be one of {FLOPS_MODES}, got {flops!r}")
    out = curves.copy()
    if compute == "measured":
        col = f"forward_flops_per_atom_{flops}"
        per_atom = out[col] if col in out.columns else pd.Series(np.nan, index=out.index)
        missing = sorted(set(out.loc[~np.isfinite(per_atom.to_numpy(float)), "run"]))
        if missing:
            raise ValueError(
                f"fit.compute = 'measured': meta.json of {len(missing)} run(s) has no "
                f"{col!r} (e.g. {missing[0]}); retrain them or set fit.compute: kappa"
            )
        passes = out["forward_passes_per_step"] if "forward_passes_per_step" in out else 1
        out["compute_pflops"] = 3.0 * per_atom * passes * out["atoms_seen"] / 1e15
        return out
    if isinstance(kappa, Mapping):
        missing = sorted(set(out["arch"]) - set(kappa))
        if missing:
            raise ValueError(f"no kappa for arch(s) {missing}; have {sorted(kappa)}")
        k = out["arch"].map(kappa).astype(float)
    else:
        k = float(kappa)
    out["compute_pflops"] = 3.0 * k * out["n_params"] * out["atoms_seen"] / 1e15
    return out


def drop_warmup(curves: pd.DataFrame, warmup: float = 0.1) -> pd.DataFrame:
    """Drop each run's rows with ``atoms_seen < warmup * (final atoms_seen of the run)``."""
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup fraction must be in [0, 1), got {warmup}")
    final = curves.groupby("run", sort=False)["atoms_seen"].transform("max")
    return curves.loc[curves["atoms_seen"] >= warmup * final]


def pareto_frontier(
    curves: pd.DataFrame,
    kappa: float | Mapping[str, float],
    x: Literal["flops", "hours"] = "flops",
    *,
    warmup: float = 0.1,
    ema: float | None = None,
    compute: Literal["kappa", "measured"] = "kappa",
    flops: Literal["counted", "total"] = "counted",
) -> pd.DataFrame:
    """Lower envelope of validation loss against compute, per (arch, variant).

    A row is on the frontier when no row (of any run of the same arch and
    variant) with less or equal compute has a lower loss; among rows with equal
    compute and loss the first is kept.

    Parameters
    ----------
    curves : DataFrame
        From :func:`load_curves`.
    kappa : float or {arch: float}
        Forward FLOPs per parameter per atom.
    x : {"flops", "hours"}
        Compute axis: ``compute_pflops`` (PFLOPs) or ``hours`` (GPU-hours).
    warmup : float
        Fraction of each run's atoms whose early rows are excluded (the paper
        drops the first 1-10 % of steps).
    ema : float, optional
        EMA smoothing factor of the curves before the envelope (0.9 in the paper
        for GemNet-OC).
    compute, flops : str
        How each row's compute is obtained (see :func:`add_compute`).

    Returns
    -------
    DataFrame
        Frontier rows sorted by the compute axis: ``arch, variant, run, width,
        fraction, n_params, step, atoms_seen, compute_pflops, hours, val_loss``
        (and ``val_loss_raw`` when smoothed). ``attrs["x"]`` names the axis column.
    """
    if x not in X_COLUMNS:
        raise ValueError(f"x must be one of {sorted(X_COLUMNS)}, got {x!r}")
    col = X_COLUMNS[x]
    df = frontier_candidates(curves, kappa, x, warmup=warmup, ema=ema, compute=compute, flops=flops)
    keep = [c for c in FRONTIER_COLUMNS if c in df.columns]
    parts = []
    for _, g in df.groupby(["arch", "variant"], sort=True):
        g = g.sort_values([col, "val_loss"], kind="stable")
        loss = g["val_loss"].to_numpy()
        best_before = np.concatenate([[np.inf], np.minimum.accumulate(loss)[:-1]])
        parts.append(g.loc[loss < best_before, keep])
    if not parts:
        raise ValueError("pareto_frontier: no rows left after warm-up exclusion")
    out = pd.concat(parts, ignore_index=True)
    out.attrs["x"] = col
    return out


FRONTIER_COLUMNS = (
    "arch", "variant", "run", "run_id", "seed", "width", "fraction", "n_params", "step",
    "atoms_seen", "compute_pflops", "hours", "val_loss", "val_loss_raw",
)  # fmt: skip


def frontier_candidates(
    curves: pd.DataFrame,
    kappa: float | Mapping[str, float] | None,
    x: Literal["flops", "hours"] = "flops",
    *,
    warmup: float = 0.1,
    ema: float | None = None,
    compute: Literal["kappa", "measured"] = "kappa",
    flops: Literal["counted", "total"] = "counted",
) -> pd.DataFrame:
    """Rows that may lie on a frontier: smoothed, with compute, after warm-up, x > 0."""
    if x not in X_COLUMNS:
        raise ValueError(f"x must be one of {sorted(X_COLUMNS)}, got {x!r}")
    col = X_COLUMNS[x]
    df = smooth_curves(curves, ema)
    df = drop_warmup(add_compute(df, kappa, compute=compute, flops=flops), warmup)
    nonpos = df[col] <= 0
    if nonpos.any():
        logger.warning("dropped %d row(s) with %s <= 0 from the frontier", nonpos.sum(), col)
        df = df.loc[~nonpos]
    return df


def resampled_frontier_weights(
    x: np.ndarray, loss: np.ndarray, run_codes: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Frontier of each resample of runs, as multiplicities of the candidate rows.

    Parameters
    ----------
    x, loss : float [n]
        Compute and loss of the candidate rows (one arch and variant).
    run_codes : int [n]
        Training pass (0..R-1) of each row.
    counts : int [B, R]
        How often each pass is drawn in each resample.

    Returns
    -------
    float [B, n]
        Row i's weight in resample b: the count of its pass when the row is on the
        lower envelope of the rows of the passes drawn in b (same rule as
        :func:`pareto_frontier`), else 0. ``counts`` of ones gives the full-data
        frontier.
    """
    order = np.lexsort((loss, x))
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    loss_sorted = loss[order]
    out = np.zeros((counts.shape[0], x.size))
    for lo in range(0, counts.shape[0], 256):
        m = counts[lo : lo + 256][:, run_codes[order]].astype(np.float64)  # [b, n] sorted
        masked = np.where(m > 0, loss_sorted[None, :], np.inf)
        best = np.minimum.accumulate(masked, axis=1)
        before = np.concatenate([np.full((m.shape[0], 1), np.inf), best[:, :-1]], axis=1)
        on = (m > 0) & (loss_sorted[None, :] < before)
        out[lo : lo + 256] = np.where(on, m, 0.0)[:, inv]
    return out


def sum_law_points(curves: pd.DataFrame, *, ema: float | None = None) -> pd.DataFrame:
    """(N, D, L) triplets for eq. (5): the final evaluation of each run.

    Returns
    -------
    DataFrame
        One row per run: ``arch, variant, run, run_id, seed, width, fraction, n`` (parameters),
        ``d`` (atoms seen at the final evaluation), ``loss`` (its val_loss).
    """
    df = smooth_curves(curves, ema)
    last = df.loc[df.groupby("run", sort=False)["step"].idxmax()]
    cols = ["arch", "variant", "run", "run_id", "seed", "width", "fraction", "n_params",
            "atoms_seen"]  # fmt: skip
    out = last[[c for c in cols if c in last.columns]].rename(
        columns={"n_params": "n", "atoms_seen": "d"}
    )
    out["loss"] = last["val_loss"].to_numpy()
    return out.reset_index(drop=True)


def write_frontiers(
    run_dirs: Iterable[str | Path],
    kappa_csv: str | Path,
    out_flops: str | Path,
    out_hours: str | Path,
    *,
    warmup: float = 0.1,
    ema: float | None = None,
    compute: Literal["kappa", "measured"] = "kappa",
    flops: Literal["counted", "total"] = "counted",
) -> None:
    """Read runs and ``kappa.csv``; write ``{arch}_flops.csv`` and ``{arch}_hours.csv``."""
    from pipeline.scaling.kappa import read_kappa

    curves = load_curves(run_dirs)
    kappa = read_kappa(kappa_csv)
    for x, path in (("flops", out_flops), ("hours", out_hours)):
        fr = pareto_frontier(curves, kappa, x, warmup=warmup, ema=ema, compute=compute, flops=flops)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fr.to_csv(path, index=False)
        logger.info("wrote %s (%d frontier points)", path, len(fr))
