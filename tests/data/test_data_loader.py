import numpy as np
import pytest
import torch
from data_synth import random_molecule

from pipeline.data.graphs import radius_graph
from pipeline.data.loader import (
    Batch,
    epoch_order,
    iterate_batches,
    make_batch,
    validation_batches,
)
from pipeline.data.store import MoleculeStore


@pytest.fixture
def store(rng):
    mols = [random_molecule(rng, int(rng.integers(2, 12))) for _ in range(23)]
    ptr = np.zeros(len(mols) + 1, np.int64)
    ptr[1:] = np.cumsum([len(m[0]) for m in mols])
    return MoleculeStore(
        atomic_numbers=np.concatenate([m[0] for m in mols]).astype(np.uint8),
        positions=np.concatenate([m[1] for m in mols]).astype(np.float32),
        forces=np.concatenate([m[3] for m in mols]).astype(np.float32),
        energy=np.array([m[2] for m in mols]),
        ptr=ptr,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_make_batch_gathers_the_right_molecules(store):
    idx = [7, 2, 19]
    b = make_batch(store, idx, cutoff=6.0, max_neighbors=30)
    assert b.energy.dtype == torch.float64 and b.positions.dtype == torch.float32
    assert b.atomic_numbers.dtype == torch.long and b.edge_index.dtype == torch.long
    assert b.molecule_index.tolist() == idx
    for k, i in enumerate(idx):
        a0, a1 = store.ptr[i], store.ptr[i + 1]
        sel = b.batch == k
        assert int(b.n_atoms[k]) == a1 - a0 == int(sel.sum())
        np.testing.assert_array_equal(b.positions[sel].numpy(), store.positions[a0:a1])
        np.testing.assert_array_equal(b.forces[sel].numpy(), store.forces[a0:a1])
        np.testing.assert_array_equal(b.atomic_numbers[sel].numpy(), store.atomic_numbers[a0:a1])
        assert float(b.energy[k]) == store.energy[i]
    expected = radius_graph(b.positions, b.batch, 6.0, 30)
    assert torch.equal(b.edge_index, expected)
    assert b.edge_index.shape[1] > 0


def test_batch_to_device_keeps_values(store):
    b = make_batch(store, [0, 1], 6.0, 30)
    c = b.to("cpu")
    assert isinstance(c, Batch) and torch.equal(c.positions, b.positions)


def test_epoch_order():
    np.testing.assert_array_equal(epoch_order(10, 0, seed=5), np.arange(10))
    o1, o1b, o2 = epoch_order(10, 1, 5), epoch_order(10, 1, 5), epoch_order(10, 2, 5)
    np.testing.assert_array_equal(o1, o1b)
    assert sorted(o1) == list(range(10)) and not np.array_equal(o1, o2)
    assert not np.array_equal(o1, epoch_order(10, 1, 6))


def test_iterate_batches_covers_order_and_resumes(store):
    order = epoch_order(store.num_molecules, 1, seed=0)
    full = list(iterate_batches(store, order, 5, 6.0, 30))
    assert [b.num_molecules for b in full] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(torch.cat([b.molecule_index for b in full]).numpy(), order)
    resumed = list(iterate_batches(store, order, 5, 6.0, 30, start_batch=3))
    assert len(resumed) == 2
    for a, b in zip(full[3:], resumed, strict=True):
        assert torch.equal(a.molecule_index, b.molecule_index)
        assert torch.equal(a.edge_index, b.edge_index)


def test_validation_batches_sorted_by_size_and_cached(store):
    batches = validation_batches(store, 4, 6.0, 30)
    sizes = torch.cat([b.n_atoms for b in batches]).tolist()
    assert sizes == sorted(sizes)
    idx = torch.cat([b.molecule_index for b in batches]).tolist()
    assert sorted(idx) == list(range(store.num_molecules))
    assert validation_batches(store, 4, 6.0, 30) is batches
    assert validation_batches(store, 8, 6.0, 30) is not batches


def test_bad_indices(store):
    with pytest.raises(IndexError):
        make_batch(store, [store.num_molecules], 6.0, 30)
