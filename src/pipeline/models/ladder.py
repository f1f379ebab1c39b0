"""Scaling ladders (paper Tables 3-6): instantiate each rung and compare parameter counts.

Rungs are built on PyTorch's ``meta`` device, so counting the 79M-parameter MPNN
allocates no memory; a model whose constructor needs real tensors is built on the
CPU instead (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import torch

from pipeline.models import build, num_params

logger = logging.getLogger(__name__)

# Row keys that are not model keywords, and short row keys for model keywords.
_ROW_ONLY = {"n_params_paper"}
_ALIASES = {"depth": "num_layers", "hidden": "hidden_channels"}
# Model attributes reported as extra columns when the model has them.
_ATTR_COLUMNS = ("vector_channels", "lmax", "mmax", "channels", "hidden_channels")


def _count(name: str, hparams: dict[str, Any]) -> tuple[int, torch.nn.Module]:
    try:
        with torch.device("meta"):
            model = build(name, **hparams)
    except (NotImplementedError, RuntimeError) as err:
        logger.info("%s %s: meta-device build failed (%s); building on CPU", name, hparams, err)
        model = build(name, **hparams)
    return num_params(model), model


def ladder_table(
    name: str, rows: Iterable[Mapping[str, Any]], common_hparams: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Build every rung of a ladder and tabulate measured against printed counts.

    Parameters
    ----------
    name : str
        Registry name (``"mpnn"``, ``"egnn"``, ...).
    rows : iterable of mappings
        One per rung: model keywords (``width``; for eSEN ``channels``, ``lmax``,
        ...; ``depth`` and ``hidden`` are accepted for ``num_layers`` and
        ``hidden_channels``) plus optionally ``n_params_paper``, the count printed
        in the paper.
    common_hparams : mapping, optional
        Keywords shared by all rungs; a row's own keys take precedence.

    Returns
    -------
    pandas.DataFrame
        One row per rung: ``depth``, ``width``, ``n_params_paper`` (NA if absent),
        ``n_params`` (measured), ``rel_diff`` = (n_params - n_params_paper) /
        n_params_paper, then the row's other keys and the model attributes among
        ``vector_channels``, ``lmax``, ``mmax``, ``channels``, ``hidden_channels``.
    """
    common = dict(common_hparams or {})
    records = []
    for i, row in enumerate(rows):
        row = dict(row)
        hparams = dict(common)
        for key, value in row.items():
            if key not in _ROW_ONLY:
                hparams[_ALIASES.get(key, key)] = value
        try:
            n, model = _count(name, hparams)
        except (TypeError, ValueError) as err:
            message = f"ladder {name!r}, row {i} ({row}): cannot build the model: {err}"
            raise ValueError(message) from err
        paper = row.get("n_params_paper")
        record: dict[str, Any] = {
            "depth": getattr(model, "num_layers", hparams.get("num_layers")),
            "width": getattr(model, "width", hparams.get("width")),
            "n_params_paper": paper,
            "n_params": n,
            "rel_diff": (n - paper) / paper if paper else float("nan"),
        }
        for key in _ATTR_COLUMNS:
            if hasattr(model, key):
                record[key] = getattr(model, key)
        for key, value in row.items():
            column = _ALIASES.get(key, key)
            if column not in record and key not in record and key not in _ROW_ONLY:
                record[column] = value
        records.append(record)
    table = pd.DataFrame.from_records(records)
    if not table.empty:
        table["n_params_paper"] = table["n_params_paper"].astype("Int64")
    return table


def ladder_rows(
    widths: Iterable[int], paper_n_params: Mapping[int | str, int] | None = None
) -> list[dict[str, Any]]:
    """Rows for :func:`ladder_table` from a config's ``widths`` and ``paper_n_params``.

    ``paper_n_params`` maps width (int, or str as YAML keys may be) to the
    printed count; widths without an entry get no ``n_params_paper``.
    """
    counts = {int(k): int(v) for k, v in (paper_n_params or {}).items()}
    rows = []
    for w in widths:
        row: dict[str, Any] = {"width": int(w)}
        if int(w) in counts:
            row["n_params_paper"] = counts[int(w)]
        rows.append(row)
    return rows
