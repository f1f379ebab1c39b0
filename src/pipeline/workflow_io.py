"""Small readers shared by the workflow scripts: run folders, frontiers, kappas."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd


def run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Distinct run folders of a list of ``curve.csv``/``meta.json`` paths, in order."""
    seen: dict[Path, None] = {}
    for path in paths:
        seen.setdefault(Path(path).parent, None)
    return list(seen)


def runs_by_variant(paths: Iterable[str | Path]) -> dict[str, list[Path]]:
    """Run folders grouped by variant: ``base`` for results/runs, else the variant name."""
    groups: dict[str, list[Path]] = {}
    for folder in run_dirs(paths):
        parts = folder.parts
        variant = parts[parts.index("variants") + 1] if "variants" in parts else "base"
        groups.setdefault(variant, []).append(folder)
    return groups


def read_frontiers(paths: Iterable[str | Path]) -> dict[str, dict[str, pd.DataFrame]]:
    """``{arch}_{flops,hours}.csv`` files -> {"flops": {arch: df}, "hours": {arch: df}}."""
    frontiers: dict[str, dict[str, pd.DataFrame]] = {"flops": {}, "hours": {}}
    for path in paths:
        arch, x = Path(path).stem.rsplit("_", 1)
        frontiers[x][arch] = pd.read_csv(path)
    return frontiers


def read_kappas(paths: Iterable[str | Path]) -> dict[str, float]:
    """Per-arch kappa CSVs -> {arch: kappa}."""
    table = pd.concat([pd.read_csv(path) for path in paths])
    return dict(zip(table["arch"].astype(str), table["kappa"].astype(float), strict=True))
