"""Config validation: bad keys stop the study with one line naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import (
    ConfigError,
    check_config,
    expand_variants,
    merge_config,
    resolve_data_path,
    result_arch_settings,
    result_train_settings,
    seeds_at_width,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid(config):
    check_config(config, SCHEMA)


@pytest.mark.parametrize(
    "example", sorted((ROOT / "config/examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_example_overlays_are_valid(config, example):
    """Each example, laid over the default as ``--configfile`` lays it, is a valid study."""
    overlay = yaml.safe_load(example.read_text())
    assert overlay, f"{example.name} is empty"
    check_config(merge_config(config, overlay), SCHEMA)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["data"].update(sourse="demo"), "unknown key in 'data'"),
        (lambda c: c.update(extra_section=1), "unknown key in '<top level>'"),
        (lambda c: c["data"].update(val_size="many"), "'data.val_size'"),
        (lambda c: c["archs"]["mpnn"].update(widths=[8, -16]), "'archs.mpnn.widths[1]'"),
        (lambda c: c.update(fractions=[0.0, 0.5]), "'fractions[0]'"),
        (lambda c: c.update(fractions=[0.5, 1.5]), "'fractions[1]'"),
        (lambda c: c["data"].update(source="qm9"), "'data.source'"),
        # an unknown family needs its own model class (model: "package.module:Class")
        (lambda c: c["archs"].update(schnet=c["archs"]["mpnn"]), "schnet"),
        (lambda c: c["train"].update(shared_fraction_run=True, epochs=3), "shared_fraction_run"),
        (lambda c: c["data"].update(source="omol25", path=None), "'data.path'"),
        (lambda c: c.update(seeds=[0, 0]), "'seeds'"),
        (lambda c: c["archs"]["mpnn"].update(seeds=[-1]), "'archs.mpnn.seeds[0]'"),
        (lambda c: c["archs"]["mpnn"].update(seed_widths=[8, 48]), "'archs.mpnn.seed_widths'"),
        (lambda c: c["fit"].update(e_mode="maybe"), "'fit.e_mode'"),
        (lambda c: c["fit"].update(compute="guessed"), "'fit.compute'"),
        (lambda c: c["fit"].update(ema={"gemnet_oc": 1.0}), "'fit.ema.gemnet_oc'"),
        (lambda c: c["kappa"].update(flops="all"), "'kappa.flops'"),
        (lambda c: c["slurm"].update(acount="x"), "unknown key in 'slurm'"),
        (lambda c: c["slurm"]["cpu_jobs"].update(on_slurm="yes"), "'slurm.cpu_jobs.on_slurm'"),
    ],
)
def test_bad_config_names_the_key(config, edit, expected):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError) as error:
        check_config(bad, SCHEMA)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_seeds_at_width_replicates_only_the_named_rungs():
    assert seeds_at_width([0, 1, 2], None, 16) == [0, 1, 2]
    assert seeds_at_width([0, 1, 2], [8, 64], 16) == [0]
    assert seeds_at_width([3, 1], [8, 64], 64) == [3, 1]


def test_variants_inherit_seeds_and_resolve_data_paths_against_the_study(config):
    config = copy.deepcopy(config)
    config["data"].update(source="omol25", path="/data/omol25/neutral")
    config["seeds"] = [0, 1]
    config["archs"]["esen"]["seeds"] = [5]
    config["variants"] = {
        "diverse": {"arch": "mpnn", "data": {"neutral_only": False, "path": "../train_4M"}},
        "elsewhere": {"arch": "mpnn", "data": {"path": "/other/4M"}},
        "same_data": {"arch": "esen", "seeds": [7, 8], "seed_widths": [2]},
        "study_data": {"arch": "esen"},
    }
    variants = expand_variants(config)
    assert variants["diverse"]["data"]["path"] == "/data/omol25/train_4M"
    assert variants["diverse"]["seeds"] == [0, 1]
    assert variants["elsewhere"]["data"]["path"] == "/other/4M"
    assert variants["same_data"]["seeds"] == [7, 8]
    assert variants["same_data"]["seed_widths"] == [2]
    assert variants["study_data"]["seeds"] == [5]
    assert variants["study_data"]["data"]["path"] == "/data/omol25/neutral"
    assert not variants["study_data"]["own_data"]
    assert resolve_data_path(None, "../x") == "../x"


def test_runtime_settings_are_not_result_settings(config):
    kept = result_train_settings(config["train"])
    assert not set(kept) & {"threads", "device", "checkpoint_every_seconds"}
    assert kept["seed"] == config["train"]["seed"]


def test_lr_max_is_a_result_setting_only_where_it_binds(config):
    egnn = config["archs"]["egnn"]  # lr 0.01 at base width 16, capped at 0.04
    assert egnn["lr"] * egnn["base_width"] / 2 > egnn["lr_max"]
    assert result_arch_settings(egnn, 2)["lr_max"] == egnn["lr_max"]
    assert "lr_max" not in result_arch_settings(egnn, "4")  # 0.04: the cap does not bind
    assert "lr_max" not in result_arch_settings(egnn, 32)
    assert result_arch_settings(egnn) == egnn
    bad = copy.deepcopy(config)
    bad["archs"]["egnn"]["lr_max"] = 0
    with pytest.raises(ConfigError, match="archs.egnn.lr_max"):
        check_config(bad, SCHEMA)
