"""Training-step time of every model family, before and after the speed work, in one run.

Issue 16's "Done when": one run prints, per family at the default study's settings
(``config.yaml``: ``archs.<name>`` hparams and batch size; the transformer from
``variants.transformer``, which is not in ``archs``), a middle width of its ladder,
the training-step time of the code before the speed work and of this code, atoms/s,
the speed-up, and the eSEN/fairchem step-time ratio, then a markdown table the README
takes verbatim.

- "Before" is the model class of a fixed git revision, read with ``git show`` into a
  temporary package (``bench_esen.load_baseline``, ``bench_gemnet_oc.load_before``), so
  both run side by side in this process, steps interleaved (same machine load), with
  the same weights; their float64 outputs are compared first. eSEN: ``59306b8``;
  GemNet-OC: ``cf9e7e1``, whose quadruplet graph was 2.5 Angstrom without a cap: GemNet-OC
  is timed on that graph against the old code (like for like) and on config.yaml's
  graph alone. The MPNN, EGNN and transformer were not part of the speed work: no
  "before".
- A step is what the trainer does: forward, eq. 1 (``pipeline.train.loss``), backward
  and a schedule-free AdamW update (``pipeline.train.optim.make_optimizer``), on batches
  of neutral closed-shell demo molecules with the model's own cutoff graph (graph
  building is the loader's job and is not timed). Process CPU time per step, median.
- fairchem: ``bench_fairchem.py``'s step-time comparison (its eSEN backbone against
  ours at equal parameters: C 4, hidden 32, 12 layers, ``--ffn gate``, 64 demo
  molecules; forward, loss and backward), each model in its own process, fairchem's
  with the interpreter of ``/work/fairchem-venv`` (``--fairchem-python``); skipped
  with a note when that venv is missing.

    OMP_NUM_THREADS=1 python benchmarks/bench_steps.py [--repeats 8] [--fairchem-lmax 2 4]

About 2.5 minutes on the shared 2-core development machine with the defaults (half
of it fairchem), 4 with ``--fairchem-lmax 2 4``. Like the other benchmarks it
restarts itself with glibc's malloc tuned (``MALLOC_MMAP_MAX_=0``; see
``bench_esen.py``). Absolute times scale with the machine's load (printed); the ratios
of interleaved steps are the steadier numbers.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_esen  # noqa: E402
import bench_fairchem  # noqa: E402
import bench_gemnet_oc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("mpnn", "egnn", "esen", "gemnet_oc", "transformer")
#: git revision of the code before the speed work, per family that had one
BEFORE = {"esen": bench_esen.BASELINE, "gemnet_oc": "cf9e7e1"}
#: cf9e7e1's GemNet-OC quadruplet graph (2.5 Angstrom, no cap), for the like-for-like row
OLD_QUAD_GRAPH = {"cutoff_qint": 2.5, "max_neighbors_qint": 30}
NAMES = {"mpnn": "MPNN", "egnn": "EGNN", "esen": "eSEN", "gemnet_oc": "GemNet-OC"}


def family_settings(config: dict, name: str) -> tuple[dict, list[int], int, float]:
    """(hparams, widths, batch size, lr) of a family in the default study's config."""
    section = config["archs"].get(name)
    if section is None:  # a variant's family (the transformer): its arch_settings
        variant = next(v for v in config["variants"].values() if v.get("arch") == name)
        section = variant["arch_settings"] | {"widths": variant["widths"]}
    return (
        dict(section.get("hparams") or {}),
        list(section["widths"]),
        int(section["batch_size"]),
        float(section["lr"]),
    )


