"""The embedded demo dataset: GFN2-xTB labels on RDKit conformers of NCI molecules.

The shipped file ``demo_gfn2xtb.h5`` (next to this module) is what ``source: demo``
reads. It is made by :func:`generate_demo` (also ``python -m pipeline.data.demo --out
PATH``), deterministically from ``seed``, so the file can be regenerated bit for bit
with the same RDKit/tblite versions.

Recipe
------
1. Molecules: RDKit's bundled ``RDConfig.RDDataDir/NCI/first_5K.smi``, kept if they
   parse, have one fragment, zero net charge, no radical electrons, 8-30 atoms
   including hydrogens and only the elements H C N O F S Cl.
2. Per molecule, ``n_conformers`` ETKDGv3 conformers (RDKit seed derived from
   ``seed`` and the molecule index), each rattled by isotropic Gaussian noise with a
   standard deviation drawn uniformly from [0.03, 0.05] Angstrom.
3. A fraction ``variant_fraction`` of molecules has ``variant_conformers`` of its
   conformers replaced by a charged and/or open-shell species of the same molecule:
   protonated amine (charge +1, multiplicity 1), deprotonated acid or phenol (charge
   -1, multiplicity 1), vertical radical cation (charge +1, multiplicity 2) or
   vertical triplet (charge 0, multiplicity 3).
   Variants share the group id of their source molecule.
4. Labels: GFN2-xTB single points with tblite (one thread per process), energies in
   eV (float64) and forces in eV/Angstrom, computed on the float32-rounded positions
   that are stored. Failed embeddings and SCF failures are caught and counted by
   reason in the file's attributes.

File layout (HDF5, gzip): ``atomic_numbers`` uint8 [A], ``positions`` float32 [A, 3]
(Angstrom), ``forces`` float32 [A, 3] (eV/Angstrom), ``energy`` float64 [M] (eV),
``ptr`` int64 [M+1], ``charge`` int8 [M] (e), ``spin`` int8 [M] (multiplicity 2S+1),
``group`` int32 [M] (index into ``group_smiles``), ``variant`` int8 [M] (0 neutral,
1 protonated, 2 deprotonated, 3 radical cation,
4 triplet), ``conformer`` int16 [M],
``group_smiles`` str [G]; provenance in the root attributes.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEMO_FILENAME = "demo_gfn2xtb.h5"
ELEMENTS = (1, 6, 7, 8, 9, 16, 17)  # H C N O F S Cl
MIN_ATOMS, MAX_ATOMS = 8, 30
RATTLE_RANGE = (0.03, 0.05)  # Angstrom
# CODATA 2018
HARTREE_EV = 27.211386245988
BOHR_ANGSTROM = 0.529177210903
VARIANTS = {
    0: "neutral",
    1: "protonated",
    2: "deprotonated",
    3: "radical_cation",
    4: "triplet",
}
_VARIANT_CHARGE_SPIN = {0: (0, 1), 1: (1, 1), 2: (-1, 1), 3: (1, 2), 4: (0, 3)}

# Basic aliphatic amine nitrogen (not amide, not aniline, not sulfonamide, not N-N/N-O).
_AMINE = "[NX3;!$(N-[C,S,P]=[O,S,N]);!$(N-a);!$(N-[N,O]);!$(N#*);!$(N=*)]"
_ACID_OH = "[OX2H1;$(O-C=O),$(O-c)]"


def demo_path() -> Path:
    """Return the path of the shipped demo HDF5 file."""
    return Path(str(resources.files(__package__).joinpath(DEMO_FILENAME)))


def source_smiles_path() -> Path:
    """Return RDKit's bundled ``NCI/first_5K.smi``."""
    from rdkit import RDConfig

    return Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"


