"""Tables 2-6 helpers and the Markdown summary report."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import summary, tables
from pipeline.models import REGISTRY

LADDERS = Path(__file__).resolve().parents[1] / "docs" / "ladders.yaml"

# Paper Table 2 (plus the appendix K transformer): name, characteristic, l, nu.
PAPER_TABLE2 = {
    "mpnn": ("Unconstrained MPNN", "unconstrained", "-", "2"),
    "gemnet_oc": ("GemNet-OC", "invariant", "0", "4"),
    "egnn": ("EGNN", "equivariant", "1", "2"),
    "esen": ("eSEN", "equivariant", ">=2", "2"),
    "transformer": ("Vanilla transformer", "unconstrained", "-", "-"),
}


def _importable(arch: str) -> bool:
    return importlib.util.find_spec(REGISTRY[arch].split(":")[0]) is not None


@pytest.mark.parametrize("arch", sorted(PAPER_TABLE2))
def test_table2_rows_match_the_paper(arch):
    if not _importable(arch):
        pytest.skip(f"{REGISTRY[arch]} not in this checkout yet")
    t = tables.table2([arch])
    assert list(t.columns) == list(tables.TABLE2_COLUMNS)
    assert tuple(t.iloc[0]) == PAPER_TABLE2[arch]


def test_table2_all_registry_archs_in_order():
    archs = [a for a in REGISTRY if _importable(a)]
    t = tables.table2(archs)
    assert list(t["architecture"]) == [PAPER_TABLE2[a][0] for a in archs]
    if len(archs) == len(REGISTRY):
        assert len(t) == 5


def test_write_table2_round_trips(tmp_path):
    t = tables.write_table2(["egnn", "mpnn"], tmp_path / "t" / "table2.csv")
    back = pd.read_csv(tmp_path / "t" / "table2.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(back, t)


def test_table2_unknown_arch():
    with pytest.raises(ValueError, match="unknown arch 'schnet'"):
        tables.table2(["mpnn", "schnet"])


def test_table2_reads_a_user_class_named_in_the_config():
    """archs.schnet.model: "examples.schnet:SchNet" gives Table 2 a row from its class."""
    t = tables.table2({"mpnn": "mpnn", "schnet": "examples.schnet:SchNet"})
    assert list(t["architecture"])[1] == "schnet"
    assert t.iloc[1][["characteristic", "tensor_order", "body_order"]].tolist() == [
        "invariant",
        "0",
        "2",
    ]


def test_ladder_csv_measures_table3_counts(tmp_path):
    from pipeline import models

    spec = yaml.safe_load(LADDERS.read_text())["mpnn"]
    paper = {128: 222404, 256: 838020}
    out = tmp_path / "table3.csv"
    t = tables.ladder_csv("mpnn", [128, 256], paper, spec["hparams"], out)
    back = pd.read_csv(out)
    built = [
        models.num_params(models.build("mpnn", width=w, **spec["hparams"])) for w in (128, 256)
    ]
    assert list(back["width"]) == [128, 256]
    assert list(back["n_params"]) == built  # measured from the built model
    assert list(back["n_params_paper"]) == [222404, 838020]
    np.testing.assert_allclose(back["rel_diff"], np.array(built) / [222404, 838020] - 1, atol=1e-4)
    assert (back["rel_diff"].abs() < 0.05).all() and (back["depth"] == 5).all()
    assert t["n_params"].tolist() == back["n_params"].tolist()
    # a different rung changes the count (the table is measured, not copied)
    t2 = tables.ladder_csv("mpnn", [129], {"129": 222404}, spec["hparams"], tmp_path / "x.csv")
    assert t2["n_params"].iloc[0] != built[0]


def test_captions_cover_every_target():
    names = [f"table{i}" for i in range(1, 8)] + [f"fig{i}" for i in range(1, 17)]
    assert sorted(summary.CAPTIONS) == sorted(names)
    assert all(summary.CAPTIONS[n].strip() and "\n" not in summary.CAPTIONS[n] for n in names)


def test_write_report(tmp_path):
    res = tmp_path / "results"
    (res / "figures").mkdir(parents=True)
    pd.DataFrame({"arch": ["mpnn", "esen"], "alpha": [0.27612, 0.8]}).to_csv(
        res / "table7.csv", index=False
    )
    tables.table2(["mpnn", "egnn"]).to_csv(res / "table2.csv", index=False)
    for n in (10, 2):
        (res / "figures" / f"fig{n}.pdf").write_bytes(b"%PDF-1.4 stub")
    out = summary.write_report(
        res / "report.md",
        {"table7": res / "table7.csv", "table2": res / "table2.csv"},
        {"fig10": res / "figures" / "fig10.pdf", "fig2": res / "figures" / "fig2.pdf"},
        {"data": {"source": "demo"}, "fractions": [0.25, 1.0]},
        {"code_version": "abc123-dirty", "torch": "2.13.0"},
    )
    text = out.read_text()
    # tables in numeric order, rendered, with captions
    assert text.index("### Table 2") < text.index("### Table 7")
    assert summary.CAPTIONS["table7"] in text
    assert "| mpnn | 0.2761 |" in text
    assert "| Unconstrained MPNN | unconstrained | - | 2 |" in text
    # figures in numeric order, linked relative to the report
    assert re.search(r"\*\*Figure 2\*\* \(\[fig2.pdf\]\(figures/fig2.pdf\)\)", text)
    assert text.index("**Figure 2**") < text.index("**Figure 10**")
    assert summary.CAPTIONS["fig10"] in text
    # config as YAML, versions
    block = text.split("```yaml\n")[1].split("```")[0]
    assert yaml.safe_load(block) == {"data": {"source": "demo"}, "fractions": [0.25, 1.0]}
    assert "| code_version | abc123-dirty |" in text


def test_write_report_names_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"figure 'fig3': .*fig3.pdf does not exist"):
        summary.write_report(tmp_path / "r.md", {}, {"fig3": tmp_path / "fig3.pdf"}, {}, {})


def test_write_report_orders_the_families_by_gamma(tmp_path):
    rows = []
    for arch, v in (("esen", 0.35), ("mpnn", 0.2)):
        rows.append({"arch": arch, "param": "gamma_c", "eq4": v, "eq4_lo": v - 0.01,
                     "eq4_hi": v + 0.01, "eq7": float("nan"), "eq7_lo": float("nan"),
                     "eq7_hi": float("nan"), "note": ""})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "table1.csv", index=False)
    text = summary.write_report(
        tmp_path / "report.md", {"table1": tmp_path / "table1.csv"}, {}, {}, {}
    ).read_text()
    section = text.split("## Family ordering of gamma_c")[1].split("## Configuration")[0]
    row = "| eq. 4 | mpnn | esen | 0.2 [0.19, 0.21] | 0.35 [0.34, 0.36] | True | agrees |"
    assert row in section
    assert "eq. 7" not in section.split("|", 1)[1]  # no identified eq. 7 pair
