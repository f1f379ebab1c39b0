"""extxyz ingest through ase.io: the same filters and bad cases as OMol25."""

from collections import Counter

import ase.io
import h5py
import numpy as np
import pytest
from data_synth import bad_cases

from pipeline.data.extract import ExtractionError, extract_dataset

MAX_ATOMS = 12


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def test_every_case_counted_and_values_equal_source(tmp_path, rng):
    cases = bad_cases(rng, MAX_ATOMS)
    src = tmp_path / "mols.extxyz"
    ase.io.write(str(src), [a for _, a in cases], format="extxyz")
    summary = extract_dataset("extxyz", src, tmp_path / "out", max_atoms=MAX_ATOMS, val_size=2)
    expected = Counter(r for r, _ in cases if r)
    assert {k: v for k, v in summary["dropped"].items() if v} == dict(expected)
    # the source values are what the file holds (extxyz text rounds to 8 decimals)
    frames = ase.io.read(str(src), index=":", format="extxyz")
    kept = [a for (r, _), a in zip(cases, frames, strict=True) if r is None]
    assert summary["kept"] == len(kept) and summary["read"] == len(cases)
    energies = []
    for split in ("train", "val"):
        with h5py.File(tmp_path / "out" / f"{split}.h5") as f:
            ptr, x, fo = f["ptr"][:], f["positions"][:], f["forces"][:]
            for i, e in enumerate(f["energy"][:]):
                a = next(a for a in kept if a.get_potential_energy() == e)
                sl = slice(ptr[i], ptr[i + 1])
                np.testing.assert_array_equal(x[sl], a.positions.astype(np.float32))
                np.testing.assert_array_equal(fo[sl], a.get_forces().astype(np.float32))
                energies.append(e)
    assert sorted(energies) == sorted(a.get_potential_energy() for a in kept)


def test_frames_without_charge_are_taken_as_neutral_and_counted(tmp_path, rng):
    cases = [a for r, a in bad_cases(rng, MAX_ATOMS) if r is None]
    for a in cases:
        a.info.clear()
    src = tmp_path / "m.extxyz"
    ase.io.write(str(src), cases, format="extxyz")
    summary = extract_dataset("extxyz", src, tmp_path / "out", val_size=1)
    assert summary["kept"] == len(cases) == summary["charge_or_spin_unspecified"]


def test_unparsable_frame_stops_naming_file_and_frame(tmp_path, rng):
    cases = [a for r, a in bad_cases(rng, MAX_ATOMS) if r is None]
    src = tmp_path / "m.extxyz"
    ase.io.write(str(src), cases[:2], format="extxyz")
    with open(src, "a") as f:
        f.write("3\nProperties=species:S:1:pos:R:3 energy=1.0\nH 0 0\n")
    with pytest.raises(ExtractionError, match=r"m\.extxyz: cannot parse frame 2"):
        extract_dataset("extxyz", src, tmp_path / "out", val_size=1)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_missing_or_empty_file_stops(tmp_path, content):
    src = tmp_path / "m.extxyz"
    if content is not None:
        src.write_text(content)
    with pytest.raises(ExtractionError, match="m.extxyz"):
        extract_dataset("extxyz", src, tmp_path / "out", val_size=1)
