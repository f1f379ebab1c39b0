"""Our GemNet-OC against fairchem-core 1.10's GemNet-OC: training comparison and step time.

Issue 13 item 6. Both models are built from the demo's GemNet-OC settings
(``archs.gemnet_oc`` of ``--config``, default config.yaml: 2 blocks, 6 Angstrom / 30
neighbour graph, 16 radial functions, small basis and bilinear sizes) and compared at
equal width, where the parameter counts are identical (checked and printed; also at the
paper's sizes: 937,280 at width 64, Table 6).

Training (target: our validation loss within 5 % of fairchem's): the same batches of
demo molecules as benchmarks/bench_fairchem.py (``training_data``: ``--train-steps``
of ``--train-batch`` molecules, energies referenced and normalised, forces divided by
the same sigma), the eq. 1 loss (per-atom energy MAE + per-molecule mean force L2
norm), schedule-free AdamW with the demo's learning rate at its base width
(``archs.gemnet_oc.lr`` at ``base_width``), ``--warmup-steps``, no weight decay, the same
``--model-seed`` on both sides (the two initialisations draw different numbers).
Before training each side fits its scale factors on the first training batch: ours
with ``GemNetOC.prepare`` (as the trainer does on a fresh run),
fairchem with its own ``ScaleFactor`` procedure (factors ordered by a first forward
pass, then fitted one at a time, each on a forward pass with the earlier ones fitted:
``fairchem.core.modules.scaling.fit``, here on that one batch instead of 16). The
validation loss on the first ``--val-molecules`` validation molecules is printed every
``--eval-every`` steps (schedule-free averaged weights).

Step time: forward + ``mean|E| + mean|F|`` + backward on ``--molecules`` demo
molecules, each model in its own fresh process, one after the other, single thread,
per width in ``--timing-widths``; ratio ours/fairchem of the median process CPU time.

    python benchmarks/bench_fairchem_gemnet.py [--skip-timing] [--skip-training]
        [--train-steps 300] [--repeats 3] [--standin auto|always|never]

Hyperparameter mapping (ours -> fairchem ``GemNetOC``)
------------------------------------------------------
``width`` -> ``emb_size_atom`` and ``emb_size_edge``; ``num_layers`` -> ``num_blocks``;
``num_radial``, ``num_spherical``, ``emb_size_*``, ``num_before_skip``,
``num_after_skip``, ``num_concat``, ``num_atom``, ``num_output_afteratom``,
``num_atom_emb_layers``, ``num_global_out_layers`` -> the same names;
``cutoff`` / ``max_neighbors`` -> ``cutoff`` / ``max_neighbors`` and also
``cutoff_aeaint``, ``cutoff_aint``, ``max_neighbors_aeaint``, ``max_neighbors_aint``
(ours runs the atom-to-edge, edge-to-atom and atom-to-atom interactions on the main
graph; fairchem's OC20 configuration gives them their own graphs, 20 and 1000
neighbours beside 30); ``cutoff_qint`` / ``max_neighbors_qint`` -> the same
(defaults ``cutoff`` and ``int(max_neighbors * 8 / 30)``). Fixed on the fairchem side
as in its OC20 GemNet-OC configuration: all four interaction types, direct forces,
``forces_coupled=False``, Gaussian radial basis with a polynomial envelope (exponent
5), ``cbf`` spherical harmonics (m = 0), ``sbf`` ``legendre_outer``, SiLU,
``HeOrthogonal`` output initialisation, ``extensive=True``; ``use_pbc=False``,
``otf_graph=False`` (the saved edges are passed in), no scale file (factors fitted as
above), quadruplets on all atoms (``qint_tags`` [0, 1, 2]).

fairchem-core 1.10 is not a dependency of the project. Its venv (torch 2.4.1 CPU/CUDA
build from PyPI)::

    python3.11 -m venv /work/fairchem1-venv
    /work/fairchem1-venv/bin/pip install fairchem-core==1.10.0 wheel schedulefree==1.4.1
    MAX_JOBS=1 /work/fairchem1-venv/bin/pip install --no-build-isolation torch-scatter
    MAX_JOBS=1 /work/fairchem1-venv/bin/pip install --no-build-isolation torch-sparse

PyPI has torch-scatter and torch-sparse only as source distributions (the compile takes
tens of minutes on one core). Where they do not import, ``--standin auto`` (default)
runs fairchem's GemNet-OC with plain-torch stand-ins for the few functions it uses
(benchmarks/fairchem_gemnet_worker.py, ``install_standin``): for torch-sparse alone
(``sparse``: its ``SparseTensor`` only builds index lists) or for both (``both``),
labelled as such in the output. The losses compare the same maths; step times with a
stand-in are not those of fairchem as installed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from pipeline.config import mup_learning_rate

HERE = Path(__file__).resolve().parent
WORKER = HERE / "fairchem_gemnet_worker.py"
sys.path.insert(0, str(HERE))
from bench_fairchem import (  # noqa: E402
    MALLOC_ENV,
    demo_batch,
    print_training_comparison,
    training_data,
)
from fairchem_gemnet_worker import RESULT_TAG  # noqa: E402

DEFAULT_FAIRCHEM_PYTHON = "/work/fairchem1-venv/bin/python"
GRAPH = (6.0, 30)  # cutoff (Angstrom) and neighbours of bench_fairchem's demo batches
STANDIN_LABELS = {
    "none": "fairchem-core 1.10 GemNet-OC with compiled torch-scatter and torch-sparse",
    "sparse": "fairchem GemNet-OC with compiled torch-scatter and a pure-torch stand-in "
    "for torch-sparse",
    "both": "fairchem GemNet-OC with a pure-torch stand-in for torch-scatter/torch-sparse",
}


def fairchem_status(python: str) -> tuple[str | None, dict[str, bool]]:
    """(why fairchem 1.x GemNet-OC cannot run at all, or None; which of the compiled
    torch_scatter and torch_sparse import)."""
    if not Path(python).exists():
        return f"{python} does not exist", {}
    # fairchem.core itself imports torch_scatter: check the distribution, not the import
    probe = (
        "import schedulefree, torch_geometric; "
        "from importlib.metadata import version; v = version('fairchem-core'); "
        "assert v.startswith('1.'), f'fairchem-core {v}, need 1.x'"
    )
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return (lines[-1] if lines else f"exit status {proc.returncode}"), {}
    compiled = {}
    for name in ("torch_scatter", "torch_sparse"):
        ext = subprocess.run([python, "-c", f"import {name}"], capture_output=True, text=True)
        compiled[name] = ext.returncode == 0
    return None, compiled


def run_worker(python: str, side: str, task: str, settings: dict, data: str | None) -> dict:
    cmd = [python, str(WORKER), "--side", side, "--task", task, "--settings", json.dumps(settings)]
    if data is not None:
        cmd += ["--data", data]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    results = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not results:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{side} {task} worker failed (exit {proc.returncode}):\n{tail}")
    return json.loads(results[-1][len(RESULT_TAG) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml", help="demo settings (archs.gemnet_oc)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-counts", action="store_true")
    parser.add_argument("--paper-config", default="config/paper.yaml")
    parser.add_argument("--count-widths", type=int, nargs="+", default=[32, 64, 204])
    parser.add_argument("--timing-widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--molecules", type=int, default=64, help="batch of the timing")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after 1 warm-up")
    parser.add_argument("--width", type=int, help="training width (default: base_width)")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--train-batch", type=int, help="default: archs.gemnet_oc.batch_size")
    parser.add_argument("--lr", type=float, help="default: archs.gemnet_oc.lr (muP-scaled)")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--val-molecules", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="choice of demo molecules")
    parser.add_argument("--model-seed", type=int, default=0, help="initial weights, both")
    parser.add_argument(
        "--sides", nargs="+", choices=["ours", "fairchem"], default=["ours", "fairchem"]
    )
    parser.add_argument(
        "--fairchem-python",
        default=os.environ.get("FAIRCHEM1_PYTHON", DEFAULT_FAIRCHEM_PYTHON),
        help="a Python with fairchem-core 1.x (or set FAIRCHEM1_PYTHON)",
    )
    parser.add_argument(
        "--standin",
        choices=["auto", "none", "sparse", "both"],
        default="auto",
        help="plain-torch stand-ins on the fairchem side: none, torch-sparse only, both; "
        "auto: for what does not import",
    )
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning and MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | MALLOC_ENV)
    torch.set_num_threads(args.threads)

    arch = yaml.safe_load(Path(args.config).read_text())["archs"]["gemnet_oc"]
    graph = (arch["hparams"].get("cutoff"), arch["hparams"].get("max_neighbors"))
    if graph != GRAPH:
        raise SystemExit(
            f"{args.config}: gemnet_oc graph {graph}, but the shared demo batches "
            f"(bench_fairchem.training_data, demo_batch) use cutoff {GRAPH[0]} A and "
            f"{GRAPH[1]} neighbours"
        )
    problem, compiled = fairchem_status(args.fairchem_python)
    standin = args.standin
    if problem is not None:
        print(f"fairchem-core 1.x GemNet-OC cannot run with {args.fairchem_python}: {problem}")
        print("(install commands in this script's docstring); ours alone\n")
    else:
        if standin == "auto":
            standin = "none" if all(compiled.values()) else "both"
            standin = "sparse" if compiled["torch_scatter"] and standin == "both" else standin
        needs = {"none": ["torch_scatter", "torch_sparse"], "sparse": ["torch_scatter"]}
        missing = [n for n in needs.get(standin, []) if not compiled[n]]
        if missing:
            raise SystemExit(f"--standin {standin}: {missing} not importable in the fairchem venv")
        print(
            f"fairchem side: {STANDIN_LABELS[standin]}"
            + ("" if standin == "none" else " (step times NOT representative)")
        )
    print(f"demo GemNet-OC settings from {args.config}: {arch['hparams']}")

    if not args.skip_counts and problem is None:
        compare_counts(args, standin)
    if not args.skip_training:
        compare_training(args, arch, problem, standin)
    if not args.skip_timing:
        compare_step_times(args, arch, problem, standin)
    print(f"load average now {os.getloadavg()[0]:.1f} (shared machine; compare ratios)")


def _full_hparams(hparams: dict) -> dict:
    """``hparams`` completed with our GemNetOC's defaults (both sides get every size)."""
    import inspect

    from pipeline.models.gemnet_oc import GemNetOC

    params = inspect.signature(GemNetOC.__init__).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return defaults | hparams


