"""Forward+backward time of eSEN per batch, and atoms/s, at lmax 2 and 4 (C = 4, paper depth).

A batch is 64 random organic-like molecules of 12-30 atoms (bonded clusters of
H, C, N, O; 6 Angstrom / 30-neighbour graph). Also times the Wigner-D
construction of this package against e3nn's Euler-angle route on the same
edges (the baseline, measured in the same run) and prints the ratios.

    python benchmarks/bench_esen.py --threads 2

glibc's malloc hands blocks over its mmap threshold (at most 32 MB; a step
here allocates many tensors of 5-60 MB) back to the kernel at every free, so
each step pays page faults again, and trimming returns the heap top too: the
script restarts itself with ``MALLOC_MMAP_MAX_=0`` (no mmap: big blocks come
from the heap and are reused) and ``MALLOC_TRIM_THRESHOLD_=1e11`` unless
``--no-malloc-tuning``. Measured here: 1.7x less CPU per step at lmax 4 than
with ``MALLOC_MMAP_THRESHOLD_=1000000 MALLOC_TRIM_THRESHOLD_=100000000``.

On a shared machine the wall time depends on the load, which is printed; the
process CPU time per step is printed too and is the steadier number. For
reference, issue 5 measured fairchem-core 2.24's eSEN backbone on this kind of
machine, 2 threads: about 455 atoms/s at lmax 4 and 1,360 atoms/s at lmax 2
(C 4, hidden 32, 12 layers); that is another run, so compare with care.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import torch
from e3nn import o3

from pipeline.data.graphs import radius_graph
from pipeline.models import build, num_params
from pipeline.models.so3 import edge_frames

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def organic_batch(num_molecules: int, seed: int):
    """Bonded random clusters, 12-30 atoms each; returns z [A], pos [A, 3], batch [A]."""
    gen = torch.Generator().manual_seed(seed)
    zs, pos, batch = [], [], []
    for i in range(num_molecules):
        n = int(torch.randint(12, 31, (1,), generator=gen))
        heavy = torch.tensor([6, 6, 6, 7, 8])[torch.randint(5, (n,), generator=gen)]
        is_h = torch.rand(n, generator=gen) < 0.45
        z = torch.where(is_h, torch.ones_like(heavy), heavy)
        p = [torch.zeros(3)]
        while len(p) < n:
            d = torch.randn(3, generator=gen)
            cand = p[int(torch.randint(len(p), (1,), generator=gen))] + d / d.norm() * (
                1.0 + 0.5 * torch.rand((), generator=gen)
            )
            if min(float((cand - q).norm()) for q in p) > 0.95:
                p.append(cand)
        zs.append(z)
        pos.append(torch.stack(p))
        batch.append(torch.full((n,), i))
    return torch.cat(zs), torch.cat(pos), torch.cat(batch)


def time_step(model, z, pos, edges, batch, m, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of forward+backward, after one warm-up step."""
    times, cpu = [], []
    for _ in range(repeats + 1):  # the first is warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        energy, forces = model(z, pos, edges, batch, m)
        loss = energy.abs().mean() + forces.norm(dim=1).mean()
        loss.backward()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del energy, forces, loss
        model.zero_grad(set_to_none=True)
        gc.collect()
    return times[1:], cpu[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning and MALLOC_ENV.items() - os.environ.items():
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | MALLOC_ENV)
    torch.set_num_threads(args.threads)
    print("malloc:", {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")} or "defaults")

    z, pos, batch = organic_batch(args.molecules, seed=0)
    edges = radius_graph(pos, batch, 6.0, 30)
    print(
        f"batch: {args.molecules} molecules, {len(z)} atoms, {edges.shape[1]} edges, "
        f"{args.threads} thread(s), torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    # Wigner-D: ours (spherical harmonics at fixed points) vs e3nn Euler angles, lmax 4
    model4 = build("esen", channels=4, lmax=4, mmax=2, num_layers=args.layers)
    rot = edge_frames(pos[edges[0]] - pos[edges[1]])
    t0 = time.perf_counter()
    for _ in range(3):
        model4.wigner(rot)
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

    results = {}
    for lmax in (2, 4):
        torch.manual_seed(0)
        model = (
            model4
            if lmax == 4
            else build("esen", channels=4, lmax=lmax, mmax=2, num_layers=args.layers)
        )
        times, cpu = time_step(model, z, pos, edges, batch, args.molecules, args.repeats)
        med, med_cpu = statistics.median(times), statistics.median(cpu)
        results[lmax] = med
        print(
            f"lmax {lmax}: C 4, hidden 32, {args.layers} layers, {num_params(model):,} params: "
            f"fwd+bwd median {med:.3f} s wall (min {min(times):.3f}), {len(z) / med:,.0f} atoms/s; "
            f"process CPU {med_cpu:.3f} s ({len(z) / med_cpu:,.0f} atoms per CPU-second)"
        )
    print(f"ratio lmax4/lmax2 step time: {results[4] / results[2]:.2f}")
    print(f"load average now {os.getloadavg()[0]:.1f} (absolute times scale with it)")


if __name__ == "__main__":
    main()
