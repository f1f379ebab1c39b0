"""eSEN training-step time, this code against the implementation before the speed work.

Issue 16 item 1: profile a demo-size training step and time it "before" and "after" in
one run. The "before" model is the eSEN of commit ``BASELINE`` (``esen.py`` and
``so3.py`` read with ``git show`` into a temporary package, so it stays reachable only
here); both models get the same weights (the parameter names did not change), and the
script first checks they agree: energies and forces to float32 rounding, and in
float64 to 1e-10.

Sizes: ``--size demo`` (default) is config.yaml's eSEN, widths C 3, 4, 8, lmax 2,
mmax 2, hidden 16, 2 layers, 48 distance Gaussians, batches of 16 demo molecules;
``--size paper`` is Table 5's C 4, lmax 4 (and 2), hidden 32, 12 layers on 64 demo
molecules. A step is forward, the eq. 1-like loss ``mean|E| + mean|F|``, backward
and a schedule-free AdamW step. Steps of the two models alternate, so both see the
same machine load; the ratio of median process CPU times is the number to read
(wall times are printed too). A torch.profiler table (top operators by self CPU) of
one width follows for each model.

    python benchmarks/bench_esen.py [--size demo|paper] [--repeats 10] [--threads 1]

Like the workflow (``workflow/rules/common.smk``), the script runs with glibc malloc
tuned (``MALLOC_MMAP_MAX_=0``, ``MALLOC_TRIM_THRESHOLD_=1e11``; it restarts itself
with them unless ``--no-malloc-tuning``): without it every large tensor pays fresh
page faults and step times vary by several times.

The Wigner-D construction of this package is also timed against e3nn's Euler-angle
route on the same edges (lmax 4).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BASELINE = "59306b8"  # the last commit before the eSEN speed work (issue 16 item 1)
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
SIZES = {
    "demo": {
        "widths": [3, 4, 8],
        "lmax": [2],
        "molecules": 16,
        "hparams": dict(mmax=2, hidden_channels=16, num_layers=2, num_distance_basis=48),
    },
    "paper": {
        "widths": [4],
        "lmax": [2, 4],
        "molecules": 64,
        "hparams": dict(mmax=2, hidden_channels=32, num_layers=12),
    },
}


def load_baseline(commit: str):
    """The ESEN class of ``commit``, imported from a temporary package, or None."""
    tmp = Path(tempfile.mkdtemp(prefix="esen_baseline_"))
    package = tmp / "esen_baseline"
    package.mkdir()
    for name in ("esen", "so3"):
        proc = subprocess.run(
            ["git", "show", f"{commit}:src/pipeline/models/{name}.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"baseline {commit} not available ({proc.stderr.strip()}): timing ours alone")
            return None
        source = proc.stdout.replace(
            "from pipeline.models.so3 import", "from esen_baseline.so3 import"
        )
        (package / f"{name}.py").write_text(source)
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("esen_baseline.esen").ESEN


def demo_batch(num_molecules: int, seed: int = 0) -> dict:
    """``num_molecules`` random training molecules of the embedded demo data."""
    import numpy as np

    from pipeline.data.extract import extract_dataset
    from pipeline.data.loader import make_batch
    from pipeline.data.store import MoleculeStore

    with tempfile.TemporaryDirectory() as tmp:
        extract_dataset("demo", None, tmp, val_size=100, n_workers=1)
        store = MoleculeStore.from_h5(Path(tmp) / "train.h5")
    idx = np.sort(np.random.default_rng(seed).choice(store.num_molecules, num_molecules, False))
    b = make_batch(store, idx, cutoff=6.0, max_neighbors=30)
    return {
        "z": b.atomic_numbers,
        "pos": b.positions,
        "batch": b.batch,
        "edges": b.edge_index,
        "m": int(b.n_atoms.numel()),
    }


def check_agreement(new_cls, old_cls, hp: dict, b: dict) -> str:
    """Max deviation of the baseline's outputs from ours, same weights, float32 and float64."""
    out = []
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        new = new_cls(**hp).to(dtype)
        old = old_cls(**hp).to(dtype)
        old.load_state_dict(new.state_dict())
        with torch.no_grad():
            args = (b["z"], b["pos"].to(dtype), b["edges"], b["batch"], b["m"])
            (e1, f1), (e0, f0) = new(*args), old(*args)
        rel_e = float((e1 - e0).abs().max() / e0.abs().max())
        rel_f = float((f1 - f0).abs().max() / f0.abs().max())
        if dtype == torch.float64 and max(rel_e, rel_f) > 1e-10:
            raise RuntimeError(f"float64 outputs differ from the baseline: {rel_e}, {rel_f}")
        out.append(f"{str(dtype)[6:]}: energy {rel_e:.1e}, forces {rel_f:.1e}")
    return "relative max deviation from the baseline, " + "; ".join(out)


