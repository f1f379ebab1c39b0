"""Snakemake's native report (`snakemake --report results/report.html`) from a results tree.

The tree is tests/synthetic_tree.py's (run folders, kappa, data summaries in the real
formats), plus placeholder figures, tables and fit JSONs where the report reads only
that a file exists: what is checked here is that every table and figure of `all` is
registered with its category and a caption rendered from the config, not how a figure
looks (tests/plots/ checks that).
"""

from __future__ import annotations

import html as html_module
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.synthetic_tree import default_config, write_synthetic_tree

ROOT = Path(__file__).resolve().parents[1]
FIGURES = [f"Figure {n}" for n in range(1, 17)]
TABLES = [f"Table {n}" for n in range(1, 8)] + ["kappa", "Compute-optimal allocation"]
CATEGORIES = ["Main study", "Symmetry experiments", "Sweeps", "Ladders", "Data"]


def _placeholder_pdf(path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title(label)
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> tuple[Path, dict]:
    """`snakemake --report` of `all` over a synthetic tree; returns (html, config)."""
    folder = tmp_path_factory.mktemp("report")
    config = default_config()
    config["fit"]["n_boot"] = 123  # a value the captions must show
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    results = folder / "results"
    write_synthetic_tree(results, config, fits=False)
    for arch in config["archs"]:
        fit = results / "fits" / f"{arch}.json"
        fit.parent.mkdir(parents=True, exist_ok=True)
        fit.write_text(json.dumps({"arch": arch, "identified": False}))
    for n in range(1, 17):
        _placeholder_pdf(results / "figures" / f"fig{n}.pdf", f"fig{n}")
    for name in [f"table{n}" for n in range(1, 8)] + ["allocation"]:
        (results / f"{name}.csv").write_text("arch,value\nmpnn,1.0\n")
    html = folder / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
         "--report", str(html), "all"],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert html.exists()
    return html, config


def test_report_names_every_figure_table_and_category(report_html):
    html, config = report_html
    text = html.read_text()
    missing = [name for name in FIGURES + TABLES + CATEGORIES if name not in text]
    assert not missing, missing
    for arch in config["archs"]:
        assert f"fit {arch}" in text
    assert "data summary" in text
    for variant, spec in config["variants"].items():
        if spec.get("data"):
            assert f"data summary {variant}" in text


def test_captions_read_the_config(report_html):
    """Captions are Jinja templates over the config: the values used, not hard-coded."""
    text = report_html[0].read_text()
    assert "123 bootstrap resamples" in text
    assert "{{" not in text and "snakemake.config" not in text


# What each category of the rendered report lists (labels of workflow/rules/*.smk).
ENTRIES = {
    "Main study": [f"Figure {n}" for n in (1, 2, 3, 5, 6, 14)]
    + ["Table 1", "Table 7", "kappa", "Compute-optimal allocation", "fit mpnn"],
    "Symmetry experiments": [f"Figure {n}" for n in (4, 7, 8, 9, 12, 13, 15, 16)],
    "Sweeps": ["Figure 10", "Figure 11"],
    "Ladders": [f"Table {n}" for n in range(2, 7)],
    "Data": ["data summary"],
}

# Appended to a copy of the report: once the app has rendered, click the category's menu
# entry and write what the page then shows into <pre id="probe">.
PROBE = """
<script>
window.addEventListener('load', function () {
  setTimeout(function () {
    var hits = Array.prototype.filter.call(document.querySelectorAll('*'), function (e) {
      return e.children.length === 0 && e.textContent.trim() === %s; });
    if (hits.length) { hits[0].click(); }
    setTimeout(function () {
      var out = document.createElement('pre');
      out.id = 'probe';
      out.textContent = document.body.innerText;
      document.body.appendChild(out);
    }, 2000);
  }, 3000);
});
</script>
"""


def _chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser")
                 if shutil.which(name)), None)  # fmt: skip


def _rendered_after_click(chromium: str, html: Path, category: str, tmp_path: Path) -> str:
    head, body_end, tail = html.read_text().rpartition("</body>")
    probe = tmp_path / f"probe_{category.replace(' ', '_')}.html"
    probe.write_text(head + PROBE % json.dumps(category) + body_end + tail)
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the report did not render in chromium: {result.stdout[:2000]}"
    return html_module.unescape(match.group(1))


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    """The report is a JavaScript application: render it in headless Chromium, open each
    category and find each figure's and table's entry on the page."""
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium (.ci/run installs Debian's package)")
        pytest.skip("no chromium on PATH (Debian package `chromium`)")
    for category, entries in ENTRIES.items():
        page = _rendered_after_click(chromium, report_html[0], category, tmp_path)
        missing = [entry for entry in entries if entry not in page]
        assert not missing, (category, missing, page[:2000])
