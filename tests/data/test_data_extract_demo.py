"""Extraction from demo-format files: splits, shuffling, stats, atomic outputs."""

import json

import h5py
import numpy as np
import pytest
from data_synth import REFS, random_molecule, write_demo_like

from pipeline.data.extract import REASONS, ExtractionError, extract_dataset
from pipeline.data.stats import load_stats, referenced_energy
from pipeline.data.store import MoleculeStore


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def read_split(path):
    with h5py.File(path, "r") as f:
        ptr = f["ptr"][:]
        return [
            (f["atomic_numbers"][a:b], f["positions"][a:b], f["forces"][a:b], f["energy"][i])
            for i, (a, b) in enumerate(zip(ptr[:-1], ptr[1:], strict=True))
        ], dict(f.attrs)


@pytest.fixture
def grouped_source(tmp_path, rng):
    """40 groups x 3 conformers, some charged / open-shell."""
    mols, groups, charge, spin = [], [], [], []
    for g in range(40):
        for _ in range(3):
            mols.append(random_molecule(rng, int(rng.integers(3, 12))))
            groups.append(g)
            charge.append(1 if g % 10 == 3 else 0)
            spin.append(2 if g % 10 == 7 else 1)
    path = write_demo_like(tmp_path / "src.h5", mols, charge, spin, groups)
    return path, mols, np.array(groups), np.array(charge), np.array(spin)


def key(mol):
    return mol[3] if isinstance(mol[3], float) else float(mol[2])


def test_split_by_group_counts_and_values(tmp_path, grouped_source):
    path, mols, groups, charge, spin = grouped_source
    summary = extract_dataset("demo", path, tmp_path / "out", val_size=12, seed=3)
    train, attrs = read_split(tmp_path / "out" / "train.h5")
    val, _ = read_split(tmp_path / "out" / "val.h5")
    neutral = (charge == 0) & (spin == 1)
    assert summary["read"] == len(mols)
    assert summary["dropped"]["charged"] == int((charge != 0).sum())
    assert summary["dropped"]["open_shell"] == int(((charge == 0) & (spin != 1)).sum())
    assert summary["read"] == summary["kept"] + sum(summary["dropped"].values())
    assert set(summary["dropped"]) == set(REASONS)
    assert len(val) == 12 and len(train) == int(neutral.sum()) - 12
    # every output molecule equals a source molecule (float32 positions/forces)
    by_energy = {m[2]: (i, m) for i, m in enumerate(mols)}
    seen_groups = {"train": set(), "val": set()}
    for name, split in (("train", train), ("val", val)):
        for z, x, f, e in split:
            i, m = by_energy[e]
            assert neutral[i]
            np.testing.assert_array_equal(z, m[0])
            np.testing.assert_array_equal(x, m[1].astype(np.float32))
            np.testing.assert_array_equal(f, m[3].astype(np.float32))
            seen_groups[name].add(groups[i])
    assert not seen_groups["train"] & seen_groups["val"]
    assert json.loads(attrs["filters"])["neutral_only"] is True
    assert attrs["seed"] == 3 and attrs["source"] == "demo"
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary


def test_seed_changes_order_not_set_and_val_is_fixed(tmp_path, grouped_source):
    path = grouped_source[0]
    energies = {}
    for seed in (0, 1):
        extract_dataset("demo", path, tmp_path / f"s{seed}", val_size=12, seed=seed)
        with h5py.File(tmp_path / f"s{seed}" / "train.h5") as f:
            energies[seed, "train"] = f["energy"][:]
        with h5py.File(tmp_path / f"s{seed}" / "val.h5") as f:
            energies[seed, "val"] = f["energy"][:]
    assert not np.array_equal(energies[0, "train"], energies[1, "train"])
    assert sorted(energies[0, "train"]) == sorted(energies[1, "train"])
    np.testing.assert_array_equal(energies[0, "val"], energies[1, "val"])


