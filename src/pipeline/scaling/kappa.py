"""Fit kappa, the forward FLOPs per parameter per atom: C = kappa * N * D (eq. 3, fig. 2).

kappa is fitted on log residuals over every width and batch size the kappa stage
measured (``log kappa = mean log(F / (N D))``), so each model size weighs the same.

The FLOP counting of built models lives in ``pipeline.train``; this module only
fits the raw points it writes (CSV columns ``arch, width, n_params, atoms,
flops_counted, flops_total``: FLOPs of one forward pass over ``atoms`` atoms,
``flops_counted`` being what ``torch.utils.flop_counter`` sees and
``flops_total`` adding the scatter/gather/element-wise work it does not).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

KAPPA_POINT_COLUMNS = ("arch", "width", "n_params", "atoms", "flops_counted", "flops_total")
FLOPS_MODES = ("counted", "total")
#: a run's compute C = 3 kappa N D is called misstated beyond this relative error
MISSTATED_REL = 0.10


def fit_kappa(n_params, atoms, flops, *, label: str | None = None) -> dict:
    """Fit ``flops = kappa * n_params * atoms`` on log residuals.

    ``log kappa`` is the mean of ``log(flops / (N D))``: every width and batch
    counts the same, so the largest model does not decide kappa (least squares on
    raw FLOPs would).

    Parameters
    ----------
    n_params : float [m]
        Trainable parameters N of each measured model.
    atoms : float [m]
        Atoms D in the forward pass that was measured.
    flops : float [m]
        FLOPs of that forward pass.
    label : str, optional
        Name (e.g. the arch) for error messages.

    Returns
    -------
    dict
        ``kappa`` (FLOPs per parameter per atom), ``r2_log`` (1 - residual sum of
        squares of log flops around ``log(kappa N D)`` over their centred total sum
        of squares), ``worst_rel_residual`` (largest |flops / (kappa N D) - 1|),
        ``n_points``; ``r2`` and ``max_rel_residual`` are the same two under their
        old names.

    Raises
    ------
    ValueError
        Fewer than 2 points, NaN or non-positive values.
    """
    p = f"{label}: " if label else ""
    cols = {}
    for name, v in (("n_params", n_params), ("atoms", atoms), ("flops", flops)):
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
        bad = np.flatnonzero(~np.isfinite(arr) | (arr <= 0))
        if bad.size:
            raise ValueError(
                f"{p}kappa fit: {bad.size} row(s) with NaN or non-positive {name!r} "
                f"(rows {bad[:10].tolist()})"
            )
        cols[name] = arr
    sizes = {k: v.size for k, v in cols.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{p}kappa fit: columns have different lengths {sizes}")
    if cols["flops"].size < 2:
        raise ValueError(f"{p}kappa fit: needs at least 2 points, got {cols['flops'].size}")
    log_ratio = np.log(cols["flops"]) - np.log(cols["n_params"] * cols["atoms"])
    log_kappa = float(np.mean(log_ratio))
    resid = log_ratio - log_kappa
    log_f = np.log(cols["flops"])
    ss_tot = float(np.sum((log_f - log_f.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    worst = float(np.max(np.abs(np.expm1(resid))))
    return {
        "kappa": float(np.exp(log_kappa)),
        "r2_log": r2,
        "worst_rel_residual": worst,
        "r2": r2,
        "max_rel_residual": worst,
        "n_points": int(resid.size),
    }


def read_kappa_points(path: str | Path) -> pd.DataFrame:
    """Read the raw FLOP points CSV; raise ValueError naming the file and missing columns."""
    path = Path(path)
    df = pd.read_csv(path)
    missing = [c for c in KAPPA_POINT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {list(df.columns)}")
    return df


def kappa_table(points: pd.DataFrame, flops: str = "counted") -> pd.DataFrame:
    """Fit kappa per arch from the chosen FLOPs (and report the other mode too).

    Parameters
    ----------
    points : DataFrame
        Raw points with columns ``arch, n_params, atoms, flops_counted, flops_total``
        (and ``molecules``: the batch of each measurement, when present).
    flops : {"counted", "total"}
        ``kappa.flops``: which FLOPs kappa summarises.

    Returns
    -------
    DataFrame
        One row per arch: ``arch, kappa, flops_mode, r2_log, worst_rel_residual,
        n_points, n_widths, n_batch_sizes, kappa_counted, kappa_total,
        r2_log_counted, r2_log_total, counted_fraction`` (mean counted / total).
        A WARNING is logged when one kappa misstates any point's FLOPs by > 10 %.
    """
    if flops not in FLOPS_MODES:
        raise ValueError(f"kappa.flops must be one of {FLOPS_MODES}, got {flops!r}")
    rows = []
    for arch, g in points.groupby("arch", sort=True):
        fits = {
            mode: fit_kappa(g["n_params"], g["atoms"], g[f"flops_{mode}"], label=str(arch))
            for mode in FLOPS_MODES
        }
        chosen = fits[flops]
        n_batch = g["molecules"].nunique() if "molecules" in g else g["atoms"].nunique()
        if n_batch < 2:
            logger.warning("%s: kappa measured at one batch size only (D not varied)", arch)
        if chosen["worst_rel_residual"] > MISSTATED_REL:
            logger.warning(
                "%s: kappa = %.3g (%s FLOPs) misstates a measured point by %.0f %% (> %.0f %%);"
                " per-run measured compute (fit.compute: measured) avoids this",
                arch, chosen["kappa"], flops, 100 * chosen["worst_rel_residual"],
                100 * MISSTATED_REL,
            )  # fmt: skip
        rows.append(
            {
                "arch": arch,
                "kappa": chosen["kappa"],
                "flops_mode": flops,
                "r2_log": chosen["r2_log"],
                "worst_rel_residual": chosen["worst_rel_residual"],
                "n_points": chosen["n_points"],
                "n_widths": int(g["n_params"].nunique()),
                "n_batch_sizes": int(n_batch),
                "kappa_counted": fits["counted"]["kappa"],
                "kappa_total": fits["total"]["kappa"],
                "r2_log_counted": fits["counted"]["r2_log"],
                "r2_log_total": fits["total"]["r2_log"],
                "counted_fraction": float(np.mean(g["flops_counted"] / g["flops_total"])),
            }
        )
    return pd.DataFrame(rows)


def add_flops_per_param_atom(points: pd.DataFrame, flops: str = "counted") -> pd.DataFrame:
    """Points with ``flops_per_param_atom`` = chosen FLOPs / (N D) (fig. 2's y axis)."""
    if flops not in FLOPS_MODES:
        raise ValueError(f"kappa.flops must be one of {FLOPS_MODES}, got {flops!r}")
    out = points.copy()
    out["flops_per_param_atom"] = out[f"flops_{flops}"] / (out["n_params"] * out["atoms"])
    return out


def write_kappa_table(
    points_csv: str | Path, out_csv: str | Path, flops: str = "counted"
) -> pd.DataFrame:
    """Read raw FLOP points, fit kappa per arch, write ``results/kappa.csv``."""
    table = kappa_table(read_kappa_points(points_csv), flops)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    logger.info("wrote %s (%d archs)", out_csv, len(table))
    return table


def read_kappa(path: str | Path) -> dict[str, float]:
    """``results/kappa.csv`` -> {arch: kappa}."""
    path = Path(path)
    df = pd.read_csv(path)
    for c in ("arch", "kappa"):
        if c not in df.columns:
            raise ValueError(f"{path}: missing column {c!r}")
    return dict(zip(df["arch"].astype(str), df["kappa"].astype(float), strict=True))
