"""Readers of the raw sources: the embedded demo file, extxyz files and OMol25 shards.

Every reader yields, one record at a time, either a :class:`Record` or an
:class:`Unreadable` (a record that exists but cannot be decoded; it is counted and
skipped by the extractor). Errors that concern a whole file (missing, empty, not a
database) raise :class:`SourceError` naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

logger = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source file or folder cannot be read at all (the job stops)."""


@dataclass
class Record:
    """One molecule as read from a source.

    Attributes
    ----------
    numbers : int array [n]
        Atomic numbers.
    positions : float array [n, 3]
        Cartesian positions, Angstrom.
    energy : float or None
        Total energy, eV (None when the record has none).
    forces : float array [n, 3] or None
        Forces, eV/Angstrom (None when the record has none).
    charge : int or None
        Net charge in e (None when the source does not say).
    spin : int or None
        Spin multiplicity 2S+1 (None when the source does not say).
    group : str
        Key of the group the record belongs to (all conformers of one molecule
        share it); validation is split by group.
    label : str
        ``file:record`` for messages.
    """

    numbers: np.ndarray
    positions: np.ndarray
    energy: float | None
    forces: np.ndarray | None
    charge: int | None
    spin: int | None
    group: str
    label: str


@dataclass
class Unreadable:
    """A record that exists but cannot be decoded."""

    label: str
    error: str


def _as_int(value) -> int | None:
    if value is None:
        return None
    return int(np.asarray(value).item())


def iter_demo(path: str | os.PathLike) -> Iterator[Record]:
    """Records of the embedded demo HDF5 file (see :mod:`pipeline.data.demo`)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: demo dataset file does not exist")
    with h5py.File(path, "r") as f:
        numbers = f["atomic_numbers"][:]
        positions = f["positions"][:]
        forces = f["forces"][:]
        energy = f["energy"][:]
        ptr = f["ptr"][:]
        charge = f["charge"][:]
        spin = f["spin"][:]
        group = f["group"][:]
    for i in range(len(energy)):
        a, b = ptr[i], ptr[i + 1]
        yield Record(
            numbers=numbers[a:b],
            positions=positions[a:b],
            energy=float(energy[i]),
            forces=forces[a:b],
            charge=int(charge[i]),
            spin=int(spin[i]),
            group=f"demo:{int(group[i])}",
            label=f"{path.name}:{i}",
        )


def iter_extxyz(path: str | os.PathLike) -> Iterator[Record]:
    """Records of an extended-XYZ file, read frame by frame with ``ase.io.iread``.

    Energy and forces come from the frame's calculator results (``energy``/``forces``
    columns); charge and spin from ``atoms.info['charge']`` and ``['spin']`` (spin
    multiplicity) when present. A parse error stops reading: it raises
    :class:`SourceError` naming the file and the frame.
    """
    import ase.io
    from ase.io.extxyz import XYZError

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: extxyz file does not exist")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: extxyz file is empty")
    frames = ase.io.iread(str(path), index=":", format="extxyz")
    i = 0
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            return
        except (XYZError, ValueError, IndexError, KeyError) as err:
            raise SourceError(f"{path}: cannot parse frame {i}: {err}") from err
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = results.get("energy", atoms.info.get("energy"))
        forces = results.get("forces", atoms.arrays.get("forces"))
        yield Record(
            numbers=atoms.numbers,
            positions=atoms.positions,
            energy=None if energy is None else float(energy),
            forces=None if forces is None else np.asarray(forces, dtype=np.float64),
            charge=_as_int(atoms.info.get("charge")),
            spin=_as_int(atoms.info.get("spin")),
            group=f"{path.name}:{i}",
            label=f"{path}:frame {i}",
        )
        i += 1


def _from_json(value, dtype=None) -> np.ndarray | None:
    """An array from ASE's JSON encoding (``{"__ndarray__": [shape, dtype, flat]}``)."""
    if value is None:
        return None
    if isinstance(value, dict):
        shape, stored_dtype, flat = value["__ndarray__"]
        return np.asarray(flat, dtype=dtype or stored_dtype).reshape(shape)
    return np.asarray(value, dtype=dtype)


