"""GemNet-OC training-step time at demo size, before and after (same run), with profiles.

Demo size is the default study's settings (config.yaml's ``archs.gemnet_oc``: widths 4,
8, 32, its ``hparams``: 2 interaction blocks, a 6 Angstrom / 30-neighbour graph, 16
radial functions and the small fixed sizes there), batches of 16 molecules of the
embedded GFN2-xTB dataset (8-30 atoms). A step is forward, the eq. (1)-like loss,
backward and an optimizer update: by default the trainer's (schedule-free AdamW,
``pipeline.train.optim.make_optimizer``), ``--optimizer adamw`` for torch's AdamW as
earlier versions of this benchmark. Graph building is the loader's job and is not timed.

"Before" is the model at git revision ``--before`` (default ``cf9e7e1``, the code of
issue 16's measurement), loaded from ``git show`` into a temporary package, so the ratio
is measured side by side in one process, steps interleaved. That code has no quadruplet
neighbour cap and a 2.5 Angstrom quadruplet cutoff, which is what the default study ran
with it; the current code is timed on that same quadruplet graph ("same quad graph",
like for like) and on its default one (issue 13: the reference's cutoff and cap scaled to
the main graph, 6 Angstrom / 8 at demo size; "default quad graph", what the default
study runs now). ``--profile`` prints torch.profiler tables (self CPU time) of one step
of each and the number of aten kernels it runs.

    OMP_NUM_THREADS=1 python benchmarks/bench_gemnet_oc.py --repeats 8
    OMP_NUM_THREADS=1 python benchmarks/bench_gemnet_oc.py --profile --widths 8

Measured (2 shared cores, load average 7, 1 thread; process CPU per step, before /
after on the same quadruplet graph / after on the default one; trainer's optimizer):
width 4: 341 / 228 / 233 ms, width 8: 374 / 263 / 252 ms, width 32: 365 / 275 / 268 ms,
i.e. 1.3-1.5x (``--optimizer adamw``: 1.3-1.5x as well). Not the 2x asked for: a step
runs about 7,100-7,600 aten kernels before and after (2,300 forward, 2,700 backward,
2,000-2,500 in the optimizer update, schedule-free or torch's AdamW alike: ~170
parameter tensors), ~500 of them the small matmuls of the dense and residual layers,
which at these widths cost about as much as all per-centre products together.

On a shared machine the wall time depends on the load, which is printed; ratios of
interleaved steps (process CPU time) are the steadier numbers. Energies and forces of
before and after are compared in float64 (the "max relative difference" line). Like
the workflow (``workflow/rules/common.smk``), the script runs with glibc's malloc tuned
(``MALLOC_MMAP_MAX_=0``, see ``bench_esen.py``) unless ``--no-malloc-tuning``: without
it every large temporary page-faults afresh.

The comparison with fairchem-core 1.10's GemNet-OC (issue 13 item 6) is in
``bench_fairchem_gemnet.py``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml

from pipeline.data.demo import demo_path
from pipeline.data.graphs import radius_graph
from pipeline.models import build, num_params
from pipeline.train.optim import make_optimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_esen import MALLOC_ENV  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OLD_QUAD_GRAPH = {"cutoff_qint": 2.5}


def demo_settings() -> tuple[list[int], dict]:
    """Widths and hparams of config.yaml's ``archs.gemnet_oc`` (the default study)."""
    arch = yaml.safe_load((ROOT / "config.yaml").read_text())["archs"]["gemnet_oc"]
    return list(arch["widths"]), dict(arch["hparams"])


DEMO_WIDTHS, DEMO_HPARAMS = demo_settings()


