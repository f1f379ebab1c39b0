"""Fast aselmdb ingest: orjson with a per-row stdlib fallback (NaN/Infinity), ids
without ase.db, nothing lost silently."""

import json
import zlib

import lmdb
import numpy as np
import orjson
import pytest
from data_synth import make_atoms, random_molecule, write_aselmdb

from pipeline.data.extract import extract_dataset
from pipeline.data.readers import (
    Record,
    Unreadable,
    aselmdb_ids,
    decode_aselmdb_value,
    iter_aselmdb,
)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _raw_rows(path):
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        rows = {int(k): v for k, v in txn.cursor() if k.isdigit()}
    env.close()
    return rows


def test_rows_with_nan_or_infinity_take_the_stdlib_fallback(tmp_path, rng):
    z, x, e, f = random_molecule(rng, 5)
    f_inf = f.copy()
    f_inf[1, 2] = -np.inf
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    shard = write_aselmdb(
        tmp_path / "s.aselmdb",
        [
            make_atoms(z, x, e, f),
            make_atoms(z, x, float("nan"), f),
            make_atoms(z, x, e, f_inf),
            make_atoms(z, x_nan, e, f),
        ],
    )
    rows = _raw_rows(shard)
    text = {i: zlib.decompress(raw) for i, raw in rows.items()}
    orjson.loads(text[1])  # a finite row: the fast parser
    for i in (2, 3, 4):  # ASE writes bare NaN/Infinity tokens, which orjson rejects
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text[i])
    decoded = {i: decode_aselmdb_value(raw) for i, raw in rows.items()}
    assert np.isnan(decoded[2][2])
    assert decoded[3][3][1, 2] == -np.inf
    assert np.isnan(decoded[4][1][0, 0])
    for i in rows:  # the same values as the stdlib parser gives
        reference = json.loads(text[i])
        np.testing.assert_array_equal(
            decoded[i][1].ravel(), reference["positions"]["__ndarray__"][2]
        )


def test_fallback_rows_are_dropped_and_counted(tmp_path, rng):
    atoms = []
    for k in range(12):
        z, x, e, f = random_molecule(rng, int(rng.integers(3, 8)))
        if k % 4 == 1:
            f[0, 0] = np.nan
        atoms.append(make_atoms(z, x, e, f))
    folder = tmp_path / "omol"
    folder.mkdir()
    write_aselmdb(folder / "a.aselmdb", atoms)
    summary = extract_dataset("omol25", folder, tmp_path / "out", val_size=2, n_workers=1)
    assert summary["read"] == 12
    assert summary["dropped"]["non_finite_label"] == 3
    assert summary["kept"] == 9


def test_invalid_json_in_a_row_is_unreadable_not_fatal(tmp_path, rng):
    z, x, e, f = random_molecule(rng, 4)
    shard = write_aselmdb(tmp_path / "s.aselmdb", [make_atoms(z, x, e, f)] * 3)
    env = lmdb.open(str(shard), subdir=False)
    with env.begin(write=True) as txn:
        txn.put(b"2", zlib.compress(b'{"numbers": [1, 2'))  # truncated JSON
    env.close()
    records = list(iter_aselmdb(shard))
    assert [type(r) for r in records] == [Record, Unreadable, Record]
    assert "JSONDecodeError" in records[1].error


def test_ids_without_ase_equal_ase_db_ids_with_deletions(tmp_path, rng):
    import ase.db

    z, x, e, f = random_molecule(rng, 4)
    shard = write_aselmdb(tmp_path / "s.aselmdb", [make_atoms(z, x, e + k, f) for k in range(6)])
    db = ase.db.connect(str(shard), type="aselmdb")
    db.delete([2, 5])
    db.close()
    db = ase.db.connect(str(shard), type="aselmdb", readonly=True, use_lock_file=False)
    expected = list(db.ids)
    db.close()
    env = lmdb.open(str(shard), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        assert aselmdb_ids(txn) == expected == [1, 3, 4, 6]
    env.close()
    energies = [r.energy for r in iter_aselmdb(shard)]
    assert energies == pytest.approx([e + k for k in (0, 2, 3, 5)])
