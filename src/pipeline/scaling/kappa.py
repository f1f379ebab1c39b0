"""Fit kappa, the forward FLOPs per parameter per atom: C = kappa * N * D (eq. 3, fig. 2).

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


def fit_kappa(n_params, atoms, flops, *, label: str | None = None) -> dict:
    """Least squares through the origin of ``flops = kappa * n_params * atoms``.

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
        ``kappa`` (FLOPs per parameter per atom), ``r2`` (coefficient of
        determination of the through-origin line, centred total sum of squares),
        ``max_rel_residual`` (largest |flops / (kappa N D) - 1|), ``n_points``.

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
    x = cols["n_params"] * cols["atoms"]
    y = cols["flops"]
    kappa = float(np.sum(x * y) / np.sum(x * x))
    resid = y - kappa * x
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    return {
        "kappa": kappa,
        "r2": r2,
        "max_rel_residual": float(np.max(np.abs(y / (kappa * x) - 1.0))),
        "n_points": int(y.size),
    }


def read_kappa_points(path: str | Path) -> pd.DataFrame:
    """Read the raw FLOP points CSV; raise ValueError naming the file and missing columns."""
    path = Path(path)
    df = pd.read_csv(path)
    missing = [c for c in KAPPA_POINT_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {list(df.columns)}")
    return df


def kappa_table(points: pd.DataFrame) -> pd.DataFrame:
    """Fit kappa per arch from total and from counted FLOPs.

    Parameters
    ----------
    points : DataFrame
        Raw points with columns ``arch, n_params, atoms, flops_counted, flops_total``.

    Returns
    -------
    DataFrame
        One row per arch: ``arch, kappa`` (from flops_total: the value compute uses),
        ``r2, max_rel_residual, kappa_counted, r2_counted, counted_fraction``
        (mean flops_counted / flops_total) and ``n_points``.
    """
    rows = []
    for arch, g in points.groupby("arch", sort=True):
        tot = fit_kappa(g["n_params"], g["atoms"], g["flops_total"], label=str(arch))
        cnt = fit_kappa(g["n_params"], g["atoms"], g["flops_counted"], label=str(arch))
        rows.append(
            {
                "arch": arch,
                "kappa": tot["kappa"],
                "r2": tot["r2"],
                "max_rel_residual": tot["max_rel_residual"],
                "kappa_counted": cnt["kappa"],
                "r2_counted": cnt["r2"],
                "counted_fraction": float(np.mean(g["flops_counted"] / g["flops_total"])),
                "n_points": tot["n_points"],
            }
        )
    return pd.DataFrame(rows)


def write_kappa_table(points_csv: str | Path, out_csv: str | Path) -> pd.DataFrame:
    """Read raw FLOP points, fit kappa per arch, write ``results/kappa.csv``."""
    table = kappa_table(read_kappa_points(points_csv))
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
