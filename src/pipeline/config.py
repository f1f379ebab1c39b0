"""Config validation with one-line errors that name the key and the problem."""

from __future__ import annotations

import os
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
        _check_variants(config, schema)
        return
    error = jsonschema.exceptions.best_match(errors)
    _raise_for(error)


def _raise_for(error: jsonschema.ValidationError, prefix: str = "") -> None:
    where = ".".join(part for part in (prefix, _key_path(error)) if part and part != "<top level>")
    where = where or "<top level>"
    if error.validator == "additionalProperties":
        raise ConfigError(f"config: unknown key in '{where}': {error.message}")
    raise ConfigError(f"config key '{where}': {error.message}")


def _check_consistency(config: dict) -> None:
    """Cross-key rules a JSON schema cannot express."""
    sections = {"train": config.get("train", {})}
    for arch, section in config.get("archs", {}).items():
        sections[f"archs.{arch}.train"] = merge_config(sections["train"], section.get("train", {}))
    for where, train in sections.items():
        if train.get("shared_fraction_run") and train.get("epochs", 1) != 1:
            raise ConfigError(
                f"config key '{where}.shared_fraction_run': needs epochs 1 (a multi-pass run "
                "over fraction 1.0 does not pass through a smaller fraction's final state)"
            )
    for arch, section in config.get("archs", {}).items():
        stray = sorted(set(section.get("seed_widths") or ()) - set(section.get("widths", ())))
        if stray:
            raise ConfigError(
                f"config key 'archs.{arch}.seed_widths': {stray} not in the ladder "
                f"{section.get('widths')}"
            )
    if config.get("data", {}).get("source") in ("omol25", "extxyz") and not config["data"].get(
        "path"
    ):
        raise ConfigError(
            f"config key 'data.path': source {config['data']['source']!r} needs a path"
        )


def _check_variants(config: dict, schema: dict) -> None:
    """Each expanded variant's merged train, data and arch sections obey the schema."""
    sections = {
        "train": schema["properties"]["train"],
        "data": schema["properties"]["data"],
        "arch_settings": {
            **schema["$defs"]["arch"],
            "required": ["base_width", "lr", "batch_size"],
        },
    }
    train_schema = jsonschema.Draft202012Validator({**sections["train"], "$defs": schema["$defs"]})
    for arch, section in config["archs"].items():
        merged = merge_config(config["train"], section.get("train", {}))
        error = jsonschema.exceptions.best_match(train_schema.iter_errors(merged))
        if error is not None:
            _raise_for(error, prefix=f"archs.{arch}.train")
    for name, variant in expand_variants(config).items():
        for key, subschema in sections.items():
            validator = jsonschema.Draft202012Validator({**subschema, "$defs": schema["$defs"]})
            error = jsonschema.exceptions.best_match(validator.iter_errors(variant[key]))
            if error is not None:
                _raise_for(error, prefix=f"variants.{name.split('-')[0]}.{key}")


# Train keys that say how a job runs, not what it computes: they reach the trainer through
# Snakemake's threads/resources (contract 6), never through params, so that editing them
# reruns nothing.
RUNTIME_TRAIN_KEYS = ("threads", "device", "checkpoint_every_seconds")


def result_train_settings(train: dict) -> dict:
    """The train section without the keys that do not change a run's result.

    Parameters
    ----------
    train : dict
        A merged train section (``config['train']`` with an arch's or variant's overrides).

    Returns
    -------
    dict
        The same section without ``threads``, ``device`` and ``checkpoint_every_seconds``.
    """
    return {key: value for key, value in train.items() if key not in RUNTIME_TRAIN_KEYS}


def mup_learning_rate(
    lr_base: float, base_width: int, width: int, lr_max: float | None = None
) -> float:
    """eta(w) = eta* * w_base / w (Yang et al. 2021, as in section 3.3 of the paper), at
    most ``lr_max``: the 1/w rule grows without bound at the narrowest widths, where a
    few-channel model no longer behaves like the wide one the rate was tuned on."""
    if width <= 0 or base_width <= 0:
        raise ValueError(f"widths must be positive, got width={width}, base_width={base_width}")
    if lr_max is not None and lr_max <= 0:
        raise ValueError(f"lr_max must be positive, got {lr_max}")
    lr = lr_base * base_width / width
    return lr if lr_max is None else min(lr, lr_max)


def result_arch_settings(settings: dict, width: int | str | None = None) -> dict:
    """An arch's model and optimizer settings as one width's run sees them.

    ``lr_max`` is kept only where it binds (``lr * base_width / width > lr_max``): a cap
    that leaves a run's learning rate unchanged does not change its result, so adding or
    moving it reruns only the capped widths. Without ``width`` (the whole ladder) the
    settings are returned unchanged.
    """
    cap = settings.get("lr_max")
    if (
        cap is None
        or width is None
        or mup_learning_rate(settings["lr"], settings["base_width"], int(width)) > cap
    ):
        return dict(settings)
    return {key: value for key, value in settings.items() if key != "lr_max"}