def _settings(args, width: int, hparams: dict, standin: str, **extra) -> dict:
    return (
        dict(width=width, hparams=_full_hparams(hparams), seed=args.model_seed)
        | dict(threads=args.threads)
        | dict(standin=standin)
        | extra
    )


def compare_counts(args, standin: str) -> None:
    """Parameter counts of both at the paper's sizes (Table 6), per width."""
    arch = yaml.safe_load(Path(args.paper_config).read_text())["archs"]["gemnet_oc"]
    print(f"parameters at the sizes of {args.paper_config} ({arch['hparams']}):")
    for width in args.count_widths:
        settings = _settings(args, width, arch["hparams"], standin)
        ours = run_worker(sys.executable, "ours", "count", settings, None)["params"]
        fc = run_worker(args.fairchem_python, "fairchem", "count", settings, None)["params"]
        table = arch.get("paper_n_params", {}).get(width)
        print(
            f"  width {width:3d}: ours {ours:>10,}, fairchem {fc:>10,}"
            + (f", Table 6 {table:>10,}" if table else ""),
            flush=True,
        )


def compare_training(args, arch: dict, problem: str | None, standin: str) -> None:
    """Train both on the same batches; print validation losses and their ratio."""
    width = args.width or arch["base_width"]
    lr = args.lr or mup_learning_rate(arch["lr"], arch["base_width"], width, arch.get("lr_max"))
    batch = args.train_batch or arch["batch_size"]
    data = training_data(args.train_steps, batch, args.val_molecules, args.seed)
    atoms = sum(int(b["atomic_numbers"].numel()) for b in data["train"]) / len(data["train"])
    n_val = sum(int(b["n_atoms"].numel()) for b in data["val"])
    print(
        f"training: width {width}, {args.train_steps} steps of {batch} demo molecules "
        f"(~{atoms:.0f} atoms), schedule-free AdamW lr {lr:g}, warmup {args.warmup_steps}, "
        f"eq. 1 loss on normalised targets, scale factors fitted on the first batch; "
        f"validation on {n_val} molecules; model seed {args.model_seed}"
    )
    settings = _settings(
        args,
        width,
        arch["hparams"],
        standin,
        lr=lr,
        warmup_steps=args.warmup_steps,
        eval_every=args.eval_every,
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_file = str(Path(tmp) / "train.pt")
        torch.save(data, data_file)
        if "ours" in args.sides:
            results["ours"] = run_worker(sys.executable, "ours", "train", settings, data_file)
        if problem is None and "fairchem" in args.sides:
            results["fairchem"] = run_worker(
                args.fairchem_python, "fairchem", "train", settings, data_file
            )
    if not results:
        return
    label = "" if standin == "none" else f" [{STANDIN_LABELS[standin]}]"
    print_training_comparison(results, ratio_note=label)
    if "fairchem" in results:
        fc = results["fairchem"]
        print(
            f"  fairchem fitted {fc['fitted_scale_factors']} scale factors; torch_scatter "
            f"{fc['torch_scatter']}, torch_sparse {fc['torch_sparse']}"
        )


def compare_step_times(args, arch: dict, problem: str | None, standin: str) -> None:
    """Forward + backward time of both at equal width (equal parameter count)."""
    batch = demo_batch(args.molecules, args.seed)
    atoms = int(batch["atomic_numbers"].numel())
    print(
        f"step time: {args.molecules} demo molecules, {atoms} atoms, "
        f"{batch['edge_index'].shape[1]} edges; {args.threads} thread(s), {args.repeats} "
        f"timed steps after 1 warm-up; process CPU and wall per step"
        + ("" if standin == "none" else f" [{STANDIN_LABELS[standin]}: NOT representative]")
    )
    with tempfile.TemporaryDirectory() as tmp:
        batch_file = str(Path(tmp) / "batch.pt")
        torch.save(batch, batch_file)
        for width in args.timing_widths:
            settings = _settings(args, width, arch["hparams"], standin, repeats=args.repeats)
            res = {}
            if "ours" in args.sides:
                res["ours"] = run_worker(sys.executable, "ours", "time", settings, batch_file)
            if problem is None and "fairchem" in args.sides:
                res["fairchem"] = run_worker(
                    args.fairchem_python, "fairchem", "time", settings, batch_file
                )
            for name, r in res.items():
                cpu, wall = statistics.median(r["cpu"]), statistics.median(r["wall"])
                print(
                    f"  width {width:3d} {name:9s} {r['params']:>8,} params: "
                    f"CPU {cpu * 1e3:7.0f} ms/step, wall {wall * 1e3:7.0f} ms/step "
                    f"({atoms / cpu:,.0f} atoms/CPU-s)"
                )
            if len(res) == 2:
                o, f = res["ours"], res["fairchem"]
                print(
                    f"  width {width:3d} ratio ours/fairchem: "
                    f"{statistics.median(o['cpu']) / statistics.median(f['cpu']):.2f} CPU, "
                    f"{statistics.median(o['wall']) / statistics.median(f['wall']):.2f} wall "
                    f"(parameters {o['params'] / f['params']:.3f}x)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
