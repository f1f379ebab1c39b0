"""The README names only things that exist: commands, targets, config keys, paths, columns.

Everything is parsed from README.md, so a renamed key, a removed target or a column that
no code writes fails here instead of drifting silently.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import check_config, merge_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
SCHEMA_PATH = ROOT / "workflow/schemas/config.schema.yaml"
FILE_SUFFIX = r"\.(csv|json|pdf|h5|md|yaml|py|html|tsv|pt|log|smk)$"
# Snakemake's own options that take a value (the word after them is not a target).
VALUE_OPTIONS = {
    "--cores", "-c", "--jobs", "-j", "--profile", "--configfile", "--config", "--workflow-profile",
    "--set-resources", "--slurm-qos", "--report", "--rerun-triggers", "--quiet", "--directory",
    "--slurm-status-command", "--default-resources", "--until", "--forcerun", "-R",
}  # fmt: skip


def _code_blocks(lang: str | None = None) -> list[str]:
    blocks = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S)
    indented = re.findall(r"(?:\n\n)((?: {4}\S.*\n)+)", README)
    found = [body for tag, body in blocks if lang is None or tag == lang]
    if lang in (None, "bash"):
        found += ["\n".join(line[4:] for line in block.splitlines()) for block in indented]
    return found


def _command_lines(program: str) -> list[str]:
    """Command lines starting with ``program`` in the README's code blocks (joined at \\)."""
    lines = []
    for block in _code_blocks():
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            line = line.split("&&")[-1].strip()
            if line.startswith(program + " "):
                lines.append(line)
    return lines


def _resolve(node: dict) -> dict:
    """``node`` with its ``$ref`` and ``allOf``/``anyOf``/``oneOf`` parts merged in."""
    if "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**_resolve(target), **{k: v for k, v in node.items() if k != "$ref"}}
    merged = dict(node)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for part in node.get(combinator, []):
            part = _resolve(part)
            merged["properties"] = {**part.get("properties", {}), **merged.get("properties", {})}
            for key in ("additionalProperties", "items"):
                if key in part and key not in merged:
                    merged[key] = part[key]
    return merged


def _schema_node(path: list[str]) -> dict | None:
    """The schema of config key ``path`` (``<name>`` matches any mapping key), or None."""
    node = _resolve(SCHEMA)
    for key in path:
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        if key in props:
            node = props[key]
        elif (key.startswith("<") or not props or key not in props) and isinstance(extra, dict):
            node = extra
        else:
            return None
        node = _resolve(node)
    return node


def test_config_keys_named_in_the_readme_exist_in_the_schema():
    roots = set(SCHEMA["properties"])
    keys = {
        token
        for token in re.findall(r"`([a-z_]+(?:\.(?:[a-z_0-9]+|<[a-z]+>|\*))+)`", README)
        if token.split(".")[0] in roots and not re.search(FILE_SUFFIX, token)
    }
    assert keys, "the README names no config key"
    missing = [
        key for key in sorted(keys) if _schema_node(key.removesuffix(".*").split(".")) is None
    ]
    assert not missing, f"README names config keys the schema does not have: {missing}"


def _config_blocks() -> list[dict]:
    roots = set(SCHEMA["properties"])
    configs = []
    for block in _code_blocks("yaml"):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and data and set(data) <= roots:
            configs.append(data)
    return configs


def test_config_snippets_in_the_readme_validate():
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    snippets = _config_blocks()
    assert snippets, "the README shows no config snippet"
    for snippet in snippets:
        check_config(merge_config(base, snippet), SCHEMA_PATH)


def _rule_names() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def _snakemake_targets() -> tuple[set[str], set[str]]:
    """(rule targets, file targets) of the README's snakemake commands."""
    rules, files = set(), set()
    for line in _command_lines("snakemake"):
        words = shlex.split(line.rstrip("\\"))[1:]
        skip = False
        for word in words:
            if skip:
                skip = word.startswith("-") is False and "=" in word  # --set-resources a=1 b=2
                if not skip:
                    continue
            if word in VALUE_OPTIONS:
                skip = True
                continue
            if word.startswith("-") or "=" in word or "<" in word or word.endswith(".yaml"):
                continue
            (files if "/" in word or "." in word else rules).add(word)
    return rules, files


def test_snakemake_targets_named_in_the_readme_exist():
    rule_targets, file_targets = _snakemake_targets()
    assert rule_targets and file_targets
    # rule names given in backticks as targets (`fig1`, `table7`, ...)
    rule_targets |= set(re.findall(r"`((?:fig|table)\d+|report|plan|all|main)`", README))
    missing = sorted(rule_targets - _rule_names())
    assert not missing, f"README names targets that are no rule: {missing}"
    default_files = sorted(f for f in file_targets if f.startswith("results/"))
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--", *default_files],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_python_commands_in_the_readme_exist():
    modules = {m for line in _command_lines("python") for m in re.findall(r"-m ([\w.]+)", line)}
    scripts = {
        s for line in _command_lines("python") for s in re.findall(r"(benchmarks/\w+\.py)", line)
    }
    assert modules and scripts
    assert not [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert not [s for s in sorted(scripts) if not (ROOT / s).is_file()]


def test_repository_paths_named_in_the_readme_exist():
    pattern = r"`((?:workflow|config|slurm|docs|benchmarks|tests|src|\.ci|examples)/[\w./-]*)`"
    paths = set(re.findall(pattern, README))
    assert paths
    missing = [p for p in sorted(paths) if "<" not in p and not (ROOT / p).exists()]
    assert not missing, f"README names paths that do not exist: {missing}"


def _code_text() -> str:
    parts = []
    for folder in ("src", "workflow", "benchmarks", "slurm", "config", ".ci", "tests", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.name == "test_readme.py":  # names its own exceptions
                continue
            if path.suffix in {".py", ".smk", ".yaml", ".yml", ".sh", ".rst"} or path.name == "run":
                parts.append(path.read_text(errors="ignore"))
    parts.append((ROOT / "Snakefile").read_text())
    parts.append((ROOT / "config.yaml").read_text())
    return "\n".join(parts)


@pytest.fixture(scope="module")
def code_text() -> str:
    return _code_text()


def test_identifiers_named_in_the_readme_appear_in_the_code(code_text):
    """Every snake_case name in backticks (columns, JSON keys, functions) is in the code."""
    names = set()
    external = {
        "OUT_OF_MEMORY",
        "slurm_logs",
        "rule_train",
        "rule_train_variant",
    }  # SLURM's and Snakemake's names
    for span in re.findall(r"`([^`\n]+)`", README):
        for token in re.split(r"[\s,()=\[\]{}:/]+", span):
            token = token.strip(".*")
            if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+", token):
                names.add(token)
    assert len(names) > 20
    missing = [name for name in sorted(names - external) if name not in code_text]
    assert not missing, f"README names identifiers no code uses: {missing}"
