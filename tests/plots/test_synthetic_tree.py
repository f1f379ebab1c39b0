"""The synthetic results tree has the trainer's formats and the seed layout (contracts 1, 2)."""

from __future__ import annotations

import json

import pandas as pd

from pipeline.scaling.frontier import load_curves
from tests.synthetic_tree import CURVE_COLUMNS, default_config, write_synthetic_tree


def test_curve_columns_are_the_trainers():
    from pipeline.train.loop import CURVE_COLUMNS as TRAINER_COLUMNS

    assert CURVE_COLUMNS == list(TRAINER_COLUMNS)


def test_tree_layout_and_meta(tmp_path):
    config = default_config()
    config["seeds"] = [0, 1]
    for section in config["archs"].values():  # the study's seeds, not the default's own
        section.pop("seeds", None)
        section.pop("seed_widths", None)
    config["archs"]["mpnn"]["seed_widths"] = [8, 64]
    tree = write_synthetic_tree(tmp_path / "results", config, fits=False)
    res = tree.results
    assert (res / "data" / "summary.json").is_file() and (res / "data" / "stats.json").is_file()
    # seed 1 only at the replicated widths of the MPNN; every other arch has both seeds
    mpnn = sorted(p.relative_to(res).as_posix() for p in tree.run_dirs["base"]
                  if "/mpnn/" in p.as_posix() and p.name == "seed1")  # fmt: skip
    fractions = [f"{f:g}" for f in config["archs"]["mpnn"].get("fractions", config["fractions"])]
    assert mpnn == [f"runs/mpnn/{w}/{f}/seed1" for w in (64, 8) for f in sorted(fractions)]
    metas = [json.loads((d / "meta.json").read_text()) for d in tree.run_dirs["base"]]
    w_egnn = config["archs"]["egnn"]["widths"][0]
    egnn = [m for m in metas if m["arch"] == "egnn" and m["width"] == w_egnn and m["seed"] == 1]
    # a shared-fraction pass: one run_id for all its fractions, nested curves
    assert len(egnn) > 1 and {m["run_id"] for m in egnn} == {f"base/egnn/w{w_egnn}/seed1"}
    mp = [m for m in metas if m["arch"] == "mpnn" and m["width"] == 8 and m["seed"] == 0]
    assert len({m["run_id"] for m in mp}) == len(fractions) > 1  # one separate run each
    for m in metas:
        for key in ("seed", "run_id", "n_params", "device", "forward_flops_per_atom_total",
                    "forward_flops_per_atom_counted", "lr", "batch_size", "hparams"):  # fmt: skip
            assert key in m
    curves = load_curves(tree.run_dirs["base"])
    assert set(curves["arch"]) == set(config["archs"])
    for d in tree.run_dirs["symmetry_loss"]:
        assert "train_symmetry_loss" in pd.read_csv(d / "curve.csv").columns
    points = pd.read_csv(res / "kappa" / "mpnn_points.csv")
    assert points["molecules"].nunique() >= 2  # D varied
    kappa = pd.read_csv(res / "kappa.csv")
    assert {"arch", "kappa", "flops_mode", "r2_log", "worst_rel_residual", "n_points"} <= set(
        kappa.columns
    )
    assert len(tree.group_average) == len(config["archs"]["mpnn"]["widths"])


def test_fixture_writes_frontiers_and_fits(synthetic_tree):
    assert len(synthetic_tree.fits) == len(synthetic_tree.config["archs"])
    for path in synthetic_tree.fits + synthetic_tree.frontiers:
        assert path.is_file()
    fit = json.loads(synthetic_tree.fits[0].read_text())
    assert fit["n_boot"] == 8
