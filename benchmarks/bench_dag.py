"""Time the dry run of the paper's full study and print its job count.

    python benchmarks/bench_dag.py

The baseline measured in the same run is the dry run of the default study's main
target; the ratio says how much more the full study costs to plan.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dry_run(target: str, *configfiles: str) -> tuple[float, int]:
    start = time.perf_counter()
    extra = ["--configfile", *configfiles] if configfiles else []
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "-n", "--forceall", "--quiet", "rules",
         *extra],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    total = re.search(r"^total\s+(\d+)", result.stdout, re.MULTILINE)
    return seconds, int(total.group(1)) if total else -1


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = Path(folder) / "paths.yaml"
        paths.write_text(
            f"data: {{path: {folder}}}\nvariants:\n"
            f"  diverse_mpnn: {{arch: mpnn, data: {{neutral_only: false, path: {folder}}}}}\n"
            f"  diverse_esen: {{arch: esen, data: {{neutral_only: false, path: {folder}}}}}\n"
        )
        base_seconds, base_jobs = dry_run("main")
        paper_seconds, paper_jobs = dry_run("all", str(ROOT / "config/paper.yaml"), str(paths))
    print(f"default study, main target: {base_jobs:5d} jobs planned in {base_seconds:5.1f} s")
    print(f"paper study, all targets:   {paper_jobs:5d} jobs planned in {paper_seconds:5.1f} s")
    print(f"ratio paper/default: {paper_seconds / base_seconds:.2f}x time, goal < 20 s")


if __name__ == "__main__":
    main()
