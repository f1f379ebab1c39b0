"""Data-stage throughput: aselmdb extraction (molecules/s) and loader + graphs (atoms/s).

Run: ``python benchmarks/bench_data.py [--molecules 20000] [--shards 4] [--workers 2]
[--folder /tmp/bench_omol] [--nan-every 100] [--profile]``.
Builds a synthetic OMol25-style folder of ``*.aselmdb`` shards (neutral molecules of
8-40 atoms; with ``--nan-every K`` every K-th row holds a NaN force, which takes the
stdlib-JSON fallback and is dropped as non-finite) in a temporary directory, or reuses
``--folder`` (built there once: ASE writes ~300 rows/s), extracts it with
``extract_dataset`` and then times ``iterate_batches`` (gather + radius graph) over the
training store for the 6 Angstrom / 30-neighbour graph and the GemNet-OC 10 Angstrom /
50-neighbour graph. ``--profile`` adds a cProfile table of one shard read in this
process (what bounds the rate). Prints the figures and the children's peak memory;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build_shards(
    folder: Path, n_molecules: int, n_shards: int, seed: int = 0, nan_every: int = 0
) -> int:
    """Write ``n_molecules`` random neutral molecules over ``n_shards`` shards; atoms.

    With ``nan_every`` K > 0, every K-th molecule gets a NaN force component."""
    import ase.db
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    total = 0
    per = -(-n_molecules // n_shards)
    written = 0
    for s in range(n_shards):
        db = ase.db.connect(str(folder / f"shard{s:03d}.aselmdb"), type="aselmdb")
        with db:
            for _ in range(min(per, n_molecules - s * per)):
                n = int(rng.integers(8, 41))
                pos = np.zeros((n, 3))
                pos[:, 0] = np.cumsum(rng.uniform(1.0, 1.5, n))
                pos[:, 1:] = rng.uniform(-0.3, 0.3, (n, 2))
                atoms = Atoms(numbers=rng.choice([1, 6, 7, 8], n), positions=pos)
                forces = rng.normal(size=(n, 3))
                written += 1
                if nan_every and written % nan_every == 0:
                    forces[0, 0] = np.nan
                atoms.calc = SinglePointCalculator(
                    atoms, energy=float(rng.normal(-1000, 10)), forces=forces
                )
                atoms.info.update(charge=0, spin=1)
                db.write(atoms, data=dict(atoms.info))
                total += n
        db.close()
    return total


def _atoms_of(out: Path) -> int:
    """Atoms kept in the extracted splits (the rate's atoms/s)."""
    import h5py

    total = 0
    for split in ("train", "val"):
        with h5py.File(out / f"{split}.h5", "r") as handle:
            total += int(handle["ptr"][-1])
    return total


def profile_shard(shard: Path) -> None:
    """cProfile of reading, checking and spilling one shard in this process."""
    from pipeline.data.extract import _process
    from pipeline.data.readers import iter_aselmdb

    filters = {"neutral_only": True, "max_atoms": 350, "cutoff": 6.0}
    with tempfile.TemporaryDirectory() as spill:
        _process(iter_aselmdb(shard), Path(spill), filters)  # imports, page cache
    with tempfile.TemporaryDirectory() as spill:
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        counts = _process(iter_aselmdb(shard), Path(spill), filters)
        profiler.disable()
        dt = time.perf_counter() - t0
    print(f"one process, {shard.name}: {counts['read'] / dt:,.0f} molecules/s (profiled)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=None, help="reuse/build shards here")
    parser.add_argument("--nan-every", type=int, default=0, help="a NaN force every K rows")
    parser.add_argument("--profile", action="store_true", help="cProfile one shard's read")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from pipeline.data.extract import extract_dataset
    from pipeline.data.loader import iterate_batches
    from pipeline.data.store import MoleculeStore

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = args.folder or tmp / "omol"
        if not list(shards.glob("*.aselmdb")):
            shards.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            atoms = build_shards(shards, args.molecules, args.shards, nan_every=args.nan_every)
            print(
                f"built {args.molecules} molecules ({atoms} atoms) in {args.shards} shards "
                f"in {time.perf_counter() - t0:.1f} s"
            )
        if args.profile:
            profile_shard(sorted(shards.glob("*.aselmdb"))[0])

        t0 = time.perf_counter()
        main_cpu0 = time.process_time()
        summary = extract_dataset(
            "omol25", shards, tmp / "out", val_size=1000, n_workers=args.workers
        )
        dt = time.perf_counter() - t0
        main_cpu = time.process_time() - main_cpu0
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        reader_cpu = children.ru_utime + children.ru_stime
        atoms = _atoms_of(tmp / "out")
        read = summary["read"]
        print(
            f"extraction: {read} molecules in {dt:.2f} s wall on {args.workers} "
            f"processes = {read / dt:,.0f} molecules/s ({atoms / dt:,.0f} atoms/s)"
        )
        print(
            f"  CPU: shard readers {reader_cpu:.2f} s ({read / reader_cpu:,.0f} molecules per "
            f"CPU-second, {args.workers * read / reader_cpu:,.0f}/s on {args.workers} idle "
            f"cores), split + write {main_cpu:.2f} s in the main process"
        )
        print(
            f"  dropped: {summary['dropped']}; peak memory of a shard reader: "
            f"{children.ru_maxrss / 1024:.0f} MB"
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
