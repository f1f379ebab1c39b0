"""Our eSEN against fairchem-core's eSEN backbone: step time and a training comparison.

Step time (issue 16 item 1: ours <= 0.6x fairchem's at equal parameters). A batch
of 64 molecules of the embedded demo data (``extract_dataset("demo")``, 6 Angstrom
/ 30-neighbour graph from :func:`pipeline.data.loader.make_batch`) is saved to a
temporary file; each model is then timed in its own fresh process (ours with this
interpreter, fairchem with the interpreter of a separate venv), one after the
other, single thread by default. The loss is ``mean|E| + mean|F|`` over the batch;
a step is forward, loss and backward. Printed per ``lmax`` (4 and 2, ``mmax`` 2,
hidden 32, 12 layers): parameter counts, median ms per step (wall and process
CPU), atoms/s, and the ratio ours/fairchem (below 1.0 means ours is faster).

Training (issue 13 item 6: ours within 5 % of fairchem's validation loss). Both
models train on the same batches of demo molecules (``--train-steps`` of
``--train-batch`` molecules, targets referenced and normalised as the pipeline
trains, forces divided by the same sigma), with schedule-free AdamW at the same
learning rate and warm-up, the eq. 1 loss (per-atom energy MAE + per-molecule
mean force L2 norm), both from seed 0; the validation loss on the first
``--val-molecules`` validation molecules is printed every ``--eval-every`` steps
(schedule-free averaged weights) with the training step time.

    python benchmarks/bench_fairchem.py [--threads 1] [--repeats 3]
        [--skip-timing] [--skip-training] [--train-steps 300] [--ffn grid|gate]

Models compared
---------------
- ours: ``build("esen", width=C, lmax=..., mmax=2, hidden_channels=32,
  num_layers=...)`` with the paper's radial sizes (Table 5 count: 441,773 at
  C 4, lmax 4), atom-wise feed-forward ``--ffn`` (default "grid", the S2-grid
  MLP that fairchem and config/paper.yaml use; "gate" is the demo's).
- fairchem: ``fairchem.core.models.uma.escn_md.eSCNMDBackbone`` (direct
  forces, ``edge_channels`` 8, ``num_distance_basis`` 8, no dataset embedding,
  default ``ff_type="grid"``) with an ``MLP_Energy_Head`` and a
  ``Linear_Force_Head``: 444,494 parameters at C 4, lmax 4, of which 444,490
  trainable (the 4 charge/spin frequencies are frozen; trainable parameters are
  what both sides print and match).
  Its width is the even C (its charge/spin embedding needs one) whose count
  is nearest ours (its count grows about linearly in C, ours quadratically, so
  the two agree only near C 4); the edges of the saved batch are passed in
  (``otf_graph=False``), as ours receives them.

fairchem is not a dependency of the project. Install it into a venv outside
the repository (the exact torch pin reuses the CPU wheel on disk; fairchem-core
2.24 accepts torch 2.13.0; schedulefree for the training comparison)::

    python3.11 -m venv /work/fairchem-venv
    /work/fairchem-venv/bin/pip install torch==2.13.0
    /work/fairchem-venv/bin/pip install fairchem-core==2.24.0 torch==2.13.0 schedulefree==1.4.1

and point ``--fairchem-python`` (or ``$FAIRCHEM_PYTHON``) at its interpreter.
Without it the script times and trains ours alone and prints these commands.

GemNet-OC is not compared here (see benchmarks/bench_gemnet_oc.py).

Like ``bench_esen.py``, the script restarts itself with glibc malloc tuned
(``MALLOC_MMAP_MAX_=0``, ``MALLOC_TRIM_THRESHOLD_=1e11``; both processes
inherit it) unless ``--no-malloc-tuning``: without it, step times on CPU vary
by several times. Wall times depend on the machine's load, which is printed;
process CPU time per step is the steadier number.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
DEFAULT_FAIRCHEM_PYTHON = "/work/fairchem-venv/bin/python"
INSTALL_HINT = """fairchem-core is not importable with {python}: {reason}
Install it into a separate venv (not in the repository), then rerun:
    python3.11 -m venv /work/fairchem-venv
    /work/fairchem-venv/bin/pip install torch==2.13.0
    /work/fairchem-venv/bin/pip install fairchem-core==2.24.0 torch==2.13.0 schedulefree==1.4.1
