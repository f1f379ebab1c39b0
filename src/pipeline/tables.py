"""Tables 2-6 of the paper, from the model registry.

* :func:`table2`: the architectures' expressivity (paper Table 2) from the
  ``properties`` each registered model class declares.
* :func:`ladder_csv`: a scaling ladder (Tables 3-6) rebuilt from the registry,
  measured parameter counts against the printed ones.

Tables 1 and 7 (the fitted laws) are :mod:`pipeline.scaling.tables`; the Markdown
report is :mod:`pipeline.summary`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

#: Paper names of the registered architectures (Table 2 spelling).
ARCH_NAMES: dict[str, str] = {
    "mpnn": "Unconstrained MPNN",
    "gemnet_oc": "GemNet-OC",
    "egnn": "EGNN",
    "esen": "eSEN",
    "transformer": "Vanilla transformer",
}

TABLE2_COLUMNS = ("architecture", "characteristic", "tensor_order", "body_order")

# --------------------------------------------------------------------------- tables


def table2(archs: Iterable[str] | Mapping[str, str]) -> pd.DataFrame:
    """Table 2: expressivity of each architecture, from its class's ``properties``.

    Parameters
    ----------
    archs : iterable of str, or mapping of str to str
        Registry names (``pipeline.models.REGISTRY``), in row order; or a mapping from
        each arch's config name to its model (a registry name or
        ``"package.module:Class"``, as ``archs.<name>.model`` gives it).

    Returns
    -------
    DataFrame
        Columns ``architecture`` (paper name, :data:`ARCH_NAMES`, else the config
        name), ``characteristic``, ``tensor_order``, ``body_order`` (strings, as
        declared; "-" where the notion does not apply).

    Raises
    ------
    ValueError
        An unknown name, a model module that cannot be imported, or a class whose
        ``properties`` lack one of the three keys (named).
    """
    from pipeline.models import REGISTRY, model_class

    models = dict(archs) if isinstance(archs, Mapping) else {arch: arch for arch in archs}
    rows = []
    for arch, model in models.items():
        if model not in REGISTRY and ":" not in model:
            raise ValueError(f"table 2: unknown arch {arch!r}; registry has {sorted(REGISTRY)}")
        spec = REGISTRY.get(model, model)
        try:
            cls = model_class(model)
        except ImportError as err:
            raise ValueError(f"table 2: cannot import {spec} for {arch!r}: {err}") from err
        props = getattr(cls, "properties", None)
        if not isinstance(props, Mapping):
            raise ValueError(f"table 2: {spec} declares no 'properties' dict")
        missing = [k for k in TABLE2_COLUMNS[1:] if k not in props]
        if missing:
            raise ValueError(f"table 2: {spec}.properties lacks {missing}")
        rows.append({"architecture": ARCH_NAMES.get(arch, arch),
                     **{k: str(props[k]) for k in TABLE2_COLUMNS[1:]}})  # fmt: skip
    return pd.DataFrame(rows, columns=list(TABLE2_COLUMNS))


def write_table2(archs: Iterable[str] | Mapping[str, str], out_path: str | Path) -> pd.DataFrame:
    """Write :func:`table2` of ``archs`` to the CSV ``out_path``; return it."""
    table = table2(archs)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    logger.info("wrote %s (%d architectures)", out, len(table))
    return table


def ladder_csv(
    arch: str,
    widths: Iterable[int],
    paper_n_params: Mapping[int | str, int] | None,
    hparams: Mapping[str, Any] | None,
    out_path: str | Path,
) -> pd.DataFrame:
    """A scaling ladder (Tables 3-6): build every rung, write measured vs printed counts.

    Parameters
    ----------
    arch : str
        Registry name.
    widths : iterable of int
        Ladder coordinate of each rung (eSEN: channels C).
    paper_n_params : {width: count}, optional
        Counts printed in the paper (keys may be strings, as YAML gives them).
    hparams : mapping, optional
        Model keywords shared by every rung (the config's ``hparams``).
    out_path : path
        CSV to write.

    Returns
    -------
    DataFrame
        :func:`pipeline.models.ladder.ladder_table` output: ``depth, width,
        n_params_paper, n_params, rel_diff`` and the model's ladder attributes.
    """
    from pipeline.models.ladder import ladder_rows, ladder_table

    table = ladder_table(arch, ladder_rows(widths, paper_n_params), dict(hparams or {}))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    diff = table["rel_diff"].abs().max() if table["rel_diff"].notna().any() else float("nan")
    logger.info("wrote %s (%d rungs, max |rel_diff| %.3g)", out, len(table), diff)
    return table
