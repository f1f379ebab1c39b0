"""Config validation: bad keys stop the study with one line naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, check_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid(config):
    check_config(config, SCHEMA)


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
        (lambda c: c["archs"].update(schnet=c["archs"]["mpnn"]), "'archs'"),
        (lambda c: c["train"].update(shared_fraction_run=True, epochs=3), "shared_fraction_run"),
        (lambda c: c["data"].update(source="omol25", path=None), "'data.path'"),
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