def _loads(text: bytes):
    """JSON of one row: orjson (~2.5x faster than the stdlib), and the stdlib for the
    rows orjson rejects: those holding NaN or Infinity, which ASE's encoder writes as
    bare tokens (not JSON). Such rows then decode as today and the extractor drops
    them as non-finite, counted."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def decode_aselmdb_value(raw: bytes) -> tuple:
    """Decode one stored ASE-DB LMDB row: (numbers, positions, energy, forces, data).

    The row is zlib-compressed JSON in ASE's encoding, as
    ``ase_db_backends.aselmdb`` writes it. Decoding it directly (orjson, with the
    stdlib's ``json`` for rows holding NaN/Infinity, without ASE's object hooks and
    ``AtomsRow``) gives the same values about ten times faster; tests check equality
    with ``row.toatoms()``.

    Raises
    ------
    zlib.error, ValueError, KeyError, TypeError, IndexError
        The value is not a decodable row (``orjson.JSONDecodeError`` and
        ``json.JSONDecodeError`` are ValueErrors).
    """
    dct = _loads(zlib.decompress(raw))
    numbers = _from_json(dct["numbers"], np.int64)
    positions = _from_json(dct["positions"], np.float64)
    energy = dct.get("energy")
    forces = _from_json(dct.get("forces"), np.float64)
    data = dct.get("data") or {}
    if not isinstance(data, dict):
        raise TypeError(f"row data is {type(data).__name__}, not a dict")
    return numbers, positions, energy, forces, data


def _scalar(value) -> int | None:
    if isinstance(value, dict):
        value = _from_json(value)
    return _as_int(value)


def aselmdb_ids(txn) -> list[int] | None:
    """Row ids of an aselmdb shard, as ``ase.db``'s ``db.ids`` lists them, or None.

    ``ase_db_backends.aselmdb`` stores rows under their id and keeps ``nextid`` and
    ``deleted_ids`` (zlib-compressed JSON) beside them; the ids are
    ``range(1, nextid)`` minus the deleted ones. Reading those two keys directly
    spares each shard reader the import of ``ase.db`` (~0.5 s of CPU, 1.5 s wall on a
    loaded machine, per shard process). None when they are not in that form (the
    caller then asks ASE).
    """
    try:
        raw = txn.get(b"nextid")
        if raw is None:
            return None
        nextid = json.loads(zlib.decompress(raw))
        raw = txn.get(b"deleted_ids")
        deleted = set() if raw is None else json.loads(zlib.decompress(raw))
        if isinstance(deleted, dict):
            deleted = _from_json(deleted).tolist()
        deleted = {int(i) for i in deleted}
        return [i for i in range(1, int(nextid)) if i not in deleted]
    except (zlib.error, ValueError, TypeError, KeyError):
        return None


def _aselmdb_ids_from_ase(path: Path) -> list[int]:
    """``db.ids`` as ASE lists them (opened as fairchem does)."""
    import ase.db

    db = ase.db.connect(str(path), type="aselmdb", readonly=True, use_lock_file=False)
    try:
        return list(db.ids)
    finally:
        db.close()


def iter_aselmdb(path: str | os.PathLike) -> Iterator[Record | Unreadable]:
    """Records of one OMol25 ``*.aselmdb`` shard (ASE-DB on LMDB).

    The ids are listed as ``ase.db`` lists them (:func:`aselmdb_ids`, else
    ``ase.db.connect(..., readonly=True, use_lock_file=False)`` as fairchem opens
    it); the rows are then read one id at a time from a read-only LMDB transaction
    and decoded with
    :func:`decode_aselmdb_value`, so that a corrupt record is reported as
    :class:`Unreadable` and the rows after it are still read (``select()`` would stop
    at the first one). Charge and spin multiplicity come from the row's data dict.

    Raises
    ------
    SourceError
        The file does not exist, is empty, or is not an LMDB database.
    """
    import lmdb

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: shard does not exist")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: shard is an empty file (0 bytes), not an LMDB database")
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=True)
    except lmdb.Error as err:
        raise SourceError(
            f"{path}: not a readable LMDB database ({type(err).__name__}: {err})"
        ) from err
    try:
        with env.begin(buffers=False) as txn:
            ids = aselmdb_ids(txn)
        if ids is None:  # not the layout aselmdb_ids knows: ask ASE (one env per process)
            env.close()
            ids = _aselmdb_ids_from_ase(path)
            env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=True)
    except lmdb.Error as err:
        env.close()
        raise SourceError(
            f"{path}: not a readable LMDB database ({type(err).__name__}: {err})"
        ) from err
    if not ids:
        logger.warning("%s: shard holds no record", path)
    try:
        with env.begin(buffers=False) as txn:
            for idx in ids:
                label = f"{path.name}:id {idx}"
                try:
                    raw = txn.get(str(idx).encode("ascii"))
                    if raw is None:
                        raise KeyError(f"id {idx} listed but not stored")
                    numbers, positions, energy, forces, data = decode_aselmdb_value(raw)
                    charge, spin = _scalar(data.get("charge")), _scalar(data.get("spin"))
                    energy = None if energy is None else float(energy)
                except (lmdb.Error, zlib.error, ValueError, KeyError, TypeError, IndexError) as err:
                    # zlib.error: corrupt compressed record; ValueError: bad JSON/shape.
                    yield Unreadable(label, f"{type(err).__name__}: {err}")
                    continue
                yield Record(
                    numbers=numbers,
                    positions=positions,
                    energy=energy,
                    forces=forces,
                    charge=charge,
                    spin=spin,
                    group=label,
                    label=label,
                )
    finally:
        env.close()
