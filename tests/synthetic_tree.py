"""A synthetic results tree in the real formats, written in seconds, for end-to-end tests.

:func:`write_synthetic_tree` writes, under ``results``, what the train, extract, kappa
and group-averaging stages would write for a config (default: the repository's
``config.yaml``), in the run-folder layout with a seed level (contract 1)::

    data/{train,val}.h5 (empty placeholders), data/{stats,summary}.json
    runs/{arch}/{width}/{fraction}/seed{seed}/{curve.csv,meta.json,model.pt}
    variants/{variant}/{arch}/{width}/{fraction}/seed{seed}/...   (every variant)
    variants/{variant}/data/...                                   (variants with own data)
    kappa/{arch}.csv, kappa/{arch}_points.csv, kappa.csv
    group_average/{arch}/{width}/{fraction}/seed{seed}.csv

and then, by calling the real :mod:`pipeline.scaling` functions, the frontier CSVs
(``frontier/{arch}_{flops,hours}.csv``) and fit JSONs (``fits/{arch}.json``) of the
base archs. Losses follow eq. (5) per arch with a per-run (seed) offset and AR(1)
noise along each curve; shared-fraction passes write nested prefixes of one curve
with one ``run_id``; multi-epoch runs without augmentation overfit after 10 epochs.
``model.pt`` and the HDF5 files are empty placeholders (no stage downstream of
training reads them except group averaging, whose CSVs are written here).

Use the ``synthetic_tree`` fixture (session scope, default config, few bootstraps)::

    from tests.synthetic_tree import synthetic_tree  # noqa: F401  (the fixture)

    def test_x(synthetic_tree):
        results, config = synthetic_tree.results, synthetic_tree.config
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import expand_variants, merge_config, mup_learning_rate

REPO = Path(__file__).resolve().parents[1]

#: The trainer's curve columns (pipeline.train.loop.CURVE_COLUMNS), copied so that this
#: module does not import torch; a test checks they agree.
CURVE_COLUMNS = [
    "step",
    "epoch",
    "molecules_seen",
    "atoms_seen",
    "train_seconds",
    "eval_seconds",
    "val_loss",
    "val_energy_loss",
    "val_force_loss",
    "val_energy_mae_mev_per_atom",
    "val_force_mae_mev_per_angstrom",
    "train_loss",
]

#: Eq. (5) truth per arch (E, alpha, beta; A and B put each term near 0.3 mid-ladder),
#: forward FLOPs per parameter per atom, and a wall-clock slowness factor.
TRUTH = {
    "mpnn": {"E": 0.05, "alpha": 0.30, "beta": 0.30, "kappa": 2.0, "slow": 1.0},
    "egnn": {"E": 0.04, "alpha": 0.45, "beta": 0.40, "kappa": 3.0, "slow": 2.0},
    "esen": {"E": 0.03, "alpha": 0.60, "beta": 0.50, "kappa": 20.0, "slow": 8.0},
    "gemnet_oc": {"E": 0.03, "alpha": 0.50, "beta": 0.45, "kappa": 8.0, "slow": 6.0},
    "transformer": {"E": 0.10, "alpha": 0.20, "beta": 0.20, "kappa": 2.0, "slow": 1.0},
}
DEFAULT_TRUTH = {"E": 0.05, "alpha": 0.35, "beta": 0.35, "kappa": 4.0, "slow": 2.0}

TRAIN_MOLECULES = 4000
ATOMS_PER_MOLECULE = 18
SIGMA_EV = 2.0  # energy_std_eV: maps normalised losses to meV MAEs


@dataclass
class SyntheticTree:
    """What :func:`write_synthetic_tree` wrote."""

    results: Path
    config: dict
    run_dirs: dict[str, list[Path]] = field(default_factory=dict)  # "base" or variant -> dirs
    frontiers: list[Path] = field(default_factory=list)
    fits: list[Path] = field(default_factory=list)
    kappas: list[Path] = field(default_factory=list)
    kappa_points: list[Path] = field(default_factory=list)
    group_average: list[Path] = field(default_factory=list)


def default_config() -> dict:
    """The repository's ``config.yaml`` (the default study)."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _fraction_label(fraction: float) -> str:
    return f"{float(fraction):g}"