(or pass --fairchem-python / set FAIRCHEM_PYTHON to a Python that has fairchem-core 2.x)"""
RESULT_TAG = "RESULT "


# ----------------------------------------------------------------------------- workers


def step_loss(energy: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
    """The timed steps' loss: ``mean|E| + mean |F|`` (no targets needed)."""
    return energy.abs().mean() + forces.norm(dim=1).mean()


def time_steps(model: torch.nn.Module, step, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of ``step()`` + backward, after one warm-up step."""
    wall, cpu = [], []
    for i in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        loss.backward()
        t1, c1 = time.perf_counter(), time.process_time()
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite loss {float(loss)} in step {i}")
        if i > 0:  # the first is warm-up
            wall.append(t1 - t0)
            cpu.append(c1 - c0)
        del loss
        model.zero_grad(set_to_none=True)
        gc.collect()
    return wall, cpu


def _worker_ours(batch: dict, args: argparse.Namespace) -> dict:
    from pipeline.models import build, num_params

    torch.manual_seed(0)
    model = build(
        "esen",
        width=args.channels,
        lmax=args.lmax,
        mmax=2,
        hidden_channels=32,
        num_layers=args.layers,
        ffn=args.ffn,
    )
    model.train()
    z, pos, b = batch["atomic_numbers"], batch["positions"], batch["batch"]
    edges, m = batch["edge_index"], int(batch["n_atoms"].numel())

    def step():
        energy, forces = model(z, pos, edges, b, m)
        return step_loss(energy, forces)

    wall, cpu = time_steps(model, step, args.repeats)
    return {"params": num_params(model), "channels": args.channels, "wall": wall, "cpu": cpu}


def _fairchem_model(channels: int, lmax: int, layers: int) -> torch.nn.ModuleDict:
    from fairchem.core.models.uma.escn_md import (
        Linear_Force_Head,
        MLP_Energy_Head,
        eSCNMDBackbone,
    )

    backbone = eSCNMDBackbone(
        sphere_channels=channels,
        lmax=lmax,
        mmax=2,
        hidden_channels=32,
        num_layers=layers,
        edge_channels=8,
        num_distance_basis=8,
        cutoff=6.0,
        max_neighbors=30,
        otf_graph=False,
        direct_forces=True,
        regress_forces=True,
        use_dataset_embedding=False,
    )
    return torch.nn.ModuleDict(
        {
            "backbone": backbone,
            "energy": MLP_Energy_Head(backbone),
            "forces": Linear_Force_Head(backbone),
        }
    )


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _nearest_fairchem_width(target: int, lmax: int, layers: int) -> tuple[int, int]:
    """The even C whose fairchem count is nearest ``target`` (charge/spin embeddings need
    an even C; counts increase with C), and that count."""
    counts: dict[int, int] = {}
    for c in range(2, 257, 2):
        counts[c] = _count(_fairchem_model(c, lmax, layers))
        if counts[c] >= target:
            break
    channels = min(counts, key=lambda k: (abs(counts[k] - target), k))
    return channels, counts[channels]


def _fairchem_data(batch: dict):
    """fairchem's AtomicData for a saved batch (no cell, edges given, neutral singlets)."""
    from fairchem.core.datasets.atomic_data import AtomicData

    z, pos, b = batch["atomic_numbers"], batch["positions"], batch["batch"]
    edges, natoms = batch["edge_index"], batch["n_atoms"]
    g, e, a = int(natoms.numel()), edges.shape[1], z.numel()
    return AtomicData(
        pos=pos,
        atomic_numbers=z,
        cell=torch.zeros(g, 3, 3, dtype=pos.dtype),
        pbc=torch.zeros(g, 3, dtype=torch.bool),
        natoms=natoms,
        edge_index=edges,
        cell_offsets=torch.zeros(e, 3, dtype=pos.dtype),
        nedges=torch.bincount(b[edges[1]], minlength=g),
        charge=torch.zeros(g, dtype=torch.long),
        spin=torch.ones(g, dtype=torch.long),  # multiplicity 1 (0 is fairchem's "unset")
        fixed=torch.zeros(a, dtype=torch.long),
        tags=torch.zeros(a, dtype=torch.long),
        batch=b,
        sid=[""] * g,
    )


def _fairchem_forward(model: torch.nn.ModuleDict, data) -> tuple[torch.Tensor, torch.Tensor]:
    emb = model["backbone"](data)
    return model["energy"](data, emb)["energy"], model["forces"](data, emb)["forces"]


def _worker_fairchem(batch: dict, args: argparse.Namespace) -> dict:
    channels, params = _nearest_fairchem_width(args.target_params, args.lmax, args.layers)
    torch.manual_seed(0)
    model = _fairchem_model(channels, args.lmax, args.layers)
    model.train()
    data = _fairchem_data(batch)

    def step():
        return step_loss(*_fairchem_forward(model, data))

    wall, cpu = time_steps(model, step, args.repeats)
    return {"params": params, "channels": channels, "wall": wall, "cpu": cpu}


# ----------------------------------------------------------------------------- training


def eq1_loss(energy: torch.Tensor, forces: torch.Tensor, batch: dict) -> torch.Tensor:
    """Eq. 1 on normalised targets: per-atom energy MAE + per-molecule mean force L2 norm."""
    n = batch["n_atoms"].to(forces.dtype)  # [M]
    # fairchem's energy head sums in float64: compare in the forces' dtype
    energy_term = ((energy.to(forces.dtype) - batch["energy"]).abs() / n).mean()
    force_norm = (forces - batch["forces"]).norm(dim=1)  # [A]
    per_molecule = torch.zeros_like(n).index_add_(0, batch["batch"], force_norm) / n
    return energy_term + per_molecule.mean()


def train_schedule_free(
    model: torch.nn.Module,
    forward,
    data: dict,
    *,
    lr: float,
    warmup_steps: int,
    eval_every: int,
    params=None,
    log: bool = False,
) -> dict:
    """Schedule-free AdamW on the saved batches; validation loss at the saved steps.

    ``params``: the tensors to optimise (default: all of the model's). Returns
    ``val_loss`` and ``train_loss`` (mean since the previous evaluation) by step, and
    the ``wall`` and process ``cpu`` seconds of every step.
    """
    import schedulefree

    params = list(model.parameters()) if params is None else list(params)
    optimizer = schedulefree.AdamWScheduleFree(params, lr=lr, warmup_steps=warmup_steps)
    train, val = data["train"], data["val"]
    curve, train_curve, wall, cpu, running = {}, {}, [], [], []

    def validate(step: int) -> None:
        optimizer.eval()
        model.eval()
        with torch.no_grad():
            total = sum(float(eq1_loss(*forward(v), v)) * int(v["n_atoms"].numel()) for v in val)
        curve[step] = total / sum(int(v["n_atoms"].numel()) for v in val)
        optimizer.train()
        model.train()

    model.train()
    optimizer.train()
    for step, batch in enumerate(train, start=1):
        t0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = eq1_loss(*forward(batch), batch)
        loss.backward()
        optimizer.step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if not torch.isfinite(loss):
            raise RuntimeError(f"non-finite training loss {float(loss)} at step {step}")
        running.append(float(loss))
        if step % eval_every == 0 or step == len(train):
            validate(step)
            train_curve[step] = sum(running) / len(running)
            running = []
            if log:
                print(f"step {step}: val {curve[step]:.4f}", file=sys.stderr, flush=True)
    return {"val_loss": curve, "train_loss": train_curve, "wall": wall, "cpu": cpu}


def _worker_train_ours(data: dict, args: argparse.Namespace) -> dict:
    from pipeline.models import build, num_params

    torch.manual_seed(0)
    model = build(
        "esen",
        width=args.channels,
        lmax=args.lmax,
        mmax=2,
        hidden_channels=32,
        num_layers=args.layers,
        ffn=args.ffn,
    )

    def forward(b):
        return model(
            b["atomic_numbers"],
            b["positions"],
            b["edge_index"],
            b["batch"],
            int(b["n_atoms"].numel()),
        )

    res = train_schedule_free(
        model, forward, data, lr=args.lr, warmup_steps=args.warmup_steps, eval_every=args.eval_every
    )
    return res | {"params": num_params(model), "channels": args.channels}


def _worker_train_fairchem(data: dict, args: argparse.Namespace) -> dict:
    channels, params = _nearest_fairchem_width(args.target_params, args.lmax, args.layers)
    torch.manual_seed(0)
    model = _fairchem_model(channels, args.lmax, args.layers)
    for batch in data["train"] + data["val"]:
        batch["data"] = _fairchem_data(batch)

    def forward(b):
        return _fairchem_forward(model, b["data"])

    res = train_schedule_free(
        model, forward, data, lr=args.lr, warmup_steps=args.warmup_steps, eval_every=args.eval_every
    )
    return res | {"params": params, "channels": channels}


def worker(args: argparse.Namespace) -> None:
    """Time one model on the saved batch and print one ``RESULT {json}`` line."""
    torch.set_num_threads(args.threads)
    if len(args.lmax) != 1:
        raise ValueError(f"a worker times one lmax, got {args.lmax}")
    args.lmax = args.lmax[0]
    batch = torch.load(args.batch_file)
    fn = {
        "ours": _worker_ours,
        "fairchem": _worker_fairchem,
        "train-ours": _worker_train_ours,
        "train-fairchem": _worker_train_fairchem,
    }[args.worker]
    print(RESULT_TAG + json.dumps(fn(batch, args)), flush=True)


# ----------------------------------------------------------------------------- driver


def demo_batch(num_molecules: int, seed: int) -> dict:
    """``num_molecules`` random training molecules of the demo data, as a dict of tensors."""
    import numpy as np

    from pipeline.data.extract import extract_dataset
    from pipeline.data.loader import make_batch
    from pipeline.data.store import MoleculeStore

    with tempfile.TemporaryDirectory() as tmp:
        extract_dataset("demo", None, tmp, val_size=100, n_workers=1)
        store = MoleculeStore.from_h5(Path(tmp) / "train.h5")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(store.num_molecules, size=num_molecules, replace=False))
    b = make_batch(store, idx, cutoff=6.0, max_neighbors=30)
    return {
        "atomic_numbers": b.atomic_numbers,
        "positions": b.positions,
        "batch": b.batch,
        "edge_index": b.edge_index,
        "n_atoms": b.n_atoms,
    }


