"""Data-stage throughput: aselmdb extraction (molecules/s) and loader + graphs (atoms/s).

Run: ``python benchmarks/bench_data.py [--molecules 20000] [--shards 4] [--workers 2]``.
Builds a synthetic OMol25-style folder of ``*.aselmdb`` shards (neutral molecules of
8-40 atoms) in a temporary directory, extracts it with ``extract_dataset`` and then
times ``iterate_batches`` (gather + radius graph) over the training store for the
6 Angstrom / 30-neighbour graph and the GemNet-OC 10 Angstrom / 50-neighbour graph.
Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build_shards(folder: Path, n_molecules: int, n_shards: int, seed: int = 0) -> int:
    """Write ``n_molecules`` random neutral molecules over ``n_shards`` shards; atoms."""
    import ase.db
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    total = 0
    per = -(-n_molecules // n_shards)
    for s in range(n_shards):
        db = ase.db.connect(str(folder / f"shard{s:03d}.aselmdb"), type="aselmdb")
        with db:
            for _ in range(min(per, n_molecules - s * per)):
                n = int(rng.integers(8, 41))
                pos = np.zeros((n, 3))
                pos[:, 0] = np.cumsum(rng.uniform(1.0, 1.5, n))
                pos[:, 1:] = rng.uniform(-0.3, 0.3, (n, 2))
                atoms = Atoms(numbers=rng.choice([1, 6, 7, 8], n), positions=pos)
                atoms.calc = SinglePointCalculator(
                    atoms, energy=float(rng.normal(-1000, 10)), forces=rng.normal(size=(n, 3))
                )
                atoms.info.update(charge=0, spin=1)
                db.write(atoms, data=dict(atoms.info))
                total += n
        db.close()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from pipeline.data.extract import extract_dataset
    from pipeline.data.loader import iterate_batches
    from pipeline.data.store import MoleculeStore

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "omol").mkdir()
        t0 = time.perf_counter()
        atoms = build_shards(tmp / "omol", args.molecules, args.shards)
        print(
            f"built {args.molecules} molecules ({atoms} atoms) in {args.shards} shards "
            f"in {time.perf_counter() - t0:.1f} s"
        )

        t0 = time.perf_counter()
        summary = extract_dataset(
            "omol25", tmp / "omol", tmp / "out", val_size=1000, n_workers=args.workers
        )
        dt = time.perf_counter() - t0
        print(
            f"extraction: {summary['read']} molecules in {dt:.2f} s on {args.workers} "
            f"processes = {summary['read'] / dt:,.0f} molecules/s "
            f"({atoms / dt:,.0f} atoms/s)"
        )

        t0 = time.perf_counter()
        store = MoleculeStore.from_h5(tmp / "out" / "train.h5")
        print(f"store load: {store.num_atoms} atoms in {time.perf_counter() - t0:.2f} s")
        for cutoff, k in ((6.0, 30), (10.0, 50)):
            order = np.random.default_rng(1).permutation(store.num_molecules)
            order = order[: args.batch_size * args.batches]
            t0 = time.perf_counter()
            n_atoms = n_edges = 0
            for batch in iterate_batches(store, order, args.batch_size, cutoff, k):
                n_atoms += batch.num_atoms
                n_edges += batch.edge_index.shape[1]
            dt = time.perf_counter() - t0
            print(
                f"loader + radius graph ({cutoff:g} A, {k} nbrs, batch {args.batch_size}): "
                f"{n_atoms / dt:,.0f} atoms/s, {dt / args.batches * 1e3:.2f} ms/batch, "
                f"{n_edges / n_atoms:.1f} edges/atom"
            )


if __name__ == "__main__":
    main()