def train_step(model, optimizer, data) -> None:
    """Forward, eq. 1, backward, optimizer update (the trainer's step without its I/O)."""
    from pipeline.train.loss import combine, loss_terms

    z, pos, edges, batch, m, e_target, f_target = data
    energy, forces = model(z, pos, edges, batch, m)
    terms = loss_terms(energy, forces, e_target, f_target, torch.bincount(batch, minlength=m))
    loss, _, _ = combine(terms, 1.0, 1.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def time_interleaved(models: dict, data: list, lr: float, args) -> dict[str, float]:
    """Median process CPU seconds per step of each model, steps interleaved, after
    ``args.warmup`` untimed steps each."""
    from pipeline.train.optim import make_optimizer

    optimizers = {k: make_optimizer(m, lr) for k, m in models.items()}
    cpu: dict[str, list[float]] = {k: [] for k in models}
    for step in range(args.repeats + args.warmup):
        for name, model in models.items():
            gc.collect()
            c0 = time.process_time()
            train_step(model, optimizers[name], data[step % len(data)])
            if step >= args.warmup:
                cpu[name].append(time.process_time() - c0)
    return {k: statistics.median(v) for k, v in cpu.items()}


def same_weights(before: torch.nn.Module, now: torch.nn.Module) -> torch.nn.Module:
    """``before`` with ``now``'s weights (GemNet-OC's unfitted scale factors aside)."""
    missing, unexpected = before.load_state_dict(now.state_dict(), strict=False)
    if missing or any(not k.endswith((".scale", ".fitted")) for k in unexpected):
        raise RuntimeError(f"state_dicts differ: missing {missing}, unexpected {unexpected}")
    return before


def measure_family(name: str, config: dict, args) -> list[dict]:
    """Rows (one, or two for GemNet-OC) of the table for one family."""
    from pipeline.models import build, num_params

    hparams, widths, batch_size, lr = family_settings(config, name)
    width = widths[len(widths) // 2]
    torch.manual_seed(0)
    now = build(name, width=width, **hparams)
    data = bench_gemnet_oc.demo_batches(args.batches, batch_size, now.cutoff, now.max_neighbors)
    atoms = statistics.mean(len(d[0]) for d in data)
    label = f"{NAMES.get(name, name)} {'C' if name == 'esen' else 'w'} {width}"
    row = {"model": label, "params": num_params(now), "atoms": atoms, "before": None}
    revision = BEFORE.get(name)
    if revision is None:
        row["now"] = time_interleaved({"now": now}, data, lr, args)["now"]
        row["note"] = "no before: not part of the speed work"
        return [row]

    try:  # a shallow clone may lack the revision
        if name == "esen":
            old_cls = bench_esen.load_baseline(revision)
        else:
            old_cls = bench_gemnet_oc.load_before(revision)
    except subprocess.CalledProcessError:
        old_cls = None
    if old_cls is None:
        row["now"] = time_interleaved({"now": now}, data, lr, args)["now"]
        row["note"] = f"before ({revision}) not in this clone"
        return [row]
    if name == "esen":
        before = old_cls(channels=width, **hparams)
        rows, pairs = [row], [(row, now, hparams)]
    else:  # like for like on the old quadruplet graph, plus config.yaml's graph alone
        old_graph = {k: v for k, v in OLD_QUAD_GRAPH.items() if k != "max_neighbors_qint"}
        before = old_cls(width=width, **hparams | old_graph)
        torch.manual_seed(0)
        same = build(name, width=width, **hparams | OLD_QUAD_GRAPH)
        row_same = dict(row, model=f"{label}, {revision}'s quadruplet graph")
        row["model"] = f"{label}, config.yaml's quadruplet graph"
        rows, pairs = [row_same, row], [(row_same, same, hparams | OLD_QUAD_GRAPH)]
        row["note"] = "before: see the row above (the old code has no quadruplet cap)"
    for target, model, _ in pairs:
        before = same_weights(before, model)
        target["check"] = bench_gemnet_oc.max_rel_difference(before, model, data[0])
        target["revision"] = revision
    times = time_interleaved(
        {"before": before, "now": pairs[0][1]} | ({"default": now} if name != "esen" else {}),
        data,
        lr,
        args,
    )
    pairs[0][0]["before"], pairs[0][0]["now"] = times["before"], times["now"]
    if name != "esen":
        row["now"] = times["default"]
    return rows


def fairchem_rows(args) -> list[str]:
    """Lines of the eSEN/fairchem comparison (bench_fairchem's timing), or why skipped."""
    python = args.fairchem_python
    if not Path(python).exists():
        return [f"fairchem venv not found ({python}): skipped"]
    problem = bench_fairchem.fairchem_problem(python)
    if problem is not None:
        return [f"fairchem not importable with {python} ({problem}): skipped"]
    batch = bench_fairchem.demo_batch(args.fairchem_molecules, 0)
    atoms = int(batch["atomic_numbers"].numel())
    settings = argparse.Namespace(
        threads=1,
        repeats=args.fairchem_repeats,
        layers=12,
        ffn="gate",
        lr=5e-3,
        warmup_steps=20,
        eval_every=100,
    )
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        batch_file = str(Path(tmp) / "batch.pt")
        torch.save(batch, batch_file)
        for lmax in args.fairchem_lmax:
            common = dict(lmax=lmax)
            ours = bench_fairchem.run_worker(
                sys.executable, "ours", batch_file, settings, channels=4, **common
            )
            theirs = bench_fairchem.run_worker(
                python, "fairchem", batch_file, settings, target_params=ours["params"], **common
            )
            cpu_ours, cpu_theirs = (statistics.median(r["cpu"]) for r in (ours, theirs))
            lines.append(
                f"| eSEN / fairchem-core eSEN backbone, l_max {lmax}, C 4 (fairchem C "
                f"{theirs['channels']}), hidden 32, 12 layers, {args.fairchem_molecules} "
                f"molecules ({atoms} atoms), gated feed-forward | {ours['params']:,} / "
                f"{theirs['params']:,} | {cpu_ours * 1e3:,.0f} ms / {cpu_theirs * 1e3:,.0f} ms | "
                f"**{cpu_ours / cpu_theirs:.2f}** |"
            )
    return lines


def table(rows: list[dict]) -> list[str]:
    out = [
        "| model (config.yaml settings) | parameters | atoms/step | before | now | speed-up "
        "| atoms/s now |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if r["before"] is not None:
            before = f"{r['before'] * 1e3:.1f} ms ({r['revision']})"
            speed = f"**{r['before'] / r['now']:.2f}x**"
        else:
            before, speed = r.get("note", "-"), "-"
        out.append(
            f"| {r['model']} | {r['params']:,} | {r['atoms']:.0f} | {before} | "
            f"{r['now'] * 1e3:.1f} ms | {speed} | {r['atoms'] / r['now']:,.0f} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=8, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled")
    parser.add_argument("--fairchem-python", default=bench_fairchem.DEFAULT_FAIRCHEM_PYTHON)
    parser.add_argument("--fairchem-lmax", type=int, nargs="*", default=[2])
    parser.add_argument("--fairchem-repeats", type=int, default=3)
    parser.add_argument("--fairchem-molecules", type=int, default=64)
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args(argv)
    if argv is None and not args.no_malloc_tuning:
        if bench_esen.MALLOC_ENV.items() - os.environ.items():
            env = os.environ | bench_esen.MALLOC_ENV
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(1)
    with open(args.config) as f:
        config = yaml.safe_load(f)
    command = "OMP_NUM_THREADS=1 python benchmarks/bench_steps.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    start = time.perf_counter()
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    # other work on the machine slows both sides of a ratio alike, not absolute times
    busy = "loaded machine" if load > 0.5 else "idle machine"
    print(
        f"{command.strip()}\n1 thread, torch {torch.__version__}, load average "
        f"{load:.1f} on {cores} cores ({busy}: compare ratios, not absolute times)",
        flush=True,
    )
    rows = []
    for name in args.families:
        for row in measure_family(name, config, args):
            rows.append(row)
            if "check" in row:
                print(
                    f"{row['model']}: float64 before vs now, max relative difference "
                    f"{row['check']:.1e}",
                    flush=True,
                )
    lines = table(rows)
    if args.fairchem_lmax:
        fairchem = fairchem_rows(args)
        if fairchem[0].startswith("|"):
            fairchem = [
                "| comparison (step: forward, loss, backward) | parameters ours / fairchem "
                "| CPU per step ours / fairchem | ratio |",
                "| --- | ---: | ---: | ---: |",
                *fairchem,
            ]
        lines += ["", *fairchem]
    print("\n" + "\n".join(lines))
    print(
        f"\n(process CPU per step, median of {args.repeats}; load average now "
        f"{os.getloadavg()[0]:.1f}; {time.perf_counter() - start:.0f} s in all)"
    )


if __name__ == "__main__":
    main()
