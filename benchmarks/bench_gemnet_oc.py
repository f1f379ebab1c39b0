"""Forward+backward time of GemNet-OC per batch, and atoms/s, at width 32 (paper depth 4).

A batch is 64 random organic-like molecules of 12-30 atoms (bonded clusters of H, C, N,
O, the generator of ``bench_esen.py``) on the model's 10 Angstrom / 50-neighbour graph.
Baseline measured in the same run: the project's MPNN at the same width on its own
6 Angstrom / 30-neighbour graph; the ratio GemNet-OC / MPNN is printed, as is the share
of the step spent building triplet/quadruplet indices and bases (``_graph``).

    python benchmarks/bench_gemnet_oc.py --threads 2

The comparison with fairchem's GemNet-OC (issue 5) needs fairchem-core 1.10 in a
separate venv (torch 2.4); it is not part of this script.

On a shared machine the wall time depends on the load, which is printed; the process
CPU time per step is printed too and is the steadier number.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import torch

from pipeline.data.graphs import radius_graph
from pipeline.models import build, num_params

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_esen import MALLOC_ENV, organic_batch, time_step  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--cutoff-qint", type=float, default=None, help="Angstrom")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning and MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | MALLOC_ENV)
    torch.set_num_threads(args.threads)

    z, pos, batch = organic_batch(args.molecules, seed=0)
    m = args.molecules
    torch.manual_seed(0)
    extra = {} if args.cutoff_qint is None else {"cutoff_qint": args.cutoff_qint}
    gemnet = build("gemnet_oc", width=args.width, **extra)
    edges = radius_graph(pos, batch, gemnet.cutoff, gemnet.max_neighbors)
    with torch.no_grad():
        t0 = time.perf_counter()
        g = gemnet._graph(pos, edges, len(z))
        t_graph = time.perf_counter() - t0
    quad = g["quad"]
    per_mid = torch.bincount(quad["trip_in_mid"], minlength=quad["num_qedges"])
    n_quad = int(per_mid[quad["trip_out_mid"]].sum() - (quad["self_term"] >= 0).sum())
    print(
        f"batch: {m} molecules, {len(z)} atoms, {edges.shape[1]} edges (10 A / 50), "
        f"{len(g['cbf_tint']['out'])} triplets, {n_quad} quadruplets from "
        f"{len(quad['u'])} + {len(quad['trip_in_mid'])} triplets (cutoff_qint "
        f"{gemnet.cutoff_qint} A); {args.threads} thread(s), torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    del g

    times, cpu = time_step(gemnet, z, pos, edges, batch, m, args.repeats)
    med, med_cpu = statistics.median(times), statistics.median(cpu)
    print(
        f"gemnet_oc w {args.width}, depth 4, {num_params(gemnet):,} params: fwd+bwd median "
        f"{med:.3f} s wall (min {min(times):.3f}), {len(z) / med:,.0f} atoms/s; process CPU "
        f"{med_cpu:.3f} s; indices+bases (forward only) {t_graph:.3f} s = "
        f"{t_graph / med:.0%} of the step"
    )

    torch.manual_seed(0)
    mpnn = build("mpnn", width=args.width)
    edges_mpnn = radius_graph(pos, batch, mpnn.cutoff, mpnn.max_neighbors)
    times_b, cpu_b = time_step(mpnn, z, pos, edges_mpnn, batch, m, args.repeats)
    med_b = statistics.median(times_b)
    print(
        f"baseline mpnn w {args.width}, depth 5, {num_params(mpnn):,} params, "
        f"{edges_mpnn.shape[1]} edges (6 A / 30): fwd+bwd median {med_b:.3f} s wall, "
        f"{len(z) / med_b:,.0f} atoms/s; process CPU {statistics.median(cpu_b):.3f} s"
    )
    print(f"ratio gemnet_oc / mpnn step time: {med / med_b:.1f}")
    print(f"load average now {os.getloadavg()[0]:.1f} (absolute times scale with it)")
    gc.collect()


if __name__ == "__main__":
    main()
