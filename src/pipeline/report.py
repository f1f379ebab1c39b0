"""Tables 2-6 and the summary report (``results/report.md``).

* :func:`table2`: the architectures' expressivity (paper Table 2) from the
  ``properties`` each registered model class declares.
* :func:`ladder_csv`: a scaling ladder (Tables 3-6) rebuilt from the registry,
  measured parameter counts against the printed ones.
* :func:`write_report`: one Markdown page with every table (rendered), every
  figure (linked) with a one-line caption from the paper (:data:`CAPTIONS`), and
  the configuration and library versions of the study.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from os.path import relpath
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

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

#: One-line captions, shortened from the paper's.
CAPTIONS: dict[str, str] = {
    "table1": "Compute-optimal scaling law parameters F_c and gamma_c with 95 % confidence "
    "intervals, from the compute-optimal frontier (eq. 4) and from the sum-power-law (eq. 7); "
    "compute in PFLOPs.",
    "table2": "Architectures and their expressivity: characteristic, tensor order (l) and "
    "body order (nu).",
    "table3": "Scaling ladder for the unconstrained MPNN (depth, width, parameters).",
    "table4": "Scaling ladder for EGNN; vector channels scale as sqrt(w) for stable updates.",
    "table5": "Scaling ladder for eSEN; embedding width w = (l_max + 1)^2 C for C channels.",
    "table6": "Scaling ladder for GemNet-OC.",
    "table7": "Scaling parameters of the sum-power-law (eq. 5) with 95 % confidence intervals.",
    "fig1": "Loss follows a power law in training compute (PFLOPs, GPU-hours) whose slope "
    "improves from unconstrained to low-order to high-order architectures.",
    "fig2": "Estimation of kappa (forward FLOPs per parameter per atom) for each architecture.",
    "fig3": "Pareto frontiers of training compute in log-log space: loss-FLOPs (top) and "
    "loss-train-time (bottom); line colour encodes model size.",
    "fig4": "Higher orders of feature tensors in eSEN (l_max 4 vs 2) give better scaling "
    "exponents with respect to compute.",
    "fig5": "Sum-power-law fits: scaling the number of training tokens (top) and of "
    "parameters (bottom).",
    "fig6": "Compute-optimal model size (left) and training size (right) at a fixed level "
    "of compute (log-log).",
    "fig7": "Unconstrained MPNN with vs without symmetry loss: frontier shift (left), data "
    "exponent beta (middle), parameter exponent alpha (right); task loss only.",
    "fig8": "Loss-compute frontiers of unconstrained models on 1 % of the data for many "
    "epochs without (left) and with (middle) augmentation; right: where the log-log trend "
    "breaks.",
    "fig9": "Scaling with training compute on 1 % of the data for many epochs: unconstrained "
    "model with data augmentation vs eSEN.",
    "fig10": "Sweeps over batch size and learning rate (top) and depth and width (bottom) "
    "at about equal parameter counts.",
    "fig11": "Effect of scaling the number of equivariant vector channels E in EGNN.",
    "fig12": "Loss-compute frontiers on the diverse split (charged and open-shell kept): "
    "unconstrained model, eSEN, and their compute-optimal power laws.",
    "fig13": "Test-time group averaging: saturation with the number of rotations (left) and "
    "parameter scaling of baseline vs GA (right).",
    "fig14": "Learning curves of all models: energy loss (top) and force loss (bottom); "
    "colour encodes model size.",
    "fig15": "MPNNs lose performance when translation invariance is not maintained "
    "(absolute positions instead of relative vectors).",
    "fig16": "Training instabilities of vanilla transformers on force-field tasks.",
}


# --------------------------------------------------------------------------- tables


def table2(archs: Iterable[str]) -> pd.DataFrame:
    """Table 2: expressivity of each architecture, from its class's ``properties``.

    Parameters
    ----------
    archs : iterable of str
        Registry names (``pipeline.models.REGISTRY``), in row order.

    Returns
    -------
    DataFrame
        Columns ``architecture`` (paper name, :data:`ARCH_NAMES`, else the registry
        name), ``characteristic``, ``tensor_order``, ``body_order`` (strings, as
        declared; "-" where the notion does not apply).

    Raises
    ------
    ValueError
        An unknown name, a model module that cannot be imported, or a class whose
        ``properties`` lack one of the three keys (named).
    """
    from pipeline.models import REGISTRY, model_class

    rows = []
    for arch in archs:
        if arch not in REGISTRY:
            raise ValueError(f"table 2: unknown arch {arch!r}; registry has {sorted(REGISTRY)}")
        try:
            cls = model_class(arch)
        except ImportError as err:
            raise ValueError(
                f"table 2: cannot import {REGISTRY[arch]} for {arch!r}: {err}"
            ) from err
        props = getattr(cls, "properties", None)
        if not isinstance(props, Mapping):
            raise ValueError(f"table 2: {REGISTRY[arch]} declares no 'properties' dict")
        missing = [k for k in TABLE2_COLUMNS[1:] if k not in props]
        if missing:
            raise ValueError(f"table 2: {REGISTRY[arch]}.properties lacks {missing}")
        rows.append({"architecture": ARCH_NAMES.get(arch, arch),
                     **{k: str(props[k]) for k in TABLE2_COLUMNS[1:]}})  # fmt: skip
    return pd.DataFrame(rows, columns=list(TABLE2_COLUMNS))


def write_table2(archs: Iterable[str], out_path: str | Path) -> pd.DataFrame:
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


# --------------------------------------------------------------------------- report


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table of ``df`` (floats to 4 significant digits)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _order(name: str) -> tuple:
    m = re.fullmatch(r"(table|fig)(\d+)", name)
    return (0 if m is None else 1, m.group(1) if m else name, int(m.group(2)) if m else 0)


def _title(name: str) -> str:
    m = re.fullmatch(r"(table|fig)(\d+)", name)
    if m is None:
        return name
    return f"{'Table' if m.group(1) == 'table' else 'Figure'} {m.group(2)}"


def _caption(name: str) -> str:
    if name not in CAPTIONS:
        logger.warning("report: no caption for %r", name)
        return ""
    return CAPTIONS[name]


def write_report(
    out_path: str | Path,
    tables: Mapping[str, str | Path],
    figures: Mapping[str, str | Path],
    config: Mapping[str, Any],
    versions: Mapping[str, Any],
) -> Path:
    """Write the Markdown summary of the study.

    Parameters
    ----------
    out_path : path
        Markdown file to write (``results/report.md``).
    tables : {name: path}
        CSV tables by name (``table1`` ... ``table7``), rendered in place.
    figures : {name: path}
        Figure files by name (``fig1`` ... ``fig16``), linked relative to the report.
    config : mapping
        The configuration of the study (written as YAML).
    versions : mapping
        Code and library versions (e.g. ``pipeline.provenance.library_versions()``
        plus ``code_version``).

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    ValueError
        A table or figure file that does not exist or a table that cannot be read
        (named).
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Scaling laws and symmetry: reproduction report",
        "",
        f"Tables: {len(tables)}, figures: {len(figures)}. Captions are shortened from "
        "the paper's; every number is this study's.",
        "",
        "## Tables",
    ]
    for name in sorted(tables, key=_order):
        path = Path(tables[name])
        if not path.is_file():
            raise ValueError(f"report: table {name!r}: {path} does not exist")
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ValueError(f"report: table {name!r}: cannot read {path}: {err}") from err
        link = relpath(path, out.parent)
        lines += ["", f"### {_title(name)}", "", f"{_caption(name)} ([{path.name}]({link}))",
                  "", markdown_table(df)]  # fmt: skip
    lines += ["", "## Figures", ""]
    for name in sorted(figures, key=_order):
        path = Path(figures[name])
        if not path.is_file():
            raise ValueError(f"report: figure {name!r}: {path} does not exist")
        link = relpath(path, out.parent)
        lines.append(f"- **{_title(name)}** ([{path.name}]({link})): {_caption(name)}")
    lines += ["", "## Configuration", "", "```yaml",
              yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)),
                             sort_keys=False).rstrip(),
              "```", "", "## Versions", "", "| component | version |", "|---|---|"]  # fmt: skip
    for key, value in versions.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        lines.append(f"| {_cell(key)} | {_cell(text)} |")
    out.write_text("\n".join(lines) + "\n")
    logger.info("wrote %s", out)
    return out