def select_molecules(smi_path: Path) -> tuple[list[str], Counter]:
    """Read and filter the SMILES file.

    Returns
    -------
    smiles : list of str
        Canonical SMILES of the kept molecules, in file order.
    rejected : Counter
        Rejected lines by reason.
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    kept: list[str] = []
    seen: set[str] = set()
    rejected: Counter = Counter()
    for line in Path(smi_path).read_text().splitlines():
        if not line.strip():
            continue
        mol = Chem.MolFromSmiles(line.split()[0])
        if mol is None:
            rejected["unparsable"] += 1
            continue
        if len(Chem.GetMolFrags(mol)) != 1:
            rejected["several_fragments"] += 1
            continue
        if Chem.GetFormalCharge(mol) != 0:
            rejected["charged"] += 1
            continue
        if any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
            rejected["radical"] += 1
            continue
        molh = Chem.AddHs(mol)
        if any(a.GetAtomicNum() not in ELEMENTS for a in molh.GetAtoms()):
            rejected["element"] += 1
            continue
        if not MIN_ATOMS <= molh.GetNumAtoms() <= MAX_ATOMS:
            rejected["size"] += 1
            continue
        can = Chem.MolToSmiles(mol)
        if can in seen:
            rejected["duplicate"] += 1
            continue
        seen.add(can)
        kept.append(can)
    return kept, rejected


def _variant_mol(smiles: str, variant: int):
    """RDKit molecule (with H) of ``smiles`` in the given variant, or None if impossible."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if variant == 1:
        hits = mol.GetSubstructMatches(Chem.MolFromSmarts(_AMINE))
        if not hits:
            return None
        atom = mol.GetAtomWithIdx(hits[0][0])
        atom.SetFormalCharge(1)
        atom.SetNumExplicitHs(atom.GetTotalNumHs() + 1)
        atom.SetNoImplicit(True)
    elif variant == 2:
        hits = mol.GetSubstructMatches(Chem.MolFromSmarts(_ACID_OH))
        if not hits:
            return None
        atom = mol.GetAtomWithIdx(hits[0][0])
        atom.SetFormalCharge(-1)
        atom.SetNumExplicitHs(0)
        atom.SetNoImplicit(True)
    Chem.SanitizeMol(mol)
    return Chem.AddHs(mol)


def _embed(molh, n: int, rdkit_seed: int) -> list[np.ndarray]:
    from rdkit.Chem import AllChem

    params = AllChem.ETKDGv3()
    params.randomSeed = rdkit_seed
    params.numThreads = 1
    ids = AllChem.EmbedMultipleConfs(molh, n, params)
    return [molh.GetConformer(i).GetPositions() for i in ids]


def _xtb(numbers: np.ndarray, positions: np.ndarray, charge: int, spin: int):
    """GFN2-xTB energy (eV) and forces (eV/Angstrom) at ``positions`` (Angstrom)."""
    from tblite.interface import Calculator

    calc = Calculator(
        "GFN2-xTB",
        numbers,
        positions / BOHR_ANGSTROM,
        charge=float(charge),
        uhf=spin - 1,
    )
    calc.set("verbosity", 0)
    res = calc.singlepoint()
    energy = float(res.get("energy")) * HARTREE_EV
    forces = -np.asarray(res.get("gradient")) * (HARTREE_EV / BOHR_ANGSTROM)
    return energy, forces


def _label_molecule(task: tuple) -> tuple[list[dict], Counter]:
    """Conformers and labels of one molecule (runs in a worker process)."""
    from tblite.exceptions import TBLiteRuntimeError

    index, smiles, seed, n_conf, variant, n_variant = task
    rng = np.random.default_rng([seed, index])
    failures: Counter = Counter()
    plan = [(0, n_conf - n_variant)] if variant else [(0, n_conf)]
    if variant:
        plan.append((variant, n_variant))
    samples: list[dict] = []
    for var, n in plan:
        molh = _variant_mol(smiles, var)
        numbers = np.array([a.GetAtomicNum() for a in molh.GetAtoms()], dtype=np.uint8)
        confs = _embed(molh, n, int(rng.integers(1, 2**31 - 1)))
        failures["embedding_failed"] += n - len(confs)
        charge, spin = _VARIANT_CHARGE_SPIN[var]
        for k, pos in enumerate(confs):
            sigma = rng.uniform(*RATTLE_RANGE)
            pos = (pos + rng.normal(0.0, sigma, size=pos.shape)).astype(np.float32)
            try:
                energy, forces = _xtb(numbers, pos.astype(np.float64), charge, spin)
            except TBLiteRuntimeError as err:
                failures["scf_failed"] += 1
                logger.debug("molecule %d (%s) variant %d: %s", index, smiles, var, err)
                continue
            if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
                failures["non_finite_label"] += 1
                continue
            samples.append(
                {
                    "numbers": numbers,
                    "positions": pos,
                    "forces": forces.astype(np.float32),
                    "energy": energy,
                    "charge": charge,
                    "spin": spin,
                    "variant": var,
                    "conformer": k,
                }
            )
    return samples, failures


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def _worker_main(argv: list[str]) -> int:
    """Worker process: ``TASKS_PICKLE WORKER N_WORKERS OUT_PICKLE``; labels tasks
    ``WORKER::N_WORKERS`` and pickles ``[(index, samples, failures), ...]``."""
    tasks_path, worker, n_workers, out_path = argv
    _init_worker()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tasks = pickle.loads(Path(tasks_path).read_bytes())[int(worker) :: int(n_workers)]
    out = []
    for k, task in enumerate(tasks):
        out.append((task[0], *_label_molecule(task)))
        if (k + 1) % 250 == 0:
            logger.info("worker %s: labelled %d / %d molecules", worker, k + 1, len(tasks))
    Path(out_path).write_bytes(pickle.dumps(out))
    return 0