def seeds_at_width(seeds: list[int], seed_widths: list[int] | None, width: int) -> list[int]:
    """The seeds trained at one width of a ladder.

    Parameters
    ----------
    seeds : list of int
        The family's seeds (``archs.<arch>.seeds``, else the study's ``seeds``).
    seed_widths : list of int or None
        Widths at which the seeds after the first are trained (a rung replicated alone);
        None trains every seed at every width.
    width : int
        The rung.

    Returns
    -------
    list of int
        ``seeds[0]`` always, the others when ``width`` is in ``seed_widths`` (or it is None).

    Examples
    --------
    >>> seeds_at_width([0, 1, 2], [8, 64], 16), seeds_at_width([0, 1, 2], [8, 64], 64)
    ([0], [0, 1, 2])
    """
    if seed_widths is None or int(width) in {int(w) for w in seed_widths}:
        return [int(seed) for seed in seeds]
    return [int(seeds[0])]


def arch_seeds(config: dict, arch: str) -> tuple[list[int], list[int] | None]:
    """(seeds, seed_widths) of a base family: its own keys, else the study's ``seeds``."""
    section = config["archs"][arch]
    return list(section.get("seeds") or config.get("seeds") or [0]), section.get("seed_widths")


def resolve_data_path(study_path: str | None, variant_path: str | None) -> str | None:
    """A variant's data path: absolute as given, relative to the study's ``data.path``.

    One ``data.path`` then reaches every extraction: config/paper.yaml's diverse split
    is ``../train_4M``, the OMol25 folder beside the neutral subset.

    Examples
    --------
    >>> resolve_data_path("/data/omol25/neutral", "../train_4M")
    '/data/omol25/train_4M'
    >>> resolve_data_path("/data/omol25/neutral", "/elsewhere/4M")
    '/elsewhere/4M'
    """
    if variant_path is None:
        return study_path
    if Path(variant_path).is_absolute() or study_path is None:
        return variant_path
    return os.path.normpath(os.path.join(study_path, variant_path))


def merge_config(base: dict, override: dict) -> dict:
    """Recursive dict merge: ``override`` wins, nested dicts merge."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand_variants(config: dict) -> dict[str, dict]:
    """Every variant of the train rule, with its sweep expanded, fully specified.

    A ``variants.<name>`` entry names an ``arch`` and overrides the ``archs.<arch>``
    section (``arch_settings``, merged recursively, so ``hparams`` merge too), the
    ``train`` and ``data`` sections, the ``widths``, the ``fractions`` and the
    ``seeds``. A ``sweep`` (a list of ``arch_settings`` overrides, each with an optional
    ``width``) expands into one variant per entry, named ``<name>-<key><value>...``.

    Returns
    -------
    dict
        {variant name: {"arch", "widths", "fractions", "arch_settings", "train",
        "data", "own_data", "seeds", "seed_widths"}}; ``own_data`` is True when the
        variant changes the data section, so that it gets its own extraction; a relative
        ``data.path`` is resolved against the study's (``resolve_data_path``); ``seeds``
        and ``seed_widths`` default to the arch's, then to the study's ``seeds``.
    """
    variants = {}
    for name, spec in (config.get("variants") or {}).items():
        arch = spec["arch"]
        base_arch = config["archs"].get(arch, {})
        settings = merge_config(base_arch, spec.get("arch_settings", {}))
        for key in ("widths", "fractions", "train", "paper_n_params", "seeds", "seed_widths"):
            settings.pop(key, None)
        missing = [k for k in ("base_width", "lr", "batch_size") if k not in settings]
        if missing:
            raise ConfigError(
                f"config key 'variants.{name}.arch_settings': arch {arch!r} is not in 'archs', "
                f"so the variant must set {missing}"
            )
        widths = spec.get("widths") or base_arch.get("widths")
        if not widths:
            raise ConfigError(f"config key 'variants.{name}.widths': needed for arch {arch!r}")
        common = {
            "arch": arch,
            "fractions": spec.get("fractions") or base_arch.get("fractions") or config["fractions"],
            "train": merge_config(
                merge_config(config["train"], base_arch.get("train", {})), spec.get("train", {})
            ),
            "data": {
                **merge_config(config["data"], spec.get("data", {})),
                "path": resolve_data_path(
                    config["data"].get("path"), spec.get("data", {}).get("path")
                ),
            },
            "own_data": bool(spec.get("data")),
            "seeds": list(
                spec.get("seeds") or base_arch.get("seeds") or config.get("seeds") or [0]
            ),
            "seed_widths": spec.get("seed_widths", base_arch.get("seed_widths")),
        }
        for entry in spec.get("sweep") or [{}]:
            entry = dict(entry)
            entry_width = entry.pop("width", None)
            suffix = "".join(
                f"-{_short(key)}{_label(value)}" for key, value in _flatten(entry).items()
            )
            if entry_width is not None:
                suffix += f"-w{entry_width}"
            variants[name + suffix] = {
                **common,
                "widths": [entry_width] if entry_width is not None else list(widths),
                "arch_settings": merge_config(settings, entry),
            }
    return variants


_SHORT = {"batch_size": "bs", "lr": "lr", "num_layers": "depth", "vector_channels": "E"}


def _short(key: str) -> str:
    return _SHORT.get(key.rsplit(".", 1)[-1], key.rsplit(".", 1)[-1])


def _flatten(entry: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
