"""OMol25 ``*.aselmdb`` ingest: every bad case dropped-and-counted or stopped with a message."""

import json
from collections import Counter

import h5py
import numpy as np
import pytest
from data_synth import bad_cases, corrupt_record, make_atoms, random_molecule, write_aselmdb

from pipeline.data.extract import ExtractionError, extract_dataset

MAX_ATOMS = 12


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def read_all(path):
    with h5py.File(path) as f:
        ptr = f["ptr"][:]
        z, x, fo, e = f["atomic_numbers"][:], f["positions"][:], f["forces"][:], f["energy"][:]
    bounds = zip(ptr[:-1], ptr[1:], strict=True)
    return [(z[a:b], x[a:b], fo[a:b], e[i]) for i, (a, b) in enumerate(bounds)]


@pytest.fixture
def shard_folder(tmp_path, rng):
    folder = tmp_path / "omol"
    folder.mkdir()
    cases_a = bad_cases(rng, MAX_ATOMS)
    write_aselmdb(folder / "a.aselmdb", [a for _, a in cases_a])
    good_b = [make_atoms(*random_molecule(rng, int(rng.integers(3, 9)))) for _ in range(8)]
    write_aselmdb(folder / "b.aselmdb", good_b)
    corrupt_record(folder / "b.aselmdb", 3)  # row ids start at 1
    write_aselmdb(folder / "c.aselmdb", [])  # a valid shard without rows
    (folder / "README.txt").write_text("not a shard")
    expected = Counter(r for r, _ in cases_a if r) + Counter({"unreadable_record": 1})
    kept = [a for r, a in cases_a if r is None] + [a for i, a in enumerate(good_b) if i != 2]
    return folder, expected, kept


def test_every_case_counted_and_values_equal_source(tmp_path, shard_folder):
    folder, expected, kept = shard_folder
    summary = extract_dataset(
        "omol25", folder, tmp_path / "out", max_atoms=MAX_ATOMS, val_size=3, seed=1, n_workers=2
    )
    assert summary["shards"] == ["a.aselmdb", "b.aselmdb", "c.aselmdb"]
    assert {k: v for k, v in summary["dropped"].items() if v} == dict(expected)
    assert summary["kept"] == len(kept)
    assert summary["read"] == len(kept) + sum(expected.values())
    assert summary["train_molecules"] + summary["val_molecules"] == len(kept)
    out = read_all(tmp_path / "out" / "train.h5") + read_all(tmp_path / "out" / "val.h5")
    assert len(out) == len(kept)
    source = {float(a.get_potential_energy()): a for a in kept}
    for z, x, f, e in out:
        a = source.pop(float(e))
        np.testing.assert_array_equal(z, a.numbers)
        np.testing.assert_array_equal(x, a.positions.astype(np.float32))
        np.testing.assert_array_equal(f, a.get_forces().astype(np.float32))
    assert not source
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["dropped"] == summary["dropped"]


def test_neutral_only_false_keeps_charged_and_open_shell(tmp_path, shard_folder):
    folder, expected, kept = shard_folder
    summary = extract_dataset(
        "omol25",
        folder,
        tmp_path / "out",
        max_atoms=MAX_ATOMS,
        val_size=3,
        neutral_only=False,
        n_workers=2,
    )
    assert summary["dropped"]["charged"] == summary["dropped"]["open_shell"] == 0
    assert summary["kept"] == len(kept) + 2
    with (
        h5py.File(tmp_path / "out" / "train.h5") as f1,
        h5py.File(tmp_path / "out" / "val.h5") as f2,
    ):
        charge = np.concatenate([f1["charge"][:], f2["charge"][:]])
        spin = np.concatenate([f1["spin"][:], f2["spin"][:]])
    assert sorted(charge.tolist()).count(1) == 1 and sorted(spin.tolist()).count(2) == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "no \\*.aselmdb shard"),
        (lambda d: (d.mkdir(), (d / "x.aselmdb").write_bytes(b"")), "x.aselmdb: shard is an empty"),
        (
            lambda d: (
                d.mkdir(),
                (d / "x.aselmdb").write_bytes(np.random.default_rng(0).bytes(9000)),
            ),
            "x.aselmdb: not a readable LMDB",
        ),
    ],
    ids=["missing_path", "no_shards", "zero_byte_shard", "random_bytes_shard"],
)
def test_unusable_sources_stop_with_message_and_leave_nothing(tmp_path, make, message):
    folder = tmp_path / "omol"
    make(folder)
    with pytest.raises(ExtractionError, match=message):
        extract_dataset("omol25", folder, tmp_path / "out", val_size=1, n_workers=1)
    assert list((tmp_path / "out").iterdir()) == []


def test_truncated_shard_names_the_shard(tmp_path, rng):
    folder = tmp_path / "omol"
    folder.mkdir()
    atoms = [make_atoms(*random_molecule(rng, 6)) for _ in range(300)]
    write_aselmdb(folder / "good.aselmdb", atoms[:20])
    write_aselmdb(folder / "part.aselmdb", atoms)
    data = (folder / "part.aselmdb").read_bytes()
    (folder / "part.aselmdb").write_bytes(data[: len(data) // 2])  # a partial download
    with pytest.raises(ExtractionError, match="part.aselmdb") as info:
        extract_dataset("omol25", folder, tmp_path / "out", val_size=1, n_workers=2)
    assert "SIGBUS" in str(info.value) or "LMDB" in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_fast_decoder_equals_ase_rows(tmp_path, rng):
    """iter_aselmdb gives what row.toatoms() + atoms.info.update(row.data) gives."""
    import ase.db

    from pipeline.data.readers import Record, iter_aselmdb

    shard = write_aselmdb(tmp_path / "s.aselmdb", [a for _, a in bad_cases(rng, MAX_ATOMS)])
    records = list(iter_aselmdb(shard))
    db = ase.db.connect(str(shard), readonly=True, use_lock_file=False)
    assert len(records) == len(db.ids) > 10
    for rec, idx in zip(records, db.ids, strict=True):
        assert isinstance(rec, Record)
        row = db.get(id=idx)
        atoms = row.toatoms()
        atoms.info.update(row.data)
        np.testing.assert_array_equal(rec.numbers, atoms.numbers)
        np.testing.assert_array_equal(rec.positions, atoms.positions)
        results = atoms.calc.results
        np.testing.assert_array_equal(rec.energy, results.get("energy"))
        if "forces" in results:
            np.testing.assert_array_equal(rec.forces, results["forces"])
        else:
            assert rec.forces is None
        assert (rec.charge, rec.spin) == (atoms.info["charge"], atoms.info["spin"])
