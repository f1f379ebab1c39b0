"""config/paper.yaml: valid, and its ladders rebuild Tables 3-6 within 2 % per rung."""

from pathlib import Path

import pytest
import yaml

from pipeline.config import check_config, expand_variants
from pipeline.tables import ladder_csv

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())


def test_paper_config_is_valid_and_complete():
    check_config(PAPER, ROOT / "workflow/schemas/config.schema.yaml")
    assert PAPER["inherit_defaults"] is False
    assert PAPER["fractions"] == pytest.approx([r / 10 for r in range(1, 11)])
    assert set(PAPER["archs"]) == {"mpnn", "egnn", "esen", "gemnet_oc"}
    assert {name.split("-")[0] for name in expand_variants(PAPER)} >= {
        "symmetry_loss", "multi_epoch", "multi_epoch_aug", "multi_epoch_esen", "esen_lmax2",
        "lr_batch_mpnn", "depth_width_mpnn", "vector_channels", "diverse_mpnn",
        "absolute_positions", "transformer",
    }  # fmt: skip


@pytest.mark.parametrize("arch", ["mpnn", "egnn", "esen", "gemnet_oc"])
def test_paper_ladders_match_tables_3_to_6(arch, tmp_path):
    section = PAPER["archs"][arch]
    table = ladder_csv(
        arch, section["widths"], section["paper_n_params"], section["hparams"], tmp_path / "t.csv"
    )
    assert len(table) == len(section["widths"])
    # eq. 9's MPNN counts 50.5 w fewer than Table 3 (2.9 % at w = 128; docs/ladders.yaml)
    tolerance = {"mpnn": 0.03}.get(arch, 0.02)
    assert (table["rel_diff"].abs() <= tolerance).all(), table
