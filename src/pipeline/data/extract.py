"""Extraction: a raw source -> ``train.h5``, ``val.h5``, ``stats.json``, ``summary.json``.

Pipeline
--------
1. Read every record of the source (the demo file, one extxyz file, or every
   ``*.aselmdb`` shard of a folder, shards in parallel child processes) and apply the
   filters; each dropped record is counted under one reason (:data:`REASONS`). Kept
   records are streamed to raw temporary files (memory independent of dataset size).
2. Validation split, before any shuffling and independent of ``seed``: groups (all
   conformers of one molecule; a record is its own group where the source has no
   groups) are taken in the order of a fixed hash of their key until ``val_size``
   molecules are held out. No group is shared between validation and training.
3. The training molecules are shuffled once with ``np.random.default_rng(seed)``; so
   the fraction-r subset is the first ``ceil(r * M)`` molecules and subsets are
   nested. A different seed changes the order, never the set.
4. Per-element linear energy references (float64 least squares on the training set)
   and the mean/std of the referenced energies go to ``stats.json``.

All four outputs are written under temporary names and renamed at the end: an error
leaves no partial file behind. ``read == kept + sum(dropped)`` always holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from pipeline.data.readers import (
    Record,
    SourceError,
    Unreadable,
    iter_aselmdb,
    iter_demo,
    iter_extxyz,
)

logger = logging.getLogger(__name__)

REASONS = (
    "unreadable_record",
    "malformed_record",
    "missing_energy",
    "missing_forces",
    "charged",
    "open_shell",
    "too_large",
    "invalid_atomic_number",
    "non_finite_position",
    "non_finite_label",
    "overlapping_atoms",
    "no_neighbor_within_cutoff",
)
"""Drop reasons, in the order the checks run (a record counts under the first)."""

OVERLAP_DISTANCE = 0.1
"""Angstrom; two atoms closer than this are 'overlapping_atoms'."""

SOURCES = ("demo", "extxyz", "omol25")
_MAX_LOGGED_UNREADABLE = 20
_BLOCK = 65536  # molecules per write block


class ExtractionError(RuntimeError):
    """Extraction cannot produce a valid dataset (the message names file and problem)."""


def check_record(rec: Record, *, neutral_only: bool, max_atoms: int, cutoff: float) -> str | None:
    """Return the drop reason of a record, or None if it is kept.

    Parameters
    ----------
    rec : Record
        The record.
    neutral_only : bool
        Drop records with charge != 0 ('charged') or multiplicity != 1 ('open_shell').
        A record without charge (spin) information is taken as charge 0 (singlet).
    max_atoms : int
        Inclusive upper bound on the number of atoms ('too_large').
    cutoff : float
        Angstrom; every atom needs another atom within this distance (inclusive),
        else 'no_neighbor_within_cutoff' (a single atom always fails).
    """
    # Few numpy calls per record: ufunc reductions without the np.min/np.all wrappers,
    # finiteness from one sum (exact check only when the sum is not finite). This is
    # ~2x faster on OMol25-sized molecules, which matters at 10^4 records/s per process.
    n = len(rec.numbers)
    pos = rec.positions if isinstance(rec.positions, np.ndarray) else np.asarray(rec.positions)
    if n == 0 or pos.shape != (n, 3):
        return "malformed_record"
    if rec.energy is None:
        return "missing_energy"
    if rec.forces is None:
        return "missing_forces"
    forces = rec.forces if isinstance(rec.forces, np.ndarray) else np.asarray(rec.forces)
    if forces.shape != (n, 3):
        return "malformed_record"
    if neutral_only and (rec.charge or 0) != 0:
        return "charged"
    if neutral_only and (rec.spin if rec.spin is not None else 1) != 1:
        return "open_shell"
    if n > max_atoms:
        return "too_large"
    z = rec.numbers if isinstance(rec.numbers, np.ndarray) else np.asarray(rec.numbers)
    if np.minimum.reduce(z) < 1 or np.maximum.reduce(z) > 118:
        return "invalid_atomic_number"
    if not _all_finite(pos):
        return "non_finite_position"
    if not (np.isfinite(rec.energy) and _all_finite(forces)):
        return "non_finite_label"
    if n == 1:
        return "no_neighbor_within_cutoff"
    diff = pos[:, None, :] - pos[None, :, :]
    d2 = np.einsum("ijk,ijk->ij", diff, diff)
    d2.flat[:: n + 1] = np.inf  # no self-distance
    nearest = np.minimum.reduce(d2, axis=1)  # squared distance to the nearest other atom
    if np.minimum.reduce(nearest) < OVERLAP_DISTANCE**2:
        return "overlapping_atoms"
    if np.maximum.reduce(nearest) > cutoff**2:
        return "no_neighbor_within_cutoff"
    return None


def _all_finite(values: np.ndarray) -> bool:
    """Every element finite: a finite sum says so unless it overflowed (then check)."""
    if math.isfinite(float(np.add.reduce(values, axis=None))):
        return True
    return bool(np.isfinite(values).all())


def _group_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


_SPILL_FIELDS = {
    "numbers": np.uint8,
    "positions": np.float32,
    "forces": np.float32,
    "energy": np.float64,
    "natoms": np.int64,
    "charge": np.int16,
    "spin": np.int16,
    "ghash": np.uint64,
}


class _Spill:
    """Append-only raw files of the kept records of one shard."""

    def __init__(self, folder: Path, flush_every: int = 4096):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {k: open(folder / f"{k}.bin", "wb") for k in _SPILL_FIELDS}  # noqa: SIM115
        self.buf: dict[str, list] = {k: [] for k in _SPILL_FIELDS}
        self.flush_every = flush_every
        self.n = 0

    def add(self, rec: Record) -> None:
        b = self.buf
        b["numbers"].append(np.asarray(rec.numbers, dtype=np.uint8))
        b["positions"].append(np.asarray(rec.positions, dtype=np.float32))
        b["forces"].append(np.asarray(rec.forces, dtype=np.float32))
        b["energy"].append(rec.energy)
        b["natoms"].append(len(rec.numbers))
        b["charge"].append(rec.charge or 0)
        b["spin"].append(1 if rec.spin is None else rec.spin)
        b["ghash"].append(_group_hash(rec.group))
        self.n += 1
        if len(b["energy"]) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        for k, dtype in _SPILL_FIELDS.items():
            if not self.buf[k]:
                continue
            if k in ("numbers", "positions", "forces"):
                arr = np.concatenate(self.buf[k]).astype(dtype, copy=False)
            else:
                arr = np.asarray(self.buf[k], dtype=dtype)
            arr.tofile(self.files[k])
            self.buf[k] = []

    def close(self) -> None:
        self.flush()
        for f in self.files.values():
            f.close()


def _load_spill(folder: Path, mmap: bool = True) -> dict[str, np.ndarray]:
    out = {}
    for k, dtype in _SPILL_FIELDS.items():
        p = folder / f"{k}.bin"
        size = p.stat().st_size
        if size == 0:
            arr = np.zeros(0, dtype=dtype)
        elif mmap and k in ("numbers", "positions", "forces"):
            arr = np.memmap(p, dtype=dtype, mode="r")
        else:
            arr = np.fromfile(p, dtype=dtype)
        if k in ("positions", "forces"):
            arr = arr.reshape(-1, 3)
        out[k] = arr
    return out


def _process(records: Iterator[Record | Unreadable], spill_dir: Path, filters: dict) -> dict:
    """Filter records and spill the kept ones; return counts."""
    spill = _Spill(spill_dir)
    read = 0
    dropped: Counter = Counter()
    unspecified = 0
    for rec in records:
        read += 1
        if isinstance(rec, Unreadable):
            dropped["unreadable_record"] += 1
            if dropped["unreadable_record"] <= _MAX_LOGGED_UNREADABLE:
                logger.warning("%s: unreadable record, skipped (%s)", rec.label, rec.error)
            continue
        reason = check_record(rec, **filters)
        if reason is not None:
            dropped[reason] += 1
            continue
        if rec.charge is None or rec.spin is None:
            unspecified += 1
        spill.add(rec)
    spill.close()
    return {
        "read": read,
        "dropped": dict(dropped),
        "kept": spill.n,
        "charge_or_spin_unspecified": unspecified,
    }


def read_shard_main(argv: list[str]) -> int:
    """Child process entry: ``SHARD SPILL_DIR RESULT_JSON FILTERS_JSON``.

    Reads one aselmdb shard, spills the kept records and writes the counts (or the
    :class:`SourceError` message) as JSON to RESULT_JSON.
    """
    shard, spill_dir, result_path, filters = argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        res = _process(iter_aselmdb(shard), Path(spill_dir), json.loads(filters))
    except SourceError as err:
        res = {"error": str(err)}
    Path(result_path).write_text(json.dumps(res))
    return 0


def _run_shards(shards: list[Path], tmp: Path, filters: dict, n_workers: int) -> list[dict]:
    """Read shards in child processes, at most ``n_workers`` at a time.

    Each shard is read by a fresh ``python -m pipeline.data.extract`` process (not
    multiprocessing, whose spawn/forkserver children re-import the caller's main
    script, e.g. a Snakemake script). A child killed by a signal (SIGBUS on a
    truncated LMDB file) or failing otherwise stops the extraction with an error
    naming the shard.
    """
    import pipeline

    env = dict(os.environ)
    src_root = str(Path(pipeline.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    pending = list(enumerate(shards))
    running: dict[int, tuple] = {}
    results: list[dict | None] = [None] * len(shards)
    try:
        while pending or running:
            while pending and len(running) < max(1, n_workers):
                k, shard = pending.pop(0)
                res_path = tmp / f"result_{k}.json"
                cmd = [
                    sys.executable,
                    "-m",
                    "pipeline.data.extract",
                    str(shard),
                    str(tmp / f"shard_{k}"),
                    str(res_path),
                    json.dumps(filters),
                ]
                running[k] = (subprocess.Popen(cmd, env=env), shard, res_path)
            done = [k for k, (proc, *_) in running.items() if proc.poll() is not None]
            if not done:
                time.sleep(0.02)
                continue
            for k in done:
                proc, shard, res_path = running.pop(k)
                code = proc.returncode
                if code < 0:
                    name = signal.Signals(-code).name
                    hint = " (truncated or corrupt LMDB file?)" if name == "SIGBUS" else ""
                    raise ExtractionError(f"{shard}: reader process killed by {name}{hint}")
                if code != 0 or not res_path.exists():
                    raise ExtractionError(
                        f"{shard}: reader process failed with exit code {code} (traceback above)"
                    )
                res = json.loads(res_path.read_text())
                if "error" in res:
                    raise ExtractionError(res["error"])
                results[k] = res
    finally:
        for proc, *_ in running.values():
            proc.terminate()
            proc.wait()
    return results  # type: ignore[return-value]


def _find_shards(path: Path) -> list[Path]:
    if not path.exists():
        raise ExtractionError(f"{path}: OMol25 folder does not exist")
    if not path.is_dir():
        raise ExtractionError(f"{path}: OMol25 source must be a folder of *.aselmdb shards")
    shards = sorted(p for p in path.glob("*.aselmdb") if p.is_file())
    if not shards:
        raise ExtractionError(f"{path}: folder holds no *.aselmdb shard")
    return shards


def _select_validation(ghash: np.ndarray, val_size: int) -> np.ndarray:
    """Boolean mask [M] of validation molecules: whole groups in hash order."""
    uniq, inverse, counts = np.unique(ghash, return_inverse=True, return_counts=True)
    chosen = np.zeros(len(uniq), dtype=bool)
    taken = 0
    for g in range(len(uniq)):
        if taken == val_size:
            break
        if taken + counts[g] <= val_size:
            chosen[g] = True
            taken += int(counts[g])
    return chosen[inverse]


def _write_split(
    path: Path,
    parts: list[dict[str, np.ndarray]],
    shard_of: np.ndarray,
    local: np.ndarray,
    order: np.ndarray,
    attrs: dict,
) -> None:
    """Write molecules ``order`` (global indices) to ``path`` in the DESIGN layout."""
    import h5py

    ptrs = [np.concatenate([[0], np.cumsum(p["natoms"])]) for p in parts]
    natoms_all = np.concatenate([p["natoms"] for p in parts]) if parts else np.zeros(0, int)
    counts = natoms_all[order]
    n_mol, n_atoms = len(order), int(counts.sum())
    gz = {"compression": "gzip", "compression_opts": 4, "shuffle": True}

    def create(f, name, shape, dtype, data=None):
        # chunked + gzip; an empty split (val_size 0) gets plain empty datasets
        if shape[0] == 0:
            return f.create_dataset(name, shape, dtype, data=data)
        chunks = (min(shape[0], 65536), *shape[1:])
        return f.create_dataset(name, shape, dtype, data=data, chunks=chunks, **gz)

    with h5py.File(path, "w") as f:
        d_z = create(f, "atomic_numbers", (n_atoms,), np.uint8)
        d_x = create(f, "positions", (n_atoms, 3), np.float32)
        d_f = create(f, "forces", (n_atoms, 3), np.float32)
        d_e = create(f, "energy", (n_mol,), np.float64)
        d_q = create(f, "charge", (n_mol,), np.int8)
        d_s = create(f, "spin", (n_mol,), np.int8)
        ptr = np.zeros(n_mol + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        create(f, "ptr", ptr.shape, np.int64, data=ptr)
        for b0 in range(0, n_mol, _BLOCK):
            idx = order[b0 : b0 + _BLOCK]
            cnt = natoms_all[idx]
            a0, a1 = ptr[b0], ptr[b0 + len(idx)]
            total = int(a1 - a0)
            z = np.empty(total, np.uint8)
            x = np.empty((total, 3), np.float32)
            fo = np.empty((total, 3), np.float32)
            e = np.empty(len(idx), np.float64)
            q = np.empty(len(idx), np.int8)
            s = np.empty(len(idx), np.int8)
            dest_start = ptr[b0 : b0 + len(idx)] - a0
            for sh in np.unique(shard_of[idx]):
                sel = np.flatnonzero(shard_of[idx] == sh)
                loc = local[idx[sel]]
                c = cnt[sel]
                offs = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
                src = np.repeat(ptrs[sh][loc], c) + offs
                dst = np.repeat(dest_start[sel], c) + offs
                p = parts[sh]
                z[dst] = p["numbers"][src]
                x[dst] = p["positions"][src]
                fo[dst] = p["forces"][src]
                e[sel] = p["energy"][loc]
                q[sel] = p["charge"][loc]
                s[sel] = p["spin"][loc]
            d_z[a0:a1] = z
            d_x[a0:a1] = x
            d_f[a0:a1] = fo
            d_e[b0 : b0 + len(idx)] = e
            d_q[b0 : b0 + len(idx)] = q
            d_s[b0 : b0 + len(idx)] = s
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)


def _composition(parts, shard_of, local, order, elements) -> np.ndarray:
    """Element counts [len(order), len(elements)] (float64) of molecules ``order``."""
    col = np.full(256, -1, dtype=np.int64)
    col[np.asarray(elements, dtype=np.int64)] = np.arange(len(elements))
    comp = np.zeros((len(order), len(elements)), dtype=np.float64)
    for sh in np.unique(shard_of[order]) if len(order) else []:
        rows = np.flatnonzero(shard_of[order] == sh)
        p = parts[sh]
        ptr = np.concatenate([[0], np.cumsum(p["natoms"])])
        loc = local[order[rows]]
        c = p["natoms"][loc]
        offs = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
        src = np.repeat(ptr[loc], c) + offs
        z = np.asarray(p["numbers"][src], dtype=np.int64)
        mol = np.repeat(np.arange(len(rows)), c)
        sub = np.bincount(mol * len(elements) + col[z], minlength=len(rows) * len(elements))
        comp[rows] = sub.reshape(len(rows), len(elements))
    return comp


def fit_element_references(
    composition: np.ndarray, energy: np.ndarray, elements: list[int]
) -> dict:
    """Per-element energy references by float64 least squares.

    Parameters
    ----------
    composition : float64 [M, E]
        Element counts per molecule.
    energy : float64 [M]
        Total energies, eV.
    elements : list of int
        Atomic numbers of the E columns.

    Returns
    -------
    dict
        ``element_energy_eV`` ({"Z": eV}), ``energy_mean_eV``, ``energy_std_eV`` of the
        referenced energies (energy minus the sum of references).
    """
    coef, *_ = np.linalg.lstsq(composition, energy, rcond=None)
    referenced = energy - composition @ coef
    return {
        "element_energy_eV": {str(int(z)): float(c) for z, c in zip(elements, coef, strict=True)},
        "energy_mean_eV": float(referenced.mean()),
        "energy_std_eV": float(referenced.std()),
    }


def extract_dataset(
    source: str,
    path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    neutral_only: bool = True,
    max_atoms: int = 350,
    val_size: int = 2000,
    seed: int = 0,
    cutoff: float = 6.0,
    n_workers: int = 2,
) -> dict:
    """Extract a source into ``out_dir/{train,val}.h5``, ``stats.json``, ``summary.json``.

    Parameters
    ----------
    source : {"demo", "extxyz", "omol25"}
        ``demo``: the embedded GFN2-xTB dataset (``path`` None, or a demo-format file);
        ``extxyz``: one extended-XYZ file; ``omol25``: a folder of ``*.aselmdb`` shards
        (other files there are ignored).
    path : path or None
        The file or folder of the source.
    out_dir : path
        Output folder (created).
    neutral_only : bool
        Keep only charge 0 and spin multiplicity 1.
    max_atoms : int
        Keep molecules with at most this many atoms (inclusive).
    val_size : int
        Validation molecules held out (whole groups; at most this many).
    seed : int
        Seed of the training-set shuffle (does not affect the validation set).
    cutoff : float
        Angstrom; molecules with an atom without neighbour within it are dropped.
    n_workers : int
        Parallel shard readers (omol25).

    Returns
    -------
    dict
        The summary (also written to ``summary.json`` and logged): read, kept,
        dropped by reason, train/val sizes, filters.

    Raises
    ------
    ExtractionError
        Missing path, folder without shards, unreadable/truncated shard, nothing kept,
        or not enough molecules for the validation set. No output is left behind.
    """
    if source not in SOURCES:
        raise ExtractionError(f"unknown data source {source!r}; expected one of {SOURCES}")
    if val_size < 0:
        raise ExtractionError(f"val_size must be >= 0, got {val_size}")
    filters = {
        "neutral_only": bool(neutral_only),
        "max_atoms": int(max_atoms),
        "cutoff": float(cutoff),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=out_dir))
    finals = {n: out_dir / n for n in ("train.h5", "val.h5", "stats.json", "summary.json")}
    temps = {n: tmp / n for n in finals}
    try:
        t0 = time.perf_counter()
        shard_names, results = _read_source(source, path, tmp, filters, n_workers)
        t1 = time.perf_counter()
        logger.info("read %d records in %.1f s", sum(r["read"] for r in results), t1 - t0)
        parts = [_load_spill(tmp / f"shard_{k}") for k in range(len(results))]
        summary = _split_and_write(
            source, path, shard_names, results, parts, temps, filters, val_size, seed
        )
        for n, final in finals.items():
            os.replace(temps[n], final)
        logger.info(
            "split, fitted references and wrote %s in %.1f s", out_dir, time.perf_counter() - t1
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("extraction summary: %s", json.dumps(summary))
    return summary


def _read_source(source, path, tmp: Path, filters: dict, n_workers: int):
    reader: Callable[[Path], Iterator]
    if source == "omol25":
        if path is None:
            raise ExtractionError("source 'omol25' needs data.path: a folder of *.aselmdb shards")
        shards = _find_shards(Path(path))
        logger.info("reading %d shards of %s on %d processes", len(shards), path, n_workers)
        return [s.name for s in shards], _run_shards(shards, tmp, filters, n_workers)
    if source == "demo":
        from pipeline.data.demo import demo_path

        file = Path(path) if path is not None else demo_path()
        reader = iter_demo
    else:
        if path is None:
            raise ExtractionError("source 'extxyz' needs data.path: an extended-XYZ file")
        file = Path(path)
        reader = iter_extxyz
    try:
        res = _process(reader(file), tmp / "shard_0", filters)
    except SourceError as err:
        raise ExtractionError(str(err)) from err
    return [file.name], [res]


def _split_and_write(
    source, path, shard_names, results, parts, temps, filters, val_size, seed
) -> dict:
    read = sum(r["read"] for r in results)
    dropped = {reason: sum(r["dropped"].get(reason, 0) for r in results) for reason in REASONS}
    kept = sum(r["kept"] for r in results)
    if read != kept + sum(dropped.values()):
        raise AssertionError(f"count mismatch: read {read} != kept {kept} + dropped {dropped}")
    where = path if path is not None else "embedded demo dataset"
    if read == 0:
        raise ExtractionError(f"{where}: no record in the source")
    if kept == 0:
        raise ExtractionError(f"{where}: every one of {read} records was dropped: {dropped}")
    shard_of = np.concatenate([np.full(len(p["natoms"]), k, np.int64) for k, p in enumerate(parts)])
    local = np.concatenate([np.arange(len(p["natoms"])) for p in parts])
    ghash = np.concatenate([p["ghash"] for p in parts])
    val_mask = _select_validation(ghash, val_size)
    val_idx = np.flatnonzero(val_mask)
    train_idx = np.flatnonzero(~val_mask)
    if len(train_idx) == 0:
        raise ExtractionError(
            f"{where}: val_size {val_size} leaves no training molecule ({kept} kept)"
        )
    if len(val_idx) < val_size:
        if len(val_idx) + len(train_idx) <= val_size:
            raise ExtractionError(f"{where}: val_size {val_size} >= kept molecules {kept}")
        logger.warning(
            "validation holds %d molecules, not %d (whole groups only)", len(val_idx), val_size
        )
    train_idx = train_idx[np.random.default_rng(seed).permutation(len(train_idx))]

    natoms = np.concatenate([p["natoms"] for p in parts])
    energy = np.concatenate([p["energy"] for p in parts])
    elements = sorted({int(z) for p in parts for z in np.unique(p["numbers"])})
    comp = _composition(parts, shard_of, local, train_idx, elements)
    train_elements = [z for z, c in zip(elements, comp.sum(axis=0), strict=True) if c > 0]
    comp = comp[:, [elements.index(z) for z in train_elements]]
    stats = fit_element_references(comp, energy[train_idx], train_elements)
    stats["num_molecules"] = int(len(train_idx))
    stats["num_atoms"] = int(natoms[train_idx].sum())
    missing = sorted(set(elements) - set(train_elements))
    if missing:
        logger.warning("elements %s occur only in validation: no energy reference", missing)

    summary = {
        "source": source,
        "path": None if path is None else str(path),
        "shards": shard_names,
        "read": int(read),
        "kept": int(kept),
        "dropped": {k: int(v) for k, v in dropped.items()},
        "train_molecules": int(len(train_idx)),
        "train_atoms": int(natoms[train_idx].sum()),
        "val_molecules": int(len(val_idx)),
        "val_atoms": int(natoms[val_idx].sum()),
        "charge_or_spin_unspecified": int(sum(r["charge_or_spin_unspecified"] for r in results)),
        "elements": elements,
        "filters": filters,
        "val_size": int(val_size),
        "seed": int(seed),
    }
    if source == "demo":
        import h5py

        from pipeline.data.demo import demo_path

        with h5py.File(Path(path) if path is not None else demo_path(), "r") as f:
            summary["demo_provenance"] = json.loads(f.attrs.get("provenance", "{}"))
    counts = {
        k: summary[k] for k in ("read", "kept", "dropped", "train_molecules", "val_molecules")
    }
    for split, order in (("train", train_idx), ("val", val_idx)):
        attrs = {
            "source": source,
            "path": summary["path"] or "",
            "filters": filters,
            "seed": int(seed),
            "val_size": int(val_size),
            "split": split,
            "counts": counts,
        }
        _write_split(temps[f"{split}.h5"], parts, shard_of, local, order, attrs)
    temps["stats.json"].write_text(json.dumps(stats, indent=2) + "\n")
    temps["summary.json"].write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def train_fraction_size(num_molecules: int, fraction: float) -> int:
    """Molecules in the fraction-``fraction`` prefix: ``ceil(fraction * M)``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return min(num_molecules, math.ceil(fraction * num_molecules - 1e-9))


if __name__ == "__main__":
    sys.exit(read_shard_main(sys.argv[1:]))
