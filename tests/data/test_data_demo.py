"""The demo generator: real GFN2-xTB labels, deterministic, provenance recorded."""

import json

import h5py
import numpy as np
import pytest

from pipeline.data.demo import (
    _VARIANT_CHARGE_SPIN,
    _xtb,
    demo_path,
    generate_demo,
    select_molecules,
)


def test_select_molecules_filters(tmp_path):
    smi = tmp_path / "x.smi"
    smi.write_text(
        "CCO 1\n"  # 9 atoms with H: kept
        "CC 2\n"  # 8 atoms: kept
        "C 3\n"  # 5 atoms: too small
        "CC[NH3+] 4\n"  # charged
        "CCO.O 5\n"  # two fragments
        "CCBr 6\n"  # element
        "C[CH2] 7\n"  # radical
        "OCC 8\n"  # duplicate of CCO
        "xx 9\n"  # unparsable
    )
    kept, rejected = select_molecules(smi)
    assert kept == ["CCO", "CC"]
    assert rejected == {
        "size": 1,
        "charged": 1,
        "several_fragments": 1,
        "element": 1,
        "radical": 1,
        "duplicate": 1,
        "unparsable": 1,
    }


def test_forces_are_minus_energy_gradient():
    numbers = np.array([8, 1, 1])
    pos = np.array([[0.0, 0.0, 0.1], [0.76, 0.0, -0.5], [-0.78, 0.05, -0.45]])
    energy, forces = _xtb(numbers, pos, 0, 1)
    h = 1e-4
    for atom, axis in [(0, 2), (1, 0), (2, 1)]:
        d = np.zeros_like(pos)
        d[atom, axis] = h
        fd = (_xtb(numbers, pos + d, 0, 1)[0] - _xtb(numbers, pos - d, 0, 1)[0]) / (2 * h)
        assert forces[atom, axis] == pytest.approx(-fd, abs=1e-4)
    assert -200 < energy < -100  # GFN2-xTB water is about -5.07 Hartree = -138 eV


@pytest.mark.slow
def test_generation_is_deterministic_and_records_provenance(tmp_path):
    smi = tmp_path / "x.smi"
    smi.write_text("CCO 1\nCCN 2\nCC(=O)O 3\nc1ccccc1 4\n")
    kwargs = {
        "n_workers": 1,
        "seed": 7,
        "n_conformers": 3,
        "variant_fraction": 1.0,
        "variant_conformers": 1,
        "smiles_path": smi,
    }
    prov = generate_demo(tmp_path / "a.h5", **kwargs)
    generate_demo(tmp_path / "b.h5", **{**kwargs, "n_workers": 2})
    # bit for bit, whatever the number of processes
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_array_equal(a[k][:], b[k][:])
        ptr, q, s, v = a["ptr"][:], a["charge"][:], a["spin"][:], a["variant"][:]
        assert len(a["energy"]) == prov["num_samples"] == 12 - sum(prov["failures"].values())
        assert ptr[-1] == len(a["atomic_numbers"]) == len(a["positions"])
        for var in np.unique(v):
            assert (q[v == var] == _VARIANT_CHARGE_SPIN[var][0]).all()
            assert (s[v == var] == _VARIANT_CHARGE_SPIN[var][1]).all()
        assert (v != 0).sum() > 0 and np.isfinite(a["forces"][:]).all()
        stored = json.loads(a.attrs["provenance"])
    assert stored["level_of_theory"] == "GFN2-xTB" and stored["units"]["energy"] == "eV"
    generate_demo(tmp_path / "c.h5", **{**kwargs, "seed": 8})
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "c.h5") as c:
        assert not np.array_equal(a["positions"][:], c["positions"][:])


def test_shipped_demo_file_is_consistent():
    path = demo_path()
    if not path.exists():
        pytest.fail(f"{path} is missing: regenerate with python -m pipeline.data.demo")
    with h5py.File(path) as f:
        prov = json.loads(f.attrs["provenance"])
        energy, ptr = f["energy"][:], f["ptr"][:]
        charge, spin = f["charge"][:], f["spin"][:]
        assert len(energy) == prov["num_samples"] and ptr[-1] == prov["num_atoms"]
        assert set(np.unique(f["atomic_numbers"][:])) <= {1, 6, 7, 8, 9, 16, 17}
        assert np.isfinite(energy).all() and np.isfinite(f["forces"][:]).all()
    nonneutral = ((charge != 0) | (spin != 1)).mean()
    assert 0.05 < nonneutral < 0.2
    assert path.stat().st_size <= 15 * 2**20


@pytest.mark.slow
def test_shipped_file_prefix_is_reproduced(tmp_path):
    """Regenerating the first molecules reproduces the shipped samples bit for bit."""
    generate_demo(tmp_path / "p.h5", n_workers=2, seed=0, max_molecules=12)
    with h5py.File(tmp_path / "p.h5") as new, h5py.File(demo_path()) as old:
        m, a = len(new["energy"]), len(new["atomic_numbers"])
        assert m == 12 * 8
        for key in ("energy", "charge", "spin", "group", "variant", "conformer"):
            np.testing.assert_array_equal(new[key][:], old[key][:m])
        for key in ("atomic_numbers", "positions", "forces"):
            np.testing.assert_array_equal(new[key][:], old[key][:a])
        np.testing.assert_array_equal(new["ptr"][:], old["ptr"][: m + 1])