def test_neutral_only_false_keeps_charged(tmp_path, grouped_source):
    path, mols = grouped_source[:2]
    summary = extract_dataset("demo", path, tmp_path / "o", val_size=6, neutral_only=False)
    assert summary["kept"] == len(mols) and summary["dropped"]["charged"] == 0
    with h5py.File(tmp_path / "o" / "train.h5") as f:
        assert set(np.unique(f["charge"][:])) | set(np.unique(f["spin"][:])) >= {1, 2}


def test_stats_recover_element_references(tmp_path, rng):
    mols = [random_molecule(rng, int(rng.integers(3, 15))) for _ in range(300)]
    extract_dataset("demo", write_demo_like(tmp_path / "s.h5", mols), tmp_path / "o", val_size=20)
    stats = load_stats(tmp_path / "o" / "stats.json")
    for z, ref in REFS.items():
        assert stats["element_energy_eV"][str(z)] == pytest.approx(ref, abs=0.15)
    store = MoleculeStore.from_h5(tmp_path / "o" / "train.h5")
    assert stats["num_molecules"] == store.num_molecules == 280
    assert stats["num_atoms"] == store.num_atoms
    ref = referenced_energy(store.energy, store.atomic_numbers, store.ptr, stats)
    assert ref.mean() == pytest.approx(stats["energy_mean_eV"], abs=1e-6)
    assert ref.std() == pytest.approx(stats["energy_std_eV"], rel=1e-6)
    assert 0.3 < ref.std() < 0.7  # the noise added on top of the references


def test_referenced_energy_names_missing_element():
    stats = {"element_energy_eV": {"1": -13.6}}
    with pytest.raises(KeyError, match=r"Z=\[6\]"):
        referenced_energy(np.zeros(1), np.array([1, 6]), np.array([0, 2]), stats)


def test_fractions_are_nested_prefixes(tmp_path, rng):
    mols = [random_molecule(rng, int(rng.integers(3, 9))) for _ in range(50)]
    extract_dataset("demo", write_demo_like(tmp_path / "s.h5", mols), tmp_path / "o", val_size=5)
    full = MoleculeStore.from_h5(tmp_path / "o" / "train.h5")
    part = MoleculeStore.from_h5(tmp_path / "o" / "train.h5", fraction=0.1)
    assert part.num_molecules == 5  # ceil(0.1 * 45)
    np.testing.assert_array_equal(part.energy, full.energy[:5])
    np.testing.assert_array_equal(part.positions, full.positions[: part.num_atoms])
    np.testing.assert_array_equal(part.atoms_per_molecule, full.atoms_per_molecule[:5])
    assert MoleculeStore.from_h5(tmp_path / "o" / "train.h5", 0.3).num_molecules == 14


def test_failures_leave_no_output(tmp_path, rng):
    mols = [random_molecule(rng, 4) for _ in range(5)]
    src = write_demo_like(tmp_path / "s.h5", mols)
    with pytest.raises(ExtractionError, match="val_size 5"):
        extract_dataset("demo", src, tmp_path / "o", val_size=5)
    assert list((tmp_path / "o").iterdir()) == []
    with pytest.raises(ExtractionError, match="does not exist"):
        extract_dataset("demo", tmp_path / "missing.h5", tmp_path / "o", val_size=1)
    assert list((tmp_path / "o").iterdir()) == []


def test_val_size_zero_gives_empty_validation_store(tmp_path, rng):
    mols = [random_molecule(rng, 5) for _ in range(10)]
    summary = extract_dataset(
        "demo", write_demo_like(tmp_path / "s.h5", mols), tmp_path / "o", val_size=0
    )
    assert summary["val_molecules"] == 0 and summary["train_molecules"] == 10
    val = MoleculeStore.from_h5(tmp_path / "o" / "val.h5")
    assert val.num_molecules == val.num_atoms == 0
