"""Every table, figure and report.md of ``snakemake all``, built from the synthetic tree.

Each ``workflow/scripts/*.py`` of the report stage runs as Snakemake runs it (its
module executed with a ``snakemake`` object holding the rule's input, output,
params and log), on the synthetic results tree of the default config. Each output
is then opened: PDFs have a page and their figures have no empty axes and no
overlapping or scientific-notation tick labels; CSVs have their columns and one
row per arch (or rung); report.md's links resolve.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from pipeline.config import expand_variants
from tests.synthetic_tree import REPO

SCRIPTS = REPO / "workflow" / "scripts"


class _Files(list):
    """A Snakemake-like named list: iterable, indexable and with named attributes."""

    def __init__(self, items=(), **named):
        flat = []
        for v in [*items, *named.values()]:
            flat.extend(v if isinstance(v, list | tuple) else [v])
        super().__init__(str(p) for p in flat)
        for k, v in named.items():
            setattr(self, k, [str(p) for p in v] if isinstance(v, list | tuple) else str(v))


def _files(tree, variant_names=None, base_archs=None):
    """curve.csv and meta.json of the base runs of ``base_archs`` and of the variants."""
    dirs = [d for d in tree.run_dirs["base"] if base_archs and d.parts[-4] in base_archs]
    for name in variant_names or []:
        dirs += tree.run_dirs[name]
    return [d / f for d in dirs for f in ("curve.csv", "meta.json")]


def _jobs(tree) -> dict[str, tuple[dict, dict]]:
    """{output name: (input, params)} of every table, figure and the report, as the rules."""
    res, config = tree.results, tree.config
    archs = list(config["archs"])
    fit = config["fit"]
    variants = expand_variants(config)

    def named(prefix):
        return [v for v in variants if v.startswith(prefix)]

    kap = {a: res / "kappa" / f"{a}.csv" for a in archs}
    lmax = {"base": config["archs"]["esen"]["hparams"].get("lmax", 4)}
    lmax.update({v: variants[v]["arch_settings"]["hparams"]["lmax"] for v in named("esen_lmax")})
    return {
        "table1": ({"fits": tree.fits}, {"fit": fit}),
        "table7": ({"fits": tree.fits}, {"fit": fit}),
        "allocation": (
            {"fits": tree.fits},
            {"budgets": fit.get("budgets_pflops", [1e-3, 1e-1, 10.0])},
        ),
        "table2": ({}, {"archs": sorted(set(archs) | {v["arch"] for v in variants.values()})}),
        **{
            f"table{n}": ({"_": [REPO / "config" / "paper.yaml"]}, {"arch": a})
            for n, a in (("3", "mpnn"), ("4", "egnn"), ("5", "esen"), ("6", "gemnet_oc"))
        },
        "fig1": ({"frontiers": tree.frontiers, "fits": tree.fits}, {"fit": fit}),
        "fig2": ({"points": tree.kappa_points, "kappas": tree.kappas}, {}),
        "fig3": (
            {
                "runs": _files(tree, base_archs=archs),
                "frontiers": tree.frontiers,
                "kappas": tree.kappas,
            },
            {"fit": fit},
        ),
        "fig4": (
            {"runs": _files(tree, named("esen_lmax"), ["esen"]), "kappas": [kap["esen"]]},
            {"fit": fit, "lmax": lmax},
        ),
        "fig5": ({"runs": _files(tree, base_archs=archs), "fits": tree.fits}, {"fit": fit}),
        "fig6": ({"fits": tree.fits}, {"fit": fit}),
        "fig7": (
            {"runs": _files(tree, ["symmetry_loss"], ["mpnn"]), "kappas": [kap["mpnn"]]},
            {
                "fit": fit,
                "forward_passes": 1 + variants["symmetry_loss"]["train"]["symmetry_loss_rotations"],
            },
        ),
        "fig8": (
            {"runs": _files(tree, ["multi_epoch", "multi_epoch_aug"]), "kappas": [kap["mpnn"]]},
            {"fit": fit},
        ),
        "fig9": (
            {
                "runs": _files(tree, ["multi_epoch_aug", "multi_epoch_esen"]),
                "kappas": [kap["mpnn"], kap["esen"]],
            },
            {"fit": fit},
        ),
        "fig10": (
            {"grid": _files(tree, named("lr_batch")), "sweep": _files(tree, named("depth_width"))},
            {},
        ),
        "fig11": ({"runs": _files(tree, named("vector_channels"))}, {}),
        "fig12": (
            {
                "runs": _files(tree, ["diverse_mpnn", "diverse_esen"]),
                "kappas": [kap["mpnn"], kap["esen"]],
            },
            {"fit": fit},
        ),
        "fig13": ({"_": tree.group_average}, {"fit": fit}),
        "fig14": ({"runs": _files(tree, base_archs=archs)}, {}),
        "fig15": ({"runs": _files(tree, ["absolute_positions"], ["mpnn"])}, {"fit": fit}),
        "fig16": ({"runs": _files(tree, ["transformer"])}, {"fit": fit}),
    }


def _output(res: Path, name: str) -> Path:
    if name.startswith("fig"):
        return res / "figures" / f"{name}.pdf"
    return res / f"{name}.csv"


def _run_script(script: Path, inputs: dict, params: dict, output: Path, log: Path) -> None:
    positional = inputs.pop("_", [])
    smk = SimpleNamespace(
        input=_Files(positional, **inputs),
        output=_Files([output]),
        log=_Files([log]),
        params=SimpleNamespace(**params),
        wildcards=SimpleNamespace(),
        threads=1,
    )
    runpy.run_path(str(script), init_globals={"snakemake": smk}, run_name="__snakemake__")


@pytest.fixture(scope="module")
def built(synthetic_tree, tmp_path_factory):
    """Run every report-stage script once; keep each figure (not closed) for inspection."""
    res = synthetic_tree.results
    figures: dict[str, list] = {}
    current: list = []
    real_close = plt.close

    def keep_open(fig=None):
        current.append(fig)

    outputs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt, "close", keep_open)
        for name, (inputs, params) in _jobs(synthetic_tree).items():
            script = name if not re.fullmatch(r"table[3-6]", name) else "ladder_table"
            out = _output(res, name)
            current.clear()
            _run_script(SCRIPTS / f"{script}.py", inputs, params, out, res / "logs" / f"{name}.log")
            outputs[name] = out
            figures[name] = [f for f in current if f is not None]
    tables = {n: p for n, p in outputs.items() if n.startswith("table")}
    figs = {n: p for n, p in outputs.items() if n.startswith("fig")}
    report = res / "report.md"
    _run_script(
        SCRIPTS / "report.py",
        {
            "tables": list(tables.values()),
            "figures": list(figs.values()),
            "fits": synthetic_tree.fits,
        },
        {"config": synthetic_tree.config},
        report,
        res / "logs" / "report.log",
    )
    yield {"outputs": outputs, "figures": figures, "report": report, "tree": synthetic_tree}
    for figs_ in figures.values():
        for f in figs_:
            real_close(f)


def test_every_target_is_built(built):
    names = {f"table{n}" for n in range(1, 8)} | {f"fig{n}" for n in range(1, 17)}
    assert names <= set(built["outputs"])
    for name, path in built["outputs"].items():
        assert path.is_file() and path.stat().st_size > 0, name


@pytest.mark.parametrize("n", range(1, 17))
def test_figure_pdf_and_axes(built, n):
    path = built["outputs"][f"fig{n}"]
    data = path.read_bytes()
    assert (
        data.startswith(b"%PDF")
        and data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type/Page")
        >= 1
    )
    (fig,) = built["figures"][f"fig{n}"]
    fig.canvas.draw()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.has_data(), f"fig{n}: empty axes {ax.get_title()!r}"
        for which, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            shown = [t for t in labels if t.get_visible() and t.get_text()]
            for t in shown:
                assert not re.search(r"\de[+-]\d", t.get_text()), (n, t.get_text())
            boxes = sorted(
                (t.get_window_extent() for t in shown), key=lambda b: b.x0 if which == "x" else b.y0
            )
            for a, b in zip(boxes, boxes[1:], strict=False):
                assert not a.overlaps(b), f"fig{n} {ax.get_title()!r}: {which} tick labels overlap"


def test_tables(built):
    out, archs = built["outputs"], list(built["tree"].config["archs"])
    t1 = pd.read_csv(out["table1"])
    assert {"arch", "param"} <= set(t1.columns) and set(t1["arch"]) == set(archs)
    t7 = pd.read_csv(out["table7"])
    assert set(t7["arch"]) == set(archs) and "alpha" in t7.columns
    t2 = pd.read_csv(out["table2"])
    assert list(t2.columns) == ["architecture", "characteristic", "tensor_order", "body_order"]
    assert len(t2) == len(set(archs) | {"transformer"})
    for n in range(3, 7):
        t = pd.read_csv(out[f"table{n}"])
        assert {"width", "n_params", "n_params_paper", "rel_diff"} <= set(t.columns) and len(t)
    assert len(pd.read_csv(out["allocation"])) >= 1


def test_report_links_resolve_and_laws_are_reported(built):
    report = built["report"]
    text = report.read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert len(links) == 7 + 16
    for link in links:
        assert (report.parent / link).is_file(), link
    assert "## Fitted laws" in text
    for arch in built["tree"].config["archs"]:
        assert f"| {arch} |" in text