def make_step(model: torch.nn.Module, b: dict):
    import schedulefree

    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
    optimizer.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        energy, forces = model(b["z"], b["pos"], b["edges"], b["batch"], b["m"])
        (energy.abs().mean() + forces.norm(dim=1).mean()).backward()
        optimizer.step()

    return step


def time_alternating(steps: dict, repeats: int) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and process CPU seconds per step, the models' steps interleaved, 2 warm-ups."""
    for step in steps.values():
        step()
        step()
    times = {name: ([], []) for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times[name][0].append(time.perf_counter() - t0)
            times[name][1].append(time.process_time() - c0)
    return times


def profile_table(step, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def time_wigner() -> None:
    from e3nn import o3

    from pipeline.data.graphs import radius_graph
    from pipeline.models import build
    from pipeline.models.so3 import edge_frames

    b = demo_batch(64)
    edges = radius_graph(b["pos"], b["batch"], 6.0, 30)
    model = build("esen", channels=4, lmax=4, mmax=2, num_layers=1)
    rot = edge_frames(b["pos"][edges[0]] - b["pos"][edges[1]])
    t0 = time.perf_counter()
    for _ in range(3):
        model.wigner(rot)
    ours = (time.perf_counter() - t0) / 3
    t0 = time.perf_counter()
    alpha, beta, gamma = o3.matrix_to_angles(rot)
    for ell in range(5):
        o3.wigner_D(ell, alpha, beta, gamma)
    e3nn_time = time.perf_counter() - t0
    print(
        f"Wigner-D lmax 4 for {len(rot)} edges: ours {ours * 1e3:.1f} ms, "
        f"e3nn Euler {e3nn_time * 1e3:.1f} ms, ratio ours/e3nn {ours / e3nn_time:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per model")
    parser.add_argument("--profile-rows", type=int, default=15, help="0: no profile")
    parser.add_argument("--baseline", default=BASELINE, help="git commit of the 'before' code")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning and MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | MALLOC_ENV)
    torch.set_num_threads(args.threads)
    from pipeline.models import num_params
    from pipeline.models.esen import ESEN

    size = SIZES[args.size]
    old_cls = load_baseline(args.baseline)
    b = demo_batch(size["molecules"])
    atoms = len(b["z"])
    print(
        f"batch: {b['m']} demo molecules, {atoms} atoms, {b['edges'].shape[1]} edges; "
        f"{args.threads} thread(s), torch {torch.__version__}, malloc "
        f"{ {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')} or 'defaults' }, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    profiled = False
    for lmax in size["lmax"]:
        for width in size["widths"]:
            hp = dict(channels=width, lmax=lmax, **size["hparams"])
            torch.manual_seed(0)
            new = ESEN(**hp)
            steps = {"new": make_step(new, b)}
            line = f"C {width}, lmax {lmax}, {num_params(new):,} params"
            if old_cls is not None:
                print(f"{line}: {check_agreement(ESEN, old_cls, hp, b)}")
                old = old_cls(**hp)
                old.load_state_dict(new.state_dict())
                steps = {"before": make_step(old, b)} | steps
            times = time_alternating(steps, args.repeats)
            for name, (wall, cpu) in times.items():
                wall_s, cpu_s = statistics.median(wall), statistics.median(cpu)
                print(
                    f"  {name:6s} {cpu_s * 1e3:8.1f} ms CPU/step ({atoms / cpu_s:8,.0f} atoms per "
                    f"CPU-s), {wall_s * 1e3:8.1f} ms wall (min {min(wall) * 1e3:.1f})"
                )
            if "before" in times:
                cpu_ratio = statistics.median(times["before"][1]) / statistics.median(
                    times["new"][1]
                )
                wall_ratio = statistics.median(times["before"][0]) / statistics.median(
                    times["new"][0]
                )
                print(f"  speed-up before/new: {cpu_ratio:.2f}x CPU, {wall_ratio:.2f}x wall")
            if (
                args.profile_rows
                and not profiled
                and width == size["widths"][len(size["widths"]) // 2]
            ):
                profiled = True
                for name, step in steps.items():
                    print(f"\ntorch.profiler, {name}, {line}, 3 steps:")
                    print(profile_table(step, args.profile_rows))
    time_wigner()
    print(f"load average now {os.getloadavg()[0]:.1f} (absolute times scale with it)")


if __name__ == "__main__":
    main()
