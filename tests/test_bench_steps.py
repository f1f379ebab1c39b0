"""Smoke test of benchmarks/bench_steps.py (issue 16): one step per model, no fairchem."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_steps_prints_a_row_per_family(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_steps

    bench_steps.main(["--repeats", "1", "--warmup", "0", "--batches", "1", "--fairchem-lmax"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model (config.yaml settings)")
    for label in ("MPNN w", "EGNN w", "eSEN C", "GemNet-OC w", "transformer w"):
        assert any(row.startswith(f"| {label}") for row in rows), label
    # the "before" models agree with today's in float64 wherever git has their revision
    for line in out.splitlines():
        if "max relative difference" in line:
            assert float(line.rsplit(" ", 1)[1]) < 1e-10, line
    assert sys.modules["bench_steps"].BEFORE.keys() == {"esen", "gemnet_oc"}
