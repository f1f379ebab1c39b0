"""MPNN message input on the demo data: the paper's [r_uv, |r_uv|] against a radial basis.

Trains ``MPNN(message_input="paper")`` and ``MPNN(message_input="radial_basis")`` at the
same width and depth, from the same seed, on the same embedded GFN2-xTB molecules with
the demo study's optimiser (schedule-free AdamW, lr 2e-2 at width 32, 80 warmup steps,
batch 16) and prints the validation loss of eq. 1 (normalised units) every
``--eval-every`` steps, plus the step time. One thread; timings on a shared machine are
only comparable within one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_mpnn_message.py --steps 600
"""

from __future__ import annotations

import argparse
import time

import h5py
import numpy as np
import torch

from pipeline.data.demo import demo_path
from pipeline.data.graphs import radius_graph
from pipeline.models.mpnn import MPNN
from pipeline.train.loss import combine, loss_terms, validation_metrics
from pipeline.train.optim import evaluation_weights, make_optimizer


def load_molecules(count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """The first ``count`` neutral closed-shell demo molecules: (z, pos, forces, energy)."""
    with h5py.File(demo_path(), "r") as f:
        keep = np.flatnonzero((f["charge"][:] == 0) & (f["spin"][:] == 1))[:count]
        ptr = f["ptr"][:]
        z, pos, frc, energy = (f[k][:] for k in ("atomic_numbers", "positions", "forces", "energy"))
    return [
        (z[ptr[m] : ptr[m + 1]], pos[ptr[m] : ptr[m + 1]], frc[ptr[m] : ptr[m + 1]], energy[m])
        for m in keep
    ]


def make_batch(mols, reference: np.ndarray, mean: float, sigma: float):
    z = torch.as_tensor(np.concatenate([m[0] for m in mols]).astype(np.int64))
    pos = torch.as_tensor(np.concatenate([m[1] for m in mols]))
    n_atoms = torch.as_tensor([len(m[0]) for m in mols])
    batch = torch.repeat_interleave(torch.arange(len(mols)), n_atoms)
    referenced = np.array([m[3] - reference[m[0]].sum() for m in mols])
    energy = torch.as_tensor((referenced - mean) / sigma, dtype=torch.float32)
    forces = torch.as_tensor(np.concatenate([m[2] for m in mols]) / sigma)
    edges = radius_graph(pos, batch, 6.0, 30)
    return z, pos, edges, batch, n_atoms, energy, forces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600, help="at least 1")
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train", type=int, default=4000, help="training molecules")
    parser.add_argument("--val", type=int, default=400, help="validation molecules")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    mols = load_molecules(args.train + args.val)
    val_mols, train_mols = mols[: args.val], mols[args.val :]
    # per-element references by least squares on the training molecules, then mean and std
    elements = np.unique(np.concatenate([m[0] for m in train_mols]))
    design = np.stack([[np.sum(m[0] == e) for e in elements] for m in train_mols]).astype(float)
    coef, *_ = np.linalg.lstsq(design, np.array([m[3] for m in train_mols]), rcond=None)
    reference = np.zeros(120)
    reference[elements] = coef
    referenced = np.array([m[3] - reference[m[0]].sum() for m in train_mols])
    mean, sigma = float(referenced.mean()), float(referenced.std())
    val_batches = [
        make_batch(val_mols[i : i + 64], reference, mean, sigma)
        for i in range(0, len(val_mols), 64)
    ]

    # the trivial predictor (zero referenced energy, zero forces) for scale
    zero = np.zeros(2)
    for *_, n_atoms, energy, forces in val_batches:
        terms = loss_terms(
            torch.zeros_like(energy), torch.zeros_like(forces), energy, forces, n_atoms
        )
        zero += [float(terms.energy_sum), float(terms.force_sum)]
    print(f"zero predictor: val loss {zero.sum() / args.val:.4f}")

    for message_input in ("paper", "radial_basis"):
        torch.manual_seed(args.seed)
        extra = {"num_radial": 48, "radial_start": 0.5} if message_input == "radial_basis" else {}
        model = MPNN(width=args.width, num_layers=args.layers, message_input=message_input, **extra)
        optimizer = make_optimizer(model, lr=2e-2 * 32 / args.width, warmup_steps=80)
        order = np.random.default_rng(args.seed).permutation(len(train_mols))
        seconds, row = 0.0, []
        for step in range(1, args.steps + 1):
            start = (step - 1) * args.batch_size % len(train_mols)
            chosen = [train_mols[i] for i in order[start : start + args.batch_size]]
            z, pos, edges, batch, n_atoms, energy, forces = make_batch(
                chosen, reference, mean, sigma
            )
            tic = time.perf_counter()
            optimizer.zero_grad()
            e_pred, f_pred = model(z, pos, edges, batch, len(chosen))
            loss, _, _ = combine(loss_terms(e_pred, f_pred, energy, forces, n_atoms), 1.0, 1.0)
            loss.backward()
            optimizer.step()
            seconds += time.perf_counter() - tic
            if step % args.eval_every == 0:
                sums = np.zeros(2)
                molecules = atoms = 0
                with torch.no_grad(), evaluation_weights(model, optimizer):
                    for z, pos, edges, batch, n_atoms, energy, forces in val_batches:
                        e_pred, f_pred = model(z, pos, edges, batch, len(n_atoms))
                        terms = loss_terms(e_pred, f_pred, energy, forces, n_atoms)
                        sums += [float(terms.energy_sum), float(terms.force_sum)]
                        molecules, atoms = molecules + terms.num_molecules, atoms + terms.num_atoms
                metrics = validation_metrics(*sums, molecules, atoms, 1.0, 1.0, sigma)
                row.append(f"{step}: {metrics['val_loss']:.4f}")
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"{message_input:13s} w={args.width} L={args.layers} N={n_params}  val loss "
            f"{'  '.join(row)}  ({1000 * seconds / args.steps:.1f} ms/step)"
        )


if __name__ == "__main__":
    main()