def training_data(
    num_steps: int, batch_size: int, val_molecules: int, seed: int
) -> dict[str, list[dict]]:
    """Batches of the demo data for a training comparison, targets as the pipeline trains.

    Energies are referenced and normalised, ``(E - sum_i ref[z_i] - mu) / sigma``, forces
    divided by ``sigma`` (element references, mu and sigma from the extraction's
    ``stats.json``). Training batches are consecutive ``batch_size`` slices of the
    (already shuffled) training set; validation is the first ``val_molecules`` molecules
    of the validation set, in batches of 32.
    """
    import numpy as np

    from pipeline.data.extract import extract_dataset
    from pipeline.data.loader import make_batch
    from pipeline.data.store import MoleculeStore

    with tempfile.TemporaryDirectory() as tmp:
        extract_dataset("demo", None, tmp, val_size=max(val_molecules, 100), n_workers=1)
        train = MoleculeStore.from_h5(Path(tmp) / "train.h5")
        val = MoleculeStore.from_h5(Path(tmp) / "val.h5")
        stats = json.loads((Path(tmp) / "stats.json").read_text())
    ref = torch.zeros(128, dtype=torch.float64)
    for z, value in stats["element_energy_eV"].items():
        ref[int(z)] = value
    mu, sigma = stats["energy_mean_eV"], stats["energy_std_eV"]

    def batch_of(store, idx) -> dict:
        b = make_batch(store, idx, cutoff=6.0, max_neighbors=30)
        reference = torch.zeros(len(idx), dtype=torch.float64).index_add_(
            0, b.batch, ref[b.atomic_numbers]
        )
        return {
            "atomic_numbers": b.atomic_numbers,
            "positions": b.positions,
            "batch": b.batch,
            "edge_index": b.edge_index,
            "n_atoms": b.n_atoms,
            "energy": ((b.energy - reference - mu) / sigma).float(),
            "forces": b.forces / sigma,
        }

    order = np.random.default_rng(seed).permutation(train.num_molecules)
    need = num_steps * batch_size
    order = np.resize(order, need)  # wraps around if the set is smaller than the run
    train_batches = [
        batch_of(train, np.sort(order[i : i + batch_size])) for i in range(0, need, batch_size)
    ]
    n_val = min(val_molecules, val.num_molecules)
    val_batches = [batch_of(val, np.arange(i, min(i + 32, n_val))) for i in range(0, n_val, 32)]
    return {"train": train_batches, "val": val_batches}