def _label_in_subprocesses(tasks: list[tuple], n_workers: int) -> list:
    """Label ``tasks`` in ``n_workers`` fresh interpreter processes (round-robin split).

    Fresh ``python -m`` processes rather than multiprocessing: spawn would re-import
    the caller's main script (an unguarded Snakemake script), and fork after tblite
    has run in the parent can deadlock in OpenMP. Results are ordered by task index,
    so the output does not depend on ``n_workers``.
    """
    import pipeline

    env = dict(os.environ, OMP_NUM_THREADS="1")
    src_root = str(Path(pipeline.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        tasks_path = Path(tmp) / "tasks.pkl"
        tasks_path.write_bytes(pickle.dumps(tasks))
        procs = []
        for w in range(n_workers):
            out = Path(tmp) / f"out_{w}.pkl"
            cmd = [
                sys.executable,
                "-m",
                "pipeline.data.demo",
                "--worker",
                str(tasks_path),
                str(w),
                str(n_workers),
                str(out),
            ]
            procs.append((subprocess.Popen(cmd, env=env), out))
        labelled = {}
        for w, (proc, out) in enumerate(procs):
            if proc.wait() != 0:
                for other, _ in procs:
                    other.kill()
                raise RuntimeError(
                    f"demo labelling worker {w} failed with exit code "
                    f"{proc.returncode} (traceback above)"
                )
            for index, samples, failures in pickle.loads(out.read_bytes()):
                labelled[index] = (samples, failures)
    return [labelled[t[0]] for t in tasks]


def generate_demo(
    out_path: str | os.PathLike,
    n_workers: int = 2,
    seed: int = 0,
    *,
    n_conformers: int = 8,
    max_molecules: int | None = None,
    variant_fraction: float = 0.3,
    variant_conformers: int = 3,
    smiles_path: str | os.PathLike | None = None,
) -> dict:
    """Generate the demo dataset and write it atomically to ``out_path`` (HDF5).

    Parameters
    ----------
    out_path : path
        Output HDF5 file; written to a temporary name and renamed when complete.
    n_workers : int
        Worker processes (each runs tblite on one thread).
    seed : int
        Seed of every random choice (conformers, rattle, variants).
    n_conformers : int
        Samples per molecule (neutral plus variant).
    max_molecules : int or None
        Use only the first ``max_molecules`` filtered molecules (None: all).
    variant_fraction : float
        Fraction of molecules that get charged/open-shell variant samples.
    variant_conformers : int
        Of the ``n_conformers`` samples of such a molecule, how many are the variant.
    smiles_path : path or None
        SMILES file (default: RDKit's ``NCI/first_5K.smi``).

    Returns
    -------
    dict
        The provenance written to the file's attributes.
    """
    import h5py
    import rdkit

    os.environ["OMP_NUM_THREADS"] = "1"
    smi_path = Path(smiles_path) if smiles_path else source_smiles_path()
    smiles, rejected = select_molecules(smi_path)
    if max_molecules is not None:
        smiles = smiles[:max_molecules]
    if not smiles:
        raise ValueError(f"{smi_path}: no molecule passes the demo filters")
    # Variant choice is made here, in the parent, from one generator: deterministic.
    rng = np.random.default_rng([seed, 2**20])
    from rdkit import Chem

    amine, acid = Chem.MolFromSmarts(_AMINE), Chem.MolFromSmarts(_ACID_OH)
    tasks = []
    for i, smi in enumerate(smiles):
        variant = 0
        if rng.random() < variant_fraction:
            mol = Chem.MolFromSmiles(smi)
            options = [3, 4]
            if mol.HasSubstructMatch(amine):
                options.append(1)
            if mol.HasSubstructMatch(acid):
                options.append(2)
            variant = int(options[rng.integers(len(options))])
        tasks.append((i, smi, seed, n_conformers, variant, variant_conformers))

    logger.info(
        "labelling %d molecules x %d conformers on %d processes",
        len(tasks),
        n_conformers,
        n_workers,
    )
    results: list[tuple[list[dict], Counter]] = []
    if n_workers > 1:
        results = _label_in_subprocesses(tasks, n_workers)
    else:
        _init_worker()
        results = [_label_molecule(t) for t in tasks]

    failures: Counter = Counter()
    rows = []
    for group, (samples, fail) in enumerate(results):
        failures.update(fail)
        for s in samples:
            rows.append((group, s))
    if not rows:
        raise RuntimeError("demo generation produced no sample")
    counts = np.array([len(s["numbers"]) for _, s in rows], dtype=np.int64)
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    numbers = np.concatenate([s["numbers"] for _, s in rows])
    positions = np.concatenate([s["positions"] for _, s in rows])
    forces = np.concatenate([s["forces"] for _, s in rows])
    energy = np.array([s["energy"] for _, s in rows], dtype=np.float64)
    charge = np.array([s["charge"] for _, s in rows], dtype=np.int8)
    spin = np.array([s["spin"] for _, s in rows], dtype=np.int8)
    variant = np.array([s["variant"] for _, s in rows], dtype=np.int8)
    conformer = np.array([s["conformer"] for _, s in rows], dtype=np.int16)
    group = np.array([g for g, _ in rows], dtype=np.int32)

    variant_counts = {VARIANTS[v]: int((variant == v).sum()) for v in VARIANTS}
    fmax = np.linalg.norm(forces, axis=1)
    provenance = {
        "level_of_theory": "GFN2-xTB",
        "code": f"tblite {_version('tblite')}",
        "conformers": f"RDKit {rdkit.__version__} ETKDGv3 + Gaussian rattle "
        f"sigma ~ U{list(RATTLE_RANGE)} Angstrom",
        "source_smiles": f"RDConfig.RDDataDir/NCI/{smi_path.name}",
        "filters": f"one fragment, neutral, no radicals, {MIN_ATOMS}-{MAX_ATOMS} atoms with H, "
        "elements H C N O F S Cl",
        "units": {
            "energy": "eV",
            "forces": "eV/Angstrom",
            "positions": "Angstrom",
            "charge": "e",
            "spin": "multiplicity 2S+1",
        },
        "conversion": {"hartree_eV": HARTREE_EV, "bohr_angstrom": BOHR_ANGSTROM},
        "seed": seed,
        "n_conformers": n_conformers,
        "variant_fraction": variant_fraction,
        "variant_conformers": variant_conformers,
        "num_smiles_rejected": dict(sorted(rejected.items())),
        "num_molecules": len(smiles),
        "num_samples": len(rows),
        "num_atoms": int(len(numbers)),
        "samples_by_variant": variant_counts,
        "failures": {k: int(v) for k, v in sorted(failures.items())},
        "elements": sorted(int(z) for z in np.unique(numbers)),
        "max_force_eV_per_A": float(fmax.max()),
        "force_norm_p99_eV_per_A": float(np.percentile(fmax, 99)),
    }

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            opts = {
                "compression": "gzip",
                "compression_opts": 9,
                "shuffle": True,
                "track_times": False,
            }
            f.create_dataset(
                "atomic_numbers", data=numbers, chunks=(min(len(numbers), 65536),), **opts
            )
            for name, arr in (("positions", positions), ("forces", forces)):
                f.create_dataset(name, data=arr, chunks=(min(len(arr), 65536), 3), **opts)
            for name, arr in (
                ("energy", energy),
                ("ptr", ptr),
                ("charge", charge),
                ("spin", spin),
                ("group", group),
                ("variant", variant),
                ("conformer", conformer),
            ):
                f.create_dataset(name, data=arr, chunks=(min(len(arr), 65536),), **opts)
            f.create_dataset(
                "group_smiles",
                data=np.array(smiles, dtype=object),
                dtype=h5py.string_dtype(),
                track_times=False,
            )
            f.attrs["provenance"] = json.dumps(provenance, sort_keys=True)
            for key in (
                "level_of_theory",
                "code",
                "source_smiles",
                "seed",
                "num_samples",
                "num_molecules",
            ):
                f.attrs[key] = provenance[key]
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    logger.info(
        "wrote %s: %d samples of %d molecules, failures %s",
        out_path,
        len(rows),
        len(smiles),
        provenance["failures"],
    )
    return provenance


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)
