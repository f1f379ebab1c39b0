import numpy as np
import pytest
import torch

from pipeline.data.graphs import radius_graph


def brute_force(positions, batch, cutoff, max_neighbors):
    """Reference: per centre, the max_neighbors nearest same-molecule atoms within the
    cutoff (ties by lower index), listed by centre then neighbour index."""
    pos = np.asarray(positions, dtype=np.float32)
    edges = []
    for v in range(len(pos)):
        cand = []
        for u in range(len(pos)):
            if u == v or batch[u] != batch[v]:
                continue
            d = float(torch.linalg.vector_norm(torch.from_numpy(pos[u] - pos[v])))
            if d <= cutoff:
                cand.append((d, u))
        cand.sort()
        edges += sorted((u, v) for _, u in cand[:max_neighbors])
    return edges


def as_pairs(edge_index):
    return [tuple(map(int, e)) for e in edge_index.T]


def check(positions, batch, cutoff, k):
    pos_t = torch.as_tensor(np.asarray(positions, dtype=np.float32))
    batch_t = torch.as_tensor(batch, dtype=torch.long)
    got = radius_graph(pos_t, batch_t, cutoff, k)
    assert got.dtype == torch.long and got.shape[0] == 2
    assert as_pairs(got) == brute_force(positions, batch, cutoff, k)
    return got


def test_random_batches_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        sizes = rng.integers(1, 25, size=6)
        pos = rng.uniform(0, 6, size=(sizes.sum(), 3))
        batch = np.repeat(np.arange(len(sizes)), sizes)
        got = check(pos, batch, 3.0, 8)
        assert torch.all(got[1][1:] >= got[1][:-1])  # sorted by centre


def test_ties_at_cutoff_are_inclusive_and_broken_by_lower_index():
    # atoms 1..4 all exactly 2.0 from atom 0 (exact in float32), atom 5 at 2.5
    pos = [[0, 0, 0], [2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0], [2.5, 0, 0]]
    got = check(pos, [0] * 6, 2.0, 3)
    centre0 = [int(u) for u, v in got.T if v == 0]
    assert centre0 == [1, 2, 3]  # four ties at d == cutoff, lower indices win; 5 is out


def test_more_than_max_neighbors_in_range_keeps_nearest():
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 3, size=(45, 3))
    got = check(pos, [0] * 45, 6.0, 30)
    assert torch.all(torch.bincount(got[1], minlength=45) == 30)


def test_isolated_and_single_atom_molecules_have_no_edges():
    pos = [[0, 0, 0], [1, 0, 0], [50, 0, 0], [7, 7, 7]]  # atom 2 isolated; atom 3 alone
    got = check(pos, [0, 0, 0, 1], 6.0, 30)
    assert set(got.flatten().tolist()) == {0, 1}


def test_no_edges_between_molecules_at_same_place():
    pos = [[0, 0, 0], [1, 0, 0], [0, 0, 0.5], [1, 0, 0.5]]
    got = check(pos, [0, 0, 1, 1], 6.0, 30)
    assert as_pairs(got) == [(1, 0), (0, 1), (3, 2), (2, 3)]


def test_unsorted_batch_is_rejected():
    with pytest.raises(ValueError, match="sorted"):
        radius_graph(torch.zeros(3, 3), torch.tensor([1, 0, 1]), 6.0, 30)


def test_empty_input():
    assert radius_graph(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 6.0, 30).shape == (
        2,
        0,
    )