def fairchem_problem(python: str) -> str | None:
    """None if ``python`` imports fairchem's eSEN backbone, else why not (one line)."""
    if not Path(python).exists():
        return f"{python} does not exist"
    probe = "import fairchem.core, fairchem.core.models.uma.escn_md as m; print(m.__file__)"
    proc = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {proc.returncode}"
    return None


def run_worker(python: str, kind: str, batch_file: str, args, **extra) -> dict:
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--batch-file",
        batch_file,
        "--threads",
        str(args.threads),
        "--repeats",
        str(args.repeats),
        "--layers",
        str(args.layers),
        "--ffn",
        args.ffn,
        "--lr",
        str(args.lr),
        "--warmup-steps",
        str(args.warmup_steps),
        "--eval-every",
        str(args.eval_every),
    ]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    results = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not results:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{kind} worker failed (exit {proc.returncode}):\n{tail}")
    return json.loads(results[-1][len(RESULT_TAG) :])


def describe(name: str, res: dict, atoms: int) -> str:
    wall, cpu = statistics.median(res["wall"]), statistics.median(res["cpu"])
    return (
        f"  {name:9s} C {res['channels']:2d}, {res['params']:>9,} params: "
        f"{wall * 1e3:8.1f} ms/step wall (min {min(res['wall']) * 1e3:.1f}), "
        f"{atoms / wall:7,.0f} atoms/s; "
        f"CPU {cpu * 1e3:8.1f} ms/step ({atoms / cpu:,.0f} atoms/CPU-s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after 1 warm-up")
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--channels", type=int, default=4, help="our eSEN's C")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--lmax", type=int, nargs="+", default=[4, 2])
    parser.add_argument(
        "--ffn",
        choices=["gate", "grid"],
        default="grid",
        help="our atom-wise feed-forward (grid: the reference's, and config/paper.yaml's)",
    )
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--train-batch", type=int, default=16, help="molecules per step")
    parser.add_argument("--train-layers", type=int, default=4)
    parser.add_argument("--train-lmax", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-3, help="schedule-free AdamW, both")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--val-molecules", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="choice of demo molecules")
    parser.add_argument(
        "--fairchem-python",
        default=os.environ.get("FAIRCHEM_PYTHON", DEFAULT_FAIRCHEM_PYTHON),
    )
    parser.add_argument("--no-malloc-tuning", action="store_true")
    # internal: one timing in a fresh process
    parser.add_argument(
        "--worker",
        choices=["ours", "fairchem", "train-ours", "train-fairchem"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--batch-file", help=argparse.SUPPRESS)
    parser.add_argument("--target-params", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if not args.no_malloc_tuning and MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | MALLOC_ENV)
    torch.set_num_threads(args.threads)

    problem = fairchem_problem(args.fairchem_python)
    if problem is not None:
        print(INSTALL_HINT.format(python=args.fairchem_python, reason=problem))
        print("timing ours alone\n")

    if not args.skip_timing:
        compare_step_times(args, problem)
    if not args.skip_training:
        compare_training(args, problem)
    print(f"load average now {os.getloadavg()[0]:.1f} (absolute times scale with it)")


def compare_training(args: argparse.Namespace, problem: str | None) -> None:
    """Train ours and fairchem's eSEN on the same batches; print validation losses."""
    data = training_data(args.train_steps, args.train_batch, args.val_molecules, args.seed)
    atoms = sum(int(b["atomic_numbers"].numel()) for b in data["train"]) / len(data["train"])
    print(
        f"training: {args.train_steps} steps of {args.train_batch} demo molecules "
        f"(~{atoms:.0f} atoms), schedule-free AdamW lr {args.lr}, warmup "
        f"{args.warmup_steps}, eq. 1 loss on normalised targets; lmax {args.train_lmax}, "
        f"mmax 2, hidden 32, {args.train_layers} layers; validation on "
        f"{sum(int(b['n_atoms'].numel()) for b in data['val'])} molecules"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_file = str(Path(tmp) / "train.pt")
        torch.save(data, data_file)
        common = dict(lmax=args.train_lmax, layers=args.train_layers)
        ours = run_worker(
            sys.executable, "train-ours", data_file, args, channels=args.channels, **common
        )
        results = {"ours": ours}
        if problem is None:
            results["fairchem"] = run_worker(
                args.fairchem_python,
                "train-fairchem",
                data_file,
                args,
                target_params=ours["params"],
                **common,
            )
    print_training_comparison(results, lambda res: f" (C {res['channels']})")


def print_training_comparison(results: dict, note=lambda res: "", ratio_note: str = "") -> None:
    """Validation loss by step, parameters and ms/step per side; ours/fairchem at the end.

    ``results``: {side: worker result}, JSON round-tripped (steps are string keys);
    ``note(res)`` is appended to a side's row, ``ratio_note`` to the ratio's line.
    """
    steps = sorted(int(k) for k in next(iter(results.values()))["val_loss"])
    print(f"  {'':9s} {'params':>9s}  " + "  ".join(f"val@{k:<5d}" for k in steps) + "  ms/step")
    for name, res in results.items():
        losses = "  ".join(f"{res['val_loss'][str(k)]:9.4f}" for k in steps)
        print(
            f"  {name:9s} {res['params']:>9,}  {losses}  "
            f"{statistics.median(res['wall']) * 1e3:7.1f} wall, "
            f"{statistics.median(res['cpu']) * 1e3:.1f} CPU{note(res)}"
        )
    if "ours" in results and "fairchem" in results:
        last = str(steps[-1])
        ratio = results["ours"]["val_loss"][last] / results["fairchem"]["val_loss"][last]
        print(
            f"  final validation loss ours/fairchem: {ratio:.3f} "
            f"(issue 13's target: within 5 %, i.e. <= 1.05){ratio_note}",
            flush=True,
        )


def compare_step_times(args: argparse.Namespace, problem: str | None) -> None:
    """Forward+backward time of ours and fairchem's on one demo batch, per lmax."""
    batch = demo_batch(args.molecules, args.seed)
    atoms = int(batch["atomic_numbers"].numel())
    print(
        f"batch: {args.molecules} demo molecules, {atoms} atoms, "
        f"{batch['edge_index'].shape[1]} edges (6 A / 30 neighbours); {args.threads} thread(s), "
        f"{args.repeats} timed steps after 1 warm-up, torch {torch.__version__}; malloc "
        f"{ {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')} or 'defaults' }"
    )
    with tempfile.TemporaryDirectory() as tmp:
        batch_file = str(Path(tmp) / "batch.pt")
        torch.save(batch, batch_file)
        for lmax in args.lmax:
            print(
                f"lmax {lmax}, mmax 2, hidden 32, {args.layers} layers "
                f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):"
            )
            ours = run_worker(
                sys.executable, "ours", batch_file, args, lmax=lmax, channels=args.channels
            )
            print(describe("ours", ours, atoms), flush=True)
            if problem is not None:
                continue
            fc = run_worker(
                args.fairchem_python,
                "fairchem",
                batch_file,
                args,
                lmax=lmax,
                target_params=ours["params"],
            )
            print(describe("fairchem", fc, atoms))
            ratio_wall = statistics.median(ours["wall"]) / statistics.median(fc["wall"])
            ratio_cpu = statistics.median(ours["cpu"]) / statistics.median(fc["cpu"])
            print(
                f"  ratio ours/fairchem step time: {ratio_wall:.2f} wall, {ratio_cpu:.2f} CPU "
                f"(parameters {ours['params'] / fc['params']:.3f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
