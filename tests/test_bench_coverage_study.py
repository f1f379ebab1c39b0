"""Smoke test of benchmarks/bench_coverage_study.py: a study's own design and fit, resimulated."""

from __future__ import annotations

from pathlib import Path

from pipeline.scaling.fits import write_fit
from pipeline.scaling.synthetic import write_synthetic_study

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_coverage_study_prints_the_design_truth_and_coverage(tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    dirs = write_synthetic_study(
        results / "runs", "fam", n_params=(2e4, 6e4, 2e5, 6e5, 2e6, 6e6),
        fractions=(0.25, 0.5, 1.0), random_state=1,
    )  # fmt: skip
    write_fit(dirs, 2.0, results / "fits" / "fam.json", n_boot=20, full_top_k=20,
              compute="measured", extrapolation=False)  # fmt: skip
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_coverage_study

    csv = tmp_path / "rows.csv"
    bench_coverage_study.main(
        ["--results", str(results), "--archs", "fam", "--replicates", "2", "--n-boot", "10",
         "--full-top-k", "10", "--csv", str(csv)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "design: 6 widths (N 20000-6000000), fractions [0.25, 0.5, 1.0]" in out
    assert "shared passes" in out and "truth (Table 1's eq. 5 fit)" in out
    assert "identified  coverage_if_identified" in out  # coverage_table's identification columns
    rows = [line.split() for line in out.splitlines() if line.startswith(("alpha", "gamma_c"))]
    assert [r[0] for r in rows] == ["alpha", "gamma_c"]
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows)  # a coverage
    assert len(csv.read_text().splitlines()) == 3
    # the same study with a second seed at every rung, before training it
    bench_coverage_study.main(
        ["--results", str(results), "--archs", "fam", "--replicates", "1", "--n-boot", "10",
         "--full-top-k", "10", "--design", '{"seeds": [0, 1], "seed_widths": null}']
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "seeds [0, 1] (later seeds at N None)" in out


def test_bench_coverage_summarises_rows_of_halves_run_apart(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_coverage

    halves = []
    for first in (0, 1):
        halves.append(tmp_path / f"half{first}.csv")
        bench_coverage.main(
            ["--replicates", "1", "--first-replicate", str(first), "--layouts", "shared_3widths",
             "--units", "run", "--n-boot", "10", "--csv", str(halves[-1])]
        )  # fmt: skip
    capsys.readouterr()
    bench_coverage.main(["--rows", *map(str, halves)])
    out = capsys.readouterr().out
    assert out.startswith("2 replicates x 1 layouts x 1 units, rows of")
    # eq. 4 against gamma_c and against the design's noise-free frontier slope
    assert "gamma_eq4_design" in out and "gamma_eq4_bc" in out
    assert "the discrete ladder's bias" in out and "shared_3widths" in out
