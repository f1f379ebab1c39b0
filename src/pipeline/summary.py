"""The summary report of a study: ``results/report.md``.

:func:`write_report` writes one Markdown page with every table (rendered), every
figure (linked) with a one-line caption from the paper (:data:`CAPTIONS`), the fitted
laws of each architecture (each exponent with its 95 % interval, or "not identified
(<reason>)" when the fit says so), and the configuration and library versions.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from os.path import relpath
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

logger = logging.getLogger(__name__)

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
    fits: Mapping[str, Mapping] | None = None,
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
    fits : {arch: fit dict}, optional
        The fit stage's JSONs (:func:`pipeline.scaling.tables.read_fits`): a section
        "Fitted laws" gives, per arch, eq. 4 gamma, eq. 5 alpha and beta, eq. 7
        gamma_c (each "value [lo, hi]" or "not identified (<reason>)"), the eq. 5
        fit used and why, the seeds and the bootstrap unit.

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
    if fits:
        lines += ["", "## Fitted laws", "", fitted_laws_markdown(fits)]
    if "table1" in tables:
        lines += ["", "## Family ordering of gamma_c", "", ordering_markdown(tables["table1"])]
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


def fitted_laws_markdown(fits: Mapping[str, Mapping]) -> str:
    """Markdown table of each arch's exponents: ``value [lo, hi]`` or "not identified (why)"."""
    from pipeline.scaling.identify import describe_estimate

    rows = []
    for arch, f in fits.items():
        used = f.get("eq5_used", "free")
        eq5 = f.get("eq5_free" if used == "free" else "eq5_e_zero") or {}
        rows.append({
            "arch": arch,
            "eq. 4 gamma": describe_estimate(dict(f.get("eq4_flops") or {}), "gamma"),
            "eq. 5 alpha": describe_estimate(dict(eq5), "alpha"),
            "eq. 5 beta": describe_estimate(dict(eq5), "beta"),
            "eq. 7 gamma_c": describe_estimate(dict(f.get("eq7") or {}), "gamma_c"),
            "eq. 5 fit": f"{used}: {f.get('eq5_used_reason', '')}",
            "seeds": ", ".join(str(s) for s in f.get("seeds", [])) or "0",
            "bootstrap unit": f.get("bootstrap_unit", "point"),
        })  # fmt: skip
    return markdown_table(pd.DataFrame(rows))


def ordering_markdown(table1_csv: str | Path) -> str:
    """The families ordered by gamma_c per law, with whether their intervals separate."""
    from pipeline.scaling.tables import gamma_ordering

    order = gamma_ordering(pd.read_csv(table1_csv))
    if order.empty:
        return "No two families have an identified gamma_c."
    intro = (
        "Pairs of families with an identified gamma_c, lower first; `separated`: the "
        "95 % intervals do not overlap; `paper_order`: the paper's MPNN < MC-EGNN < "
        "eSEN, GemNet-OC."
    )
    return intro + "\n\n" + markdown_table(order)