def _n_params(arch: str, width: int, hparams: Mapping) -> int:
    """A plausible parameter count: quadratic in width, linear in depth."""
    depth = int(hparams.get("num_layers", 3))
    lmax = int(hparams.get("lmax", 0))
    return int(40 * width + depth * (6 + 2 * lmax) * width**2 + 500)


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _placeholder(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _write_data(folder: Path, *, neutral_only: bool = True) -> None:
    atoms = TRAIN_MOLECULES * ATOMS_PER_MOLECULE
    for name in ("train.h5", "val.h5"):
        _placeholder(folder / name)
    stats = {
        "element_energy_eV": {"1": -13.6, "6": -1029.8, "7": -1485.3, "8": -2041.4},
        "energy_mean_eV": 0.0,
        "energy_std_eV": SIGMA_EV,
        "num_molecules": TRAIN_MOLECULES,
        "num_atoms": atoms,
    }
    dropped = {"charged": 0 if not neutral_only else 310, "open_shell": 0 if not neutral_only
               else 120, "too_large": 3, "nonfinite_label": 1, "no_neighbour": 0,
               "unreadable": 0}  # fmt: skip
    summary = {
        "source": "synthetic",
        "path": None,
        "shards": [],
        "read": TRAIN_MOLECULES + 250 + sum(dropped.values()),
        "kept": TRAIN_MOLECULES + 250,
        "dropped": dropped,
        "train_molecules": TRAIN_MOLECULES,
        "train_atoms": atoms,
        "val_molecules": 250,
        "val_atoms": 250 * ATOMS_PER_MOLECULE,
        "charge_or_spin_unspecified": 0,
        "elements": [1, 6, 7, 8],
        "filters": {"neutral_only": neutral_only, "max_atoms": 350},
        "val_size": 250,
        "seed": 0,
    }
    _write_json(folder / "stats.json", stats)
    _write_json(folder / "summary.json", summary)


def _truth(arch: str) -> dict:
    t = dict(TRUTH.get(arch, DEFAULT_TRUTH))
    # each term about 0.3 at N = 1e4 and D = 1e5
    t["A"] = 0.3 * 1e4 ** t["alpha"]
    t["B"] = 0.3 * 1e5 ** t["beta"]
    return t


def _seeds(config: Mapping, arch_section: Mapping, width: int) -> list[int]:
    seeds = list(arch_section.get("seeds") or config.get("seeds") or [0])
    extra_widths = arch_section.get("seed_widths")
    if extra_widths is not None and width not in extra_widths:
        seeds = seeds[:1]
    return [int(s) for s in seeds]


def _pass_curve(
    rng: np.random.Generator,
    *,
    arch: str,
    n_params: int,
    atoms_total: float,
    fraction_atoms: float,
    train: Mapping,
    overfit: bool,
    hparams: Mapping,
) -> pd.DataFrame:
    """One training pass over ``atoms_total`` atoms (epochs x fraction), as curve rows."""
    t = _truth(arch)
    n_evals = int(train.get("num_evals", 8))
    epochs = int(train.get("epochs", 1))
    if epochs > 1:
        n_evals = max(n_evals, 4 * epochs // 5, 12)
    first = float(train.get("first_eval_fraction", 0.02))
    atoms = np.unique(np.geomspace(first * atoms_total, atoms_total, n_evals).astype(np.int64))
    epoch = np.floor(atoms / fraction_atoms - 1e-9).astype(int)
    ve = hparams.get("vector_channels")
    alpha = t["alpha"] * (1.0 + 0.05 * math.log2(ve) if ve else 1.0)
    clean = t["E"] + t["A"] * n_params**-alpha + t["B"] * atoms.astype(float) ** -t["beta"]
    if hparams.get("translation_invariant") is False:
        clean = clean * 1.25
    if overfit:
        clean = clean * np.where(epoch > 10, ((epoch + 1) / 11.0) ** 0.15, 1.0)
    ar = np.zeros(atoms.size)
    for i in range(atoms.size):
        ar[i] = (0.7 * ar[i - 1] if i else 0.0) + rng.normal(0.0, 0.01)
    loss = clean * np.exp(rng.normal(0.0, 0.02) + ar)
    train_seconds = 2e-9 * t["slow"] * n_params * atoms + 1e-5 * atoms
    steps = np.maximum(1, np.round(atoms / (ATOMS_PER_MOLECULE * 16))).astype(np.int64)
    energy = 0.4 * loss
    force = 0.6 * loss
    return pd.DataFrame(
        {
            "step": steps,
            "epoch": epoch,
            "molecules_seen": atoms // ATOMS_PER_MOLECULE,
            "atoms_seen": atoms,
            "train_seconds": train_seconds,
            "eval_seconds": np.cumsum(np.full(atoms.size, 0.5 + 1e-5 * n_params)),
            "val_loss": loss,
            "val_energy_loss": energy,
            "val_force_loss": force,
            "val_energy_mae_mev_per_atom": energy * SIGMA_EV * 1e3,
            "val_force_mae_mev_per_angstrom": force * SIGMA_EV * 1e3,
            "train_loss": loss * (1.0 + 0.3 * rng.random(atoms.size)),
        },
        columns=CURVE_COLUMNS,
    )


def _write_runs(
    root: Path,
    rng: np.random.Generator,
    *,
    config: Mapping,
    variant: str,
    arch: str,
    section: Mapping,
    widths,
    fractions,
    train: Mapping,
) -> list[Path]:
    """Run folders of one (variant, arch): every width, fraction and seed."""
    hparams = dict(section.get("hparams") or {})
    fractions = sorted(float(f) for f in fractions)
    epochs = int(train.get("epochs", 1))
    shared = bool(train.get("shared_fraction_run")) and epochs == 1 and len(fractions) > 1
    overfit = epochs > 1 and train.get("augment", "none") == "none"
    sym_m = int(train.get("symmetry_loss_rotations", 0) or 0)
    t = _truth(arch)
    dirs = []
    for width in widths:
        width = int(width)
        n = _n_params(arch, width, hparams)
        lr = mup_learning_rate(
            float(section["lr"]), int(section["base_width"]), width, section.get("lr_max")
        )
        for seed in _seeds(config, section, width):
            curves = {}
            if shared:
                full = _pass_curve(rng, arch=arch, n_params=n, train=train, overfit=False,
                                   atoms_total=fractions[-1] * TRAIN_MOLECULES
                                   * ATOMS_PER_MOLECULE, fraction_atoms=np.inf,
                                   hparams=hparams)  # fmt: skip
                for f in fractions:
                    d = f * TRAIN_MOLECULES * ATOMS_PER_MOLECULE
                    part = full[full["atoms_seen"] <= d].copy()
                    curves[f] = (part, f"{variant}/{arch}/w{width}/seed{seed}")
            else:
                for f in fractions:
                    d = f * TRAIN_MOLECULES * ATOMS_PER_MOLECULE
                    c = _pass_curve(rng, arch=arch, n_params=n, train=train, overfit=overfit,
                                    atoms_total=epochs * d, fraction_atoms=d,
                                    hparams=hparams)  # fmt: skip
                    run_id = f"{variant}/{arch}/w{width}/f{_fraction_label(f)}/seed{seed}"
                    curves[f] = (c, run_id)
            for f, (curve, run_id) in curves.items():
                if sym_m:
                    curve = curve.assign(train_symmetry_loss=0.1 * curve["train_loss"])
                base = root / "runs" if variant == "base" else root / "variants" / variant
                rd = base / arch / str(width) / _fraction_label(f) / f"seed{seed}"
                rd.mkdir(parents=True, exist_ok=True)
                curve.to_csv(rd / "curve.csv", index=False)
                _placeholder(rd / "model.pt")
                flops_counted = 0.8 * t["kappa"] * n * (1.0 + 0.02 * math.log(width))
                meta = {
                    "arch": arch, "width": width, "fraction": f, "variant": variant,
                    "seed": seed, "run_id": run_id, "n_params": n, "hparams": hparams,
                    "lr": lr, "lr_base": float(section["lr"]), "lr_max": section.get("lr_max"),
                    "base_width": int(section["base_width"]),
                    "batch_size": int(section["batch_size"]),
                    "train": dict(train),
                    "train_molecules": math.ceil(f * TRAIN_MOLECULES),
                    "steps": int(curve["step"].iloc[-1]),
                    "atoms_seen": int(curve["atoms_seen"].iloc[-1]),
                    "molecules_seen": int(curve["molecules_seen"].iloc[-1]),
                    "shared_run_fractions": fractions if shared else None,
                    "forward_flops_per_atom_counted": flops_counted,
                    "forward_flops_per_atom_uncounted_estimate": 0.25 * flops_counted,
                    "forward_flops_per_atom_total": 1.25 * flops_counted,
                    "forward_passes_per_step": 1 + sym_m,
                    "symmetry_loss_rotations": sym_m,
                    "symmetry_loss_weight": float(train.get("symmetry_loss_weight", 0.0)),
                    "forces": "direct",
                    "nonfinite_steps": 0,
                    "nonfinite_records": [],
                    "train_seconds": float(curve["train_seconds"].iloc[-1]),
                    "eval_seconds": float(curve["eval_seconds"].iloc[-1]),
                    "device": "cpu (synthetic)",
                    "code_version": "synthetic",
                    "energy_std_eV": SIGMA_EV,
                    "synthetic_truth": t,
                }  # fmt: skip
                _write_json(rd / "meta.json", meta)
                dirs.append(rd)
    return dirs


def _write_kappa(results: Path, arch: str, section: Mapping, flops_mode: str) -> None:
    """Raw FLOP points (two batch sizes per width) and the per-arch kappa CSV."""
    t = _truth(arch)
    hparams = dict(section.get("hparams") or {})
    rows = []
    for width in section["widths"]:
        n = _n_params(arch, int(width), hparams)
        for molecules in (16, 64):
            atoms = molecules * ATOMS_PER_MOLECULE
            counted = 0.8 * t["kappa"] * n * atoms * (1.0 + 0.02 * math.log(width))
            total = 1.25 * counted
            chosen = counted if flops_mode == "counted" else total
            rows.append({"arch": arch, "width": int(width), "n_params": n,
                         "molecules": molecules, "atoms": atoms, "flops_counted": counted,
                         "flops_uncounted_estimate": total - counted, "flops_total": total,
                         "flops_per_param_atom": chosen / (n * atoms)})  # fmt: skip
    points = pd.DataFrame(rows)
    col = "flops_counted" if flops_mode == "counted" else "flops_total"
    ratio = np.log(points[col] / (points["n_params"] * points["atoms"]))
    kappa = float(np.exp(ratio.mean()))
    resid = ratio - math.log(kappa)
    ss_tot = float(np.sum((np.log(points[col]) - np.log(points[col]).mean()) ** 2))
    table = pd.DataFrame([{
        "arch": arch, "kappa": kappa, "flops_mode": flops_mode,
        "r2_log": 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan"),
        "worst_rel_residual": float(np.max(np.abs(np.exp(resid) - 1.0))),
        "n_points": len(points),
    }])  # fmt: skip
    folder = results / "kappa"
    folder.mkdir(parents=True, exist_ok=True)
    points.to_csv(folder / f"{arch}_points.csv", index=False)
    table.to_csv(folder / f"{arch}.csv", index=False)


def _write_group_average(results: Path, config: Mapping, base_dirs: list[Path]) -> list[Path]:
    ga = config.get("group_average") or {}
    arch = ga.get("arch")
    if arch not in config["archs"]:
        return []
    fraction = max(float(f) for f in config["archs"][arch].get("fractions")
                   or config["fractions"])  # fmt: skip
    out = []
    for rd in base_dirs:
        meta = json.loads((rd / "meta.json").read_text())
        if (
            meta["arch"] != arch
            or meta["fraction"] != fraction
            or meta["seed"] != min(_seeds(config, config["archs"][arch], meta["width"]))
        ):
            continue
        final = pd.read_csv(rd / "curve.csv").iloc[-1]
        rows = []
        for m in ga.get("rotations", [1, 2, 4]):
            loss = float(final["val_loss"]) * (1.0 - 0.06 * (1.0 - 1.0 / m))
            rows.append({"num_rotations": int(m), "val_loss": loss,
                         "val_energy_loss": 0.4 * loss, "val_force_loss": 0.6 * loss,
                         "val_energy_mae_mev_per_atom": 0.4 * loss * SIGMA_EV * 1e3,
                         "val_force_mae_mev_per_angstrom": 0.6 * loss * SIGMA_EV * 1e3,
                         "arch": arch, "width": meta["width"], "n_params": meta["n_params"],
                         "seed": 0, "include_identity": False})  # fmt: skip
        path = (results / "group_average" / arch / str(meta["width"]) / f"{fraction:g}"
                / f"seed{meta['seed']}.csv")  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)
        out.append(path)
    return out


def _call(fn, *args, fit: Mapping, arch: str, kappa_config: Mapping | None, **kwargs):
    """Call a scaling writer with the settings of ``config['fit']`` its signature takes."""
    params = inspect.signature(fn).parameters
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    try:
        from pipeline.scaling.fits import fit_options

        options = fit_options(fit, arch, kappa_config)
    except ImportError:  # before the fit settings helper
        options = {"n_boot": fit["n_boot"], "seed": fit["seed"], "warmup": fit["skip_fraction"]}
    if "fit" in params:
        kwargs["fit"] = dict(fit)
    else:
        kwargs.update({k: v for k, v in options.items() if k in params or any_keyword})
    if "arch" in params:
        kwargs["arch"] = arch
    return fn(*args, **kwargs)


def _scaling_writers():
    try:  # STATS may rename pipeline.scaling.report into fits/tables modules
        from pipeline.scaling.fits import write_fit
    except ImportError:
        from pipeline.scaling.report import write_fit
    from pipeline.scaling.frontier import write_frontiers

    return write_frontiers, write_fit


def write_synthetic_tree(
    results: str | Path,
    config: Mapping | None = None,
    *,
    n_boot: int = 16,
    seed: int = 0,
    fits: bool = True,
) -> SyntheticTree:
    """Write a synthetic results tree for ``config`` (default: ``config.yaml``).

    Parameters
    ----------
    results : path
        The ``results`` folder to fill (``config['results']`` is set to it).
    config : mapping, optional
        A study config (raw YAML: ``archs``, ``fractions``, ``train``, ``variants``,
        ``group_average``, ``fit``, optional ``seeds``).
    n_boot : int
        Bootstrap resamples of the fits (``config['fit']['n_boot']`` is set to it).
    seed : int
        Seed of the synthetic noise.
    fits : bool
        Also write frontiers and fit JSONs of the base archs with pipeline.scaling.

    Returns
    -------
    SyntheticTree
        The paths written and the config used.
    """
    results = Path(results)
    config = copy.deepcopy(dict(config or default_config()))
    config["results"] = str(results)
    config.setdefault("fit", {})
    config["fit"]["n_boot"] = int(n_boot)
    config["fit"].setdefault("seed", 0)
    config["fit"].setdefault("skip_fraction", 0.1)
    rng = np.random.default_rng(seed)
    tree = SyntheticTree(results=results, config=config)
    _write_data(results / "data")
    flops_mode = (config.get("kappa") or {}).get("flops", "total")
    base = []
    for arch, section in config["archs"].items():
        train = merge_config(config["train"], section.get("train", {}))
        fractions = section.get("fractions") or config["fractions"]
        base += _write_runs(results, rng, config=config, variant="base", arch=arch,
                            section=section, widths=section["widths"], fractions=fractions,
                            train=train)  # fmt: skip
        _write_kappa(results, arch, section, flops_mode)
        tree.kappas.append(results / "kappa" / f"{arch}.csv")
        tree.kappa_points.append(results / "kappa" / f"{arch}_points.csv")
    tree.run_dirs["base"] = base
    pd.concat([pd.read_csv(p) for p in tree.kappas]).to_csv(results / "kappa.csv", index=False)
    for name, spec in expand_variants(config).items():
        if spec["own_data"]:
            _write_data(results / "variants" / name / "data",
                        neutral_only=spec["data"].get("neutral_only", True))  # fmt: skip
        tree.run_dirs[name] = _write_runs(
            results, rng, config=config, variant=name, arch=spec["arch"],
            section=spec["arch_settings"], widths=spec["widths"], fractions=spec["fractions"],
            train=spec["train"],
        )  # fmt: skip
    tree.group_average = _write_group_average(results, config, base)
    if fits:
        write_frontiers, write_fit = _scaling_writers()
        for arch in config["archs"]:
            dirs = [d for d in base if json.loads((d / "meta.json").read_text())["arch"] == arch]
            kappa_csv = results / "kappa" / f"{arch}.csv"
            ff = results / "frontier" / f"{arch}_flops.csv"
            fh = results / "frontier" / f"{arch}_hours.csv"
            kappa_config = config.get("kappa")
            _call(write_frontiers, dirs, kappa_csv, ff, fh, fit=config["fit"], arch=arch,
                  kappa_config=kappa_config)  # fmt: skip
            fj = results / "fits" / f"{arch}.json"
            _call(write_fit, dirs, kappa_csv, fj, fit=config["fit"], arch=arch,
                  kappa_config=kappa_config, frontier_csvs=(ff, fh))  # fmt: skip
            tree.frontiers += [ff, fh]
            tree.fits.append(fj)
    return tree


@pytest.fixture(scope="session")
def synthetic_tree(tmp_path_factory) -> SyntheticTree:
    """The default study's results tree (synthetic runs, real-format fits), once per session."""
    return write_synthetic_tree(tmp_path_factory.mktemp("synthetic") / "results", n_boot=8)
