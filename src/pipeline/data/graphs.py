"""Radius graphs in pure torch (no torch-cluster/pyg-lib build exists for this torch)."""

from __future__ import annotations

import torch


@torch.no_grad()
def radius_graph(
    positions: torch.Tensor, batch: torch.Tensor, cutoff: float, max_neighbors: int
) -> torch.Tensor:
    """Edges between atoms of the same molecule within ``cutoff``, nearest first.

    Molecules are padded to the largest one and all pair distances computed at once
    ([M, n_max, n_max]). Centres with more than ``max_neighbors`` atoms within the
    cutoff keep the nearest ones: their candidates are sorted by distance with a
    stable sort, so ties are broken by the lower atom index.

    Parameters
    ----------
    positions : float [A, 3]
        Angstrom.
    batch : long [A]
        Molecule of each atom, sorted ascending (atoms of a molecule contiguous).
    cutoff : float
        Angstrom; pairs with distance <= cutoff (inclusive) are edges.
    max_neighbors : int
        At most this many neighbours per centre (the nearest).

    Returns
    -------
    long [2, E]
        Row 0: neighbour u, row 1: centre v (messages flow u -> v). No self loops.
        Sorted by centre, then by neighbour index.
    """
    device = positions.device
    n_atoms = positions.shape[0]
    empty = torch.zeros(2, 0, dtype=torch.long, device=device)
    if n_atoms == 0 or max_neighbors <= 0:
        return empty
    batch = batch.to(torch.long)
    if batch.shape != (n_atoms,):
        raise ValueError(f"batch must have shape [{n_atoms}], got {tuple(batch.shape)}")
    if n_atoms > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted ascending (atoms of a molecule contiguous)")
    counts = torch.bincount(batch)
    n_mol = counts.numel()
    n_max = int(counts.max())
    ptr = torch.zeros(n_mol + 1, dtype=torch.long, device=device)
    torch.cumsum(counts, 0, out=ptr[1:])
    local = torch.arange(n_atoms, device=device) - ptr[batch]
    pad = positions.new_zeros(n_mol, n_max, 3)
    pad[batch, local] = positions
    mask = torch.zeros(n_mol, n_max, dtype=torch.bool, device=device)
    mask[batch, local] = True
    # Exact differences (cdist's matmul path would blur ties at the cutoff).
    d2 = positions.new_zeros(n_mol, n_max, n_max)
    for k in range(3):
        c = pad[:, :, k]
        d2 += (c[:, :, None] - c[:, None, :]) ** 2
    dist = d2.sqrt()  # [M, centre, neighbour]
    valid = mask[:, :, None] & mask[:, None, :] & (dist <= cutoff)
    valid &= ~torch.eye(n_max, dtype=torch.bool, device=device)
    # Only centres with more than max_neighbors candidates need a (stable) sort.
    over = valid.sum(dim=-1) > max_neighbors  # [M, n_max]
    if bool(over.any()):
        mol_o, centre_o = over.nonzero(as_tuple=True)
        rows_valid = valid[mol_o, centre_o]  # [R, n_max]
        rows = dist[mol_o, centre_o].masked_fill(~rows_valid, float("inf"))
        order = torch.sort(rows, dim=-1, stable=True).indices[:, :max_neighbors]
        keep = torch.zeros_like(rows_valid)
        keep.scatter_(1, order, True)
        valid[mol_o, centre_o] = keep & rows_valid
    mol, centre, neighbour = valid.nonzero(as_tuple=True)
    offset = ptr[mol]
    return torch.stack([offset + neighbour, offset + centre])
