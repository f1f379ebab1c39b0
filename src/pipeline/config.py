"""Config validation with one-line errors that name the key and the problem."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value the study cannot run with."""


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<top level>"


def check_config(config: dict, schema_path: str | Path) -> None:
    """Raise ``ConfigError`` with one line per config naming the first bad key.

    Parameters
    ----------
    config : dict
        The merged Snakemake config.
    schema_path : path
        ``workflow/schemas/config.schema.yaml``.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        _check_consistency(config)
        return
    error = jsonschema.exceptions.best_match(errors)
    if error.validator == "additionalProperties":
        where = _key_path(error)
        raise ConfigError(f"config: unknown key in '{where}': {error.message}")
    raise ConfigError(f"config key '{_key_path(error)}': {error.message}")


def _check_consistency(config: dict) -> None:
    """Cross-key rules a JSON schema cannot express."""
    train = config.get("train", {})
    if train.get("shared_fraction_run") and train.get("epochs", 1) != 1:
        raise ConfigError(
            "config key 'train.shared_fraction_run': needs train.epochs 1 (a multi-pass run "
            "over fraction 1.0 does not pass through a smaller fraction's final state)"
        )
    if config.get("data", {}).get("source") in ("omol25", "extxyz") and not config["data"].get(
        "path"
    ):
        raise ConfigError(
            f"config key 'data.path': source {config['data']['source']!r} needs a path"
        )