def load_before(revision: str) -> type[torch.nn.Module]:
    """GemNetOC class of ``revision`` (its gemnet_oc*.py and blocks.py) from git."""
    tmp = Path(tempfile.mkdtemp(prefix="gemnet_before_"))
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", revision, "src/pipeline/models/"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    names = ["blocks"] + sorted(
        Path(f).stem for f in listing if Path(f).name.startswith("gemnet_oc")
    )
    for name in names:
        text = subprocess.run(
            ["git", "show", f"{revision}:src/pipeline/models/{name}.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for other in names:
            text = text.replace(f"pipeline.models.{other} ", f"_before_{other} ")
            text = text.replace(f"pipeline.models.{other}\n", f"_before_{other}\n")
        (tmp / f"_before_{name}.py").write_text(text)
    sys.path.insert(0, str(tmp))
    return importlib.import_module("_before_gemnet_oc").GemNetOC


def demo_batches(count: int, batch_size: int, cutoff: float, max_neighbors: int) -> list[tuple]:
    """``count`` batches of neutral closed-shell demo molecules with graphs and targets."""
    with h5py.File(demo_path(), "r") as f:
        ok = np.flatnonzero((f["charge"][:] == 0) & (f["spin"][:] == 1))[: count * batch_size]
        ptr = f["ptr"][:]
        stop = int(ptr[ok[-1] + 1])
        z_all, pos_all = f["atomic_numbers"][:stop], f["positions"][:stop]
        frc_all, energy = f["forces"][:stop], f["energy"][:]
    out = []
    for b in range(count):
        mols = ok[b * batch_size : (b + 1) * batch_size]
        sl = [slice(int(ptr[m]), int(ptr[m + 1])) for m in mols]
        z = torch.from_numpy(np.concatenate([z_all[s] for s in sl]).astype(np.int64))
        pos = torch.from_numpy(np.concatenate([pos_all[s] for s in sl]))
        frc = torch.from_numpy(np.concatenate([frc_all[s] for s in sl])) / 10.0
        batch = torch.cat([torch.full((s.stop - s.start,), i) for i, s in enumerate(sl)])
        e = torch.from_numpy(energy[mols]).float()
        e = (e - e.mean()) / e.std()
        edges = radius_graph(pos, batch, cutoff, max_neighbors)
        out.append((z, pos, edges, batch, len(mols), e, frc))
    return out


def train_step(model, optimizer, data) -> None:
    z, pos, edges, batch, m, e_target, f_target = data
    energy, forces = model(z, pos, edges, batch, m)
    n_atoms = torch.bincount(batch, minlength=m)
    loss = ((energy - e_target).abs() / n_atoms).mean() + (forces - f_target).norm(dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def max_rel_difference(before: torch.nn.Module, after: torch.nn.Module, data) -> float:
    """Largest relative difference of energies and forces in float64 (after's weights
    loaded into before; scale factors unfitted, i.e. 1), the numerics check."""
    before = copy.deepcopy(before).double()
    after = copy.deepcopy(after).double()
    missing, unexpected = before.load_state_dict(after.state_dict(), strict=False)
    if missing or any(not k.endswith((".scale", ".fitted")) for k in unexpected):
        raise RuntimeError(f"state_dicts differ: missing {missing}, unexpected {unexpected}")
    z, pos, edges, batch, m = data[:5]
    worst = 0.0
    with torch.no_grad():
        for x, y in zip(
            before(z, pos.double(), edges, batch, m),
            after(z, pos.double(), edges, batch, m),
            strict=True,
        ):
            worst = max(worst, float((x - y).abs().max() / y.abs().max()))
    return worst


def profile_table(model, optimizer, data, rows: int) -> str:
    """torch.profiler table (self CPU time) of one training step, after one warm-up."""
    return profile_step(model, optimizer, data, rows)[0]


def profile_step(model, optimizer, data, rows: int) -> tuple[str, int]:
    """(profiler table of one step, number of aten kernels it ran).

    Kernels are aten ops that call no other aten op (``aten::linear`` is not counted,
    the ``aten::mm`` under it is), forward, backward and optimizer together.
    """
    train_step(model, optimizer, data)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train_step(model, optimizer, data)
    kernels = sum(
        1
        for e in prof.events()
        if e.name.startswith("aten::")
        and not any(c.name.startswith("aten::") for c in e.cpu_children)
    )
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return table, kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="cf9e7e1", help="git revision of 'before'")
    parser.add_argument("--widths", type=int, nargs="+", default=DEMO_WIDTHS)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--optimizer",
        choices=["trainer", "adamw"],
        default="trainer",
        help="the trainer's schedule-free AdamW, or torch.optim.AdamW (lr 1e-3)",
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning and MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | MALLOC_ENV)
    torch.set_num_threads(args.threads)

    before_cls = load_before(args.before)
    data = demo_batches(
        args.batches, args.batch_size, DEMO_HPARAMS["cutoff"], DEMO_HPARAMS["max_neighbors"]
    )
    n_atoms = statistics.mean(len(d[0]) for d in data)
    n_edges = statistics.mean(d[2].shape[1] for d in data)
    print(
        f"demo batches: {args.batch_size} molecules, {n_atoms:.0f} atoms, {n_edges:.0f} edges "
        f"(6 A / 30) on average over {args.batches}; hparams {DEMO_HPARAMS}; "
        f"optimizer {args.optimizer}; {args.threads} thread(s), torch "
        f"{torch.__version__}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for width in args.widths:
        variants = {}
        torch.manual_seed(0)
        variants[f"before ({args.before})"] = before_cls(
            width=width, **DEMO_HPARAMS, **OLD_QUAD_GRAPH
        )
        torch.manual_seed(0)
        variants["after, same quad graph"] = build(
            "gemnet_oc", width=width, **DEMO_HPARAMS, **OLD_QUAD_GRAPH, max_neighbors_qint=30
        )
        torch.manual_seed(0)
        variants["after, default quad graph"] = build("gemnet_oc", width=width, **DEMO_HPARAMS)
        optimizers = {
            k: make_optimizer(v, lr=1e-3)
            if args.optimizer == "trainer"
            else torch.optim.AdamW(v.parameters(), lr=1e-3)
            for k, v in variants.items()
        }
        times = {k: [] for k in variants}
        cpu = {k: [] for k in variants}
        for step in range(args.repeats + 1):  # step 0 is warm-up
            for name, model in variants.items():
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                train_step(model, optimizers[name], data[step % len(data)])
                if step:
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
        key = f"before ({args.before})"
        before, before_cpu = statistics.median(times[key]), statistics.median(cpu[key])
        diff = max_rel_difference(variants[key], variants["after, same quad graph"], data[0])
        print(
            f"\nwidth {width}, {num_params(variants['after, same quad graph']):,} params; "
            f"before vs after (same quad graph, float64): max relative difference {diff:.1e}"
        )
        for name, t in times.items():
            med, med_cpu = statistics.median(t), statistics.median(cpu[name])
            print(
                f"  {name:28s} step median {med * 1e3:7.1f} ms wall (min {min(t) * 1e3:7.1f}), "
                f"{med_cpu * 1e3:7.1f} ms CPU, {n_atoms / med:7,.0f} atoms/s; speed-up vs "
                f"before {before / med:4.2f}x wall, {before_cpu / med_cpu:4.2f}x CPU"
            )
        if args.profile:
            for name, model in variants.items():
                table, kernels = profile_step(model, optimizers[name], data[0], args.profile_rows)
                print(f"\nprofile, width {width}, {name}: {kernels} aten kernels per step")
                print(table)
    print(f"\nload average now {os.getloadavg()[0]:.1f} (absolute times scale with it)")


if __name__ == "__main__":
    main()
