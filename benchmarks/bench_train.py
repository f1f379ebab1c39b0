"""Training throughput (atoms/s) per arch and width on CPU, and where a step's time goes.

Run: ``python benchmarks/bench_train.py [--steps 50] [--batch-size 64] [--archs mpnn egnn]``.

Trains each family whose model file exists in ``src/pipeline/models`` (mpnn, egnn,
transformer, esen, gemnet_oc) at two small widths with the real :class:`Trainer`
(one thread, ``--steps`` optimizer steps, one evaluation at the end) on a fixed data
set: ``results/data`` when it exists, else the shipped demo extracted to a temporary
folder (100 validation molecules). Each step's time is split, in the same run, into

- inside the model: forward + backward + gradient check + optimizer step;
- outside: batch assembly (gather from the in-memory store), radius graph, targets
  and rotations (the trainer's ``data_seconds``), and the loop's own work (schedule,
  logging, progress bar, bookkeeping: the loop's wall time minus steps, evaluations
  and output writing).

Each model is trained three times in the same run: ``plain`` (the CPU default, batches
built on the training thread; the table's main columns), ``prefetch`` (a background
thread builds the next batch, the CUDA default) and ``cached`` (radius graphs already
cached, as in every epoch after the first of a multi-epoch run). Prints one row per
(arch, width) with the shares as ratios of the step time and the two alternatives'
outside shares and atoms/s ratios against ``plain``; the goal is under 5 % outside.
Nothing is asserted; the machine is shared, so absolute atoms/s vary with the load
(printed), the shares less so.

``| host`` is the share of step time the device waits for the host: on CUDA
(``--device cuda``) the prefetch mode's data share, the time the training thread spends
waiting for the background batch, copying it (pinned, non-blocking) and building its
graph and rotations on the GPU; on the CPU the default's data-prep share.
``--precision`` sets train.precision for every mode. ``--compile`` adds a fourth run
with ``train.compile`` and prints its median step time against the eager one and its
compile (and recompile) time apart; it takes minutes per model on the CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# (hparams, widths, share of --steps) per family: small models, seconds on one thread
FAMILIES = {
    "mpnn": (
        {"num_layers": 4, "message_input": "radial_basis", "num_radial": 48, "radial_start": 0.5},
        [16, 64],
        1.0,
    ),
    "egnn": ({"num_layers": 4}, [16, 64], 0.4),
    "transformer": ({"num_layers": 2, "num_heads": 2}, [16, 64], 1.0),
    "esen": ({"num_layers": 2, "lmax": 2, "mmax": 2, "hidden_channels": 16}, [4, 8], 0.2),
    "gemnet_oc": ({"num_layers": 2}, [16, 64], 0.1),
}


def dataset(tmp: Path) -> Path:
    """A folder with train.h5, val.h5 and stats.json."""
    results = ROOT / "results" / "data"
    if all((results / name).exists() for name in ("train.h5", "val.h5", "stats.json")):
        return results
    from pipeline.data.extract import extract_dataset

    extract_dataset("demo", None, tmp / "data", val_size=100)
    return tmp / "data"


class _Timer:
    """Wraps callables and accumulates their wall time under a name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, list[float]] = {}

    def wrap(self, name, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                duration = time.perf_counter() - start
                self.seconds[name] = self.seconds.get(name, 0.0) + duration
                self.calls.setdefault(name, []).append(duration)

        return timed


MODES = ("plain", "prefetch", "cached")  # plus "compiled" with --compile


def measure(
    data: Path, out: Path, arch: str, hparams: dict, width: int, steps: int, mode: str, args
) -> dict:
    """Train one model for ``steps`` steps; the time split of its steps.

    ``mode``: ``plain`` (the CPU default: batches built on the training thread),
    ``prefetch`` (built by the background thread, the CUDA default) or ``cached``
    (the radius graphs of the steps' molecules already cached, as in every epoch after
    the first of a multi-epoch run; filling the cache is not timed) or ``compiled``
    (``plain`` with ``train.compile``: its compile time is the steps' time above
    ``steps`` times the median step, reported apart).
    """
    import pipeline.data.loader as loader
    import pipeline.train.loop as loop
    import pipeline.train.step as step_module

    timer = _Timer()
    settings = loop.TrainSettings(
        device=args.device,
        precision=args.precision,
        compile=mode == "compiled",
        threads=1,
        num_evals=1,
        max_steps=steps,
        augment=args.augment,
        symmetry_loss_rotations=args.symmetry_loss_rotations,
        checkpoint_every_seconds=1e9,
    )
    section = {"base_width": width, "lr": 1e-3, "batch_size": args.batch_size, "hparams": hparams}
    trainer = loop.Trainer(
        data / "train.h5",
        data / "val.h5",
        data / "stats.json",
        loop.ArchSettings.from_config(arch, section),
        width,
        {1.0: out},
        settings,
    )
    trainer.prefetch = mode == "prefetch"
    if mode == "cached":
        trainer.unit.graph_cache = {}
        for step in range(steps):
            trainer.unit.make_batch(trainer.schedule.batches[step][1])
    for name in ("_evaluate_row", "_write_fraction"):
        setattr(trainer, name, timer.wrap(name, getattr(trainer, name)))
    trainer.unit.train_step = timer.wrap("_train_step", trainer.unit.train_step)
    trainer.writer.publish = timer.wrap("_publish", trainer.writer.publish)
    originals = step_module.make_batch, loader.radius_graph
    step_module.make_batch = timer.wrap("make_batch", step_module.make_batch)
    loader.radius_graph = timer.wrap("radius_graph", loader.radius_graph)
    try:
        trainer.run()
    finally:
        step_module.make_batch, loader.radius_graph = originals
    s = timer.seconds
    # the evaluation's batches are built once, outside the training loop
    steps_time = s["_train_step"]
    # the loop's own work: its wall time minus steps, evaluations and writing outputs
    # (start-up before the loop and publishing after it are one-off, not per step)
    loop_other = trainer.loop_seconds - sum(
        s[k] for k in ("_train_step", "_evaluate_row", "_write_fraction")
    )
    data_time = trainer.state.data_seconds
    graph_time = s.get("radius_graph", 0.0)
    step_total = steps_time + loop_other
    atoms = int(trainer.schedule.cumulative_atoms[trainer.schedule.fraction_last_step[1.0]])
    return {
        "arch": arch,
        "width": width,
        "N": trainer.n_params,
        "steps": steps,
        "atoms/step": atoms / steps,
        "atoms/s": atoms / step_total,
        "ms/step": 1e3 * step_total / steps,
        "inside": (steps_time - data_time) / step_total,
        "graph": graph_time / step_total,
        "data": data_time / step_total,
        "loop": loop_other / step_total,
        "outside": (data_time + loop_other) / step_total,
        # time the training thread waited for the prefetch thread's batch
        "wait": trainer.unit.host_wait_seconds / step_total,
        "median_ms": 1e3 * float(np.median(timer.calls["_train_step"])),
        "excess_s": steps_time - steps * float(np.median(timer.calls["_train_step"])),
        "device": trainer.device.type,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps for mpnn (others fewer)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="none", choices=["none", "always"])
    parser.add_argument("--symmetry-loss-rotations", type=int, default=0)
    parser.add_argument("--archs", nargs="*", default=list(FAMILIES))
    parser.add_argument("--widths", nargs="*", type=int, help="instead of each family's two")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16-mixed"])
    parser.add_argument(
        "--compile", action="store_true", help="also time train.compile (minutes per model)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)

    from pipeline.models import REGISTRY

    header = (
        f"{'arch':<12}{'width':>6}{'N':>9}{'steps':>6}{'atoms/st':>9}{'atoms/s':>9}"
        f"{'ms/step':>9}{'inside':>8}{'graph':>8}{'data':>8}{'loop':>8}{'outside':>8}"
        f"{'| prefetch':>10}{'speedup':>8}{'| cached':>9}{'speedup':>8}{'| host':>8}"
    )
    modes = MODES + (("compiled",) if args.compile else ())
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp))
        print(f"data: {data}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(header)
        for arch in args.archs:
            module = REGISTRY[arch].split(":")[0]
            if importlib.util.find_spec(module) is None:
                print(f"{arch}: {module} does not exist yet, skipped")
                continue
            hparams, widths, share = FAMILIES[arch]
            steps = max(3, round(share * args.steps))
            for width in args.widths or widths:
                runs = {}
                for mode in modes:
                    out = Path(tmp) / "runs" / arch / str(width) / mode
                    runs[mode] = measure(data, out, arch, hparams, width, steps, mode, args)
                row, pre, cached = runs["plain"], runs["prefetch"], runs["cached"]
                # the share of step time the device waits for the host, in the device's
                # default mode: on CUDA the prefetch thread's (its data share: waiting for
                # the batch, copies, device graph, rotations); on the CPU the data-prep share
                host = pre["data"] if row["device"] == "cuda" else row["data"]
                print(
                    f"{row['arch']:<12}{row['width']:>6}{row['N']:>9}{row['steps']:>6}"
                    f"{row['atoms/step']:>9.0f}{row['atoms/s']:>9.0f}{row['ms/step']:>9.1f}"
                    f"{row['inside']:>8.1%}{row['graph']:>8.1%}{row['data']:>8.1%}"
                    f"{row['loop']:>8.1%}{row['outside']:>8.1%}"
                    f"{pre['outside']:>10.1%}{pre['atoms/s'] / row['atoms/s']:>7.2f}x"
                    f"{cached['outside']:>9.1%}{cached['atoms/s'] / row['atoms/s']:>7.2f}x"
                    f"{host:>8.1%}",
                    flush=True,
                )
                if "compiled" in runs:
                    comp = runs["compiled"]
                    gain = row["median_ms"] / comp["median_ms"]
                    print(
                        f"{'':<12}compiled: median step {comp['median_ms']:.1f} ms against "
                        f"{row['median_ms']:.1f} ms eager ({gain:.2f}x), compile and "
                        f"recompiles {comp['excess_s']:.1f} s",
                        flush=True,
                    )
    print(
        "\nShares of the training-step time of the CPU default (batches built on the"
        " training thread):\n"
        "  inside  forward + backward + gradient check + optimizer step\n"
        "  graph   radius graph (part of data)\n"
        "  data    batch assembly + radius graph + targets/rotations\n"
        "  loop    schedule, logging, progress bar, bookkeeping inside the training loop\n"
        "  outside data + loop (goal < 5 %)\n"
        "Same model, same run: '| prefetch' = outside share with the background batch thread"
        " (the CUDA\ndefault; its graph time is overlapped), '| cached' = outside share with"
        " cached graphs (epochs\nafter the first); speedup = their atoms/s over the default's.\n"
        "'| host' = share of step time the device waits for the host: on CUDA the prefetch"
        " mode's data\nshare (the CUDA default), on the CPU the default's data-prep share."
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
