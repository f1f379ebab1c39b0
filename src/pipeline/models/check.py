"""Check a model class against the pipeline's contract before a cluster hour is spent.

::

    python -m pipeline.models.check package.module:Class --width 16
    python -m pipeline.models.check mpnn --width 16 --hparam num_layers=2
    python -m pipeline.models.check --all --width 8      # every registered family

On a demo batch of small bonded molecules (H, C, N, O) it checks, in order:

1. the class builds with ``width`` and the given keywords (``pipeline.models.build``);
2. attributes: ``cutoff`` > 0 (Angstrom), ``max_neighbors`` >= 1 (unless the model
   declares ``uses_edges = False``), ``symmetries`` a subset of
   ``pipeline.models.SYMMETRIES``, ``forces`` "direct" or "conservative";
3. the call signature ``model(atomic_numbers, positions, edge_index, batch,
   num_molecules)`` and the output shapes: energy [M], forces [A, 3], finite, the
   positions' dtype;
4. forward and backward: a loss on energy and forces gives every trainable
   parameter a finite gradient (parameters that get none are reported);
5. ``prepare`` (if defined) runs on the batch and what it sets survives a
   state_dict round trip into a fresh instance (checkpoints carry it);
6. every declared symmetry, numerically in float64: energies invariant and forces
   equivariant under a random rotation, a mirror reflection, a translation, a
   permutation of each molecule's atoms (relative error <= ``rtol``);
7. the parameter count N and the FLOPs of one forward pass per atom
   (``pipeline.train.flops``; for conservative models the backward pass that
   computes the forces is included); zero counted FLOPs is an error, since kappa
   and compute would be zero.

A failed check raises :class:`ContractError` with one line naming the problem; the
command prints it and exits with status 1.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from dataclasses import dataclass, field

import torch
import yaml
from torch import nn

from pipeline import models
from pipeline.data.graphs import radius_graph

logger = logging.getLogger(__name__)

DEFAULT_RTOL = 1e-6  # float64: the built-in families are exact to ~1e-12


class ContractError(ValueError):
    """A model breaks the contract of ``pipeline.models``; the message names how."""


@dataclass
class DemoBatch:
    """Molecules in the models' calling convention."""

    atomic_numbers: torch.Tensor  # long [A]
    positions: torch.Tensor  # float [A, 3], Angstrom
    batch: torch.Tensor  # long [A], sorted
    num_molecules: int

    def edges(self, model: nn.Module, positions: torch.Tensor | None = None) -> torch.Tensor:
        """The radius graph the model asks for (none when it declares uses_edges False)."""
        positions = self.positions if positions is None else positions
        neighbors = model.max_neighbors if getattr(model, "uses_edges", True) else 0
        return radius_graph(positions, self.batch, model.cutoff, neighbors)


def demo_batch(
    sizes: tuple[int, ...] = (7, 5, 9, 3),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    spacing: float = 20.0,
) -> DemoBatch:
    """Bonded random clusters of H, C, N, O (bonds 1.3 Angstrom, no contact < 0.9 A),
    one molecule per size, ``spacing`` Angstrom apart."""
    gen = torch.Generator().manual_seed(seed)
    positions, numbers, batch = [], [], []
    for index, size in enumerate(sizes):
        atoms = [torch.zeros(3, dtype=torch.float64)]
        while len(atoms) < size:
            step = torch.randn(3, generator=gen, dtype=torch.float64)
            anchor = atoms[int(torch.randint(len(atoms), (1,), generator=gen))]
            candidate = anchor + step / step.norm() * 1.3
            if min(float((candidate - a).norm()) for a in atoms) > 0.9:
                atoms.append(candidate)
        positions.append(torch.stack(atoms) + spacing * index)
        numbers.append(torch.tensor([1, 6, 7, 8])[torch.randint(4, (size,), generator=gen)])
        batch.append(torch.full((size,), index))
    return DemoBatch(
        torch.cat(numbers), torch.cat(positions).to(dtype), torch.cat(batch), len(sizes)
    )


@dataclass
class CheckReport:
    """What :func:`check_model` measured."""

    model: str
    width: int
    n_params: int = 0
    forces: str = "direct"
    cutoff: float = 0.0
    max_neighbors: int = 0
    symmetries: list[str] = field(default_factory=list)
    symmetry_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    params_without_grad: list[str] = field(default_factory=list)
    forward_flops_per_atom: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary, one finding per line."""
        flops = self.forward_flops_per_atom
        out = [
            f"model {self.model} at width {self.width}: contract OK",
            f"  N = {self.n_params:,} trainable parameters; forces {self.forces}",
            f"  graph: cutoff {self.cutoff} Angstrom, max_neighbors {self.max_neighbors}",
            f"  FLOPs per atom of one forward pass: counted {flops.get('counted', 0):,.0f}, "
            f"total {flops.get('total', 0):,.0f}"
            + (" (backward pass for the forces included)" if self.forces == "conservative" else ""),
        ]
        for name, errs in self.symmetry_errors.items():
            claimed = "declared, verified" if name in self.symmetries else "not declared"
            out.append(
                f"  {name}: {claimed}; rel. error energy {errs['energy']:.1e}, "
                f"forces {errs['forces']:.1e}"
            )
        out += [f"  note: {note}" for note in self.notes]
        return out


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (absolute when b is ~0)."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    return diff / scale if scale > 1e-12 else diff


def _random_rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q  # [3, 3], det +1


def _call(model: nn.Module, demo: DemoBatch, positions: torch.Tensor, edge_index: torch.Tensor):
    """One forward pass, validated: (energy [M], forces [A, 3])."""
    name = type(getattr(model, "model", model)).__name__
    try:
        out = model(demo.atomic_numbers, positions, edge_index, demo.batch, demo.num_molecules)
    except TypeError as err:
        raise ContractError(
            f"{name}: forward(atomic_numbers, positions, edge_index, batch, num_molecules) "
            f"failed: {err}"
        ) from err
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise ContractError(
            f"{name}: forward must return (energy [M], forces [A, 3]) (or, with forces = "
            f"'conservative', the energy alone); got {type(out).__name__}"
        )
    energy, forces = out
    atoms, molecules = demo.atomic_numbers.shape[0], demo.num_molecules
    for what, value, shape in (
        ("energy", energy, (molecules,)),
        ("forces", forces, (atoms, 3)),
    ):
        if not isinstance(value, torch.Tensor):
            hint = " (energy-only models declare forces = 'conservative')" if value is None else ""
            raise ContractError(f"{name}: {what} is {type(value).__name__}, not a tensor{hint}")
        if tuple(value.shape) != shape:
            raise ContractError(
                f"{name}: {what} has shape {list(value.shape)}, expected {list(shape)} "
                f"for {molecules} molecules of {atoms} atoms"
            )
        if value.dtype != positions.dtype:
            raise ContractError(
                f"{name}: {what} is {value.dtype}, expected the positions' {positions.dtype}"
            )
        if not bool(torch.isfinite(value).all()):
            raise ContractError(f"{name}: {what} has non-finite values on the demo batch")
    return energy, forces


def _transformed(
    demo: DemoBatch, symmetry: str, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(positions', matrix applied to forces or None, atom permutation or None) for
    one symmetry operation."""
    pos = demo.positions
    if symmetry == "rotation":
        rot = _random_rotation(gen).to(pos.dtype)
        return pos @ rot.T, rot, None
    if symmetry == "reflection":
        mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=pos.dtype))
        rot = _random_rotation(gen).to(pos.dtype)
        plane = rot @ mirror @ rot.T  # a mirror plane in a random orientation
        return pos @ plane.T, plane, None
    if symmetry == "translation":
        shift = torch.tensor([7.3, -4.1, 11.9], dtype=pos.dtype)
        return pos + shift, None, None
    if symmetry == "permutation":
        perm = torch.cat(
            [
                torch.nonzero(demo.batch == m).squeeze(1)[
                    torch.randperm(int((demo.batch == m).sum()), generator=gen)
                ]
                for m in range(demo.num_molecules)
            ]
        )
        return pos[perm], None, perm
    raise ValueError(f"unknown symmetry {symmetry!r}; expected one of {sorted(models.SYMMETRIES)}")


def symmetry_errors(
    model: nn.Module, demo: DemoBatch, symmetry: str, seed: int = 0
) -> dict[str, float]:
    """Relative errors of energy invariance and force equivariance under one operation.

    The graph is the same set of pairs before and after (a rigid motion keeps
    distances; a permutation relabels atoms), so only the model is tested.
    """
    gen = torch.Generator().manual_seed(seed)
    edge_index = demo.edges(model)
    energy, forces = _call(model, demo, demo.positions, edge_index)
    positions, matrix, perm = _transformed(demo, symmetry, gen)
    moved = demo
    new_edges = edge_index
    if perm is not None:
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        moved = DemoBatch(
            demo.atomic_numbers[perm], positions, demo.batch[perm], demo.num_molecules
        )
        new_edges = inverse[edge_index]
    energy2, forces2 = _call(model, moved, positions, new_edges)
    expected = forces
    if matrix is not None:
        expected = forces @ matrix.T
    if perm is not None:
        expected = forces[perm]
    return {
        "energy": _rel_err(energy2.detach(), energy.detach()),
        "forces": _rel_err(forces2.detach(), expected.detach()),
    }


def check_model(
    model: str,
    *,
    width: int,
    hparams: dict | None = None,
    rtol: float = DEFAULT_RTOL,
    seed: int = 0,
) -> CheckReport:
    """Check the class ``model`` (registry name or ``"package.module:Class"``).

    Parameters
    ----------
    model : str
        What ``archs.<name>.model`` (or a registry name) would say.
    width : int
        The ladder coordinate passed to the builder.
    hparams : dict, optional
        Other keywords of the builder.
    rtol : float
        Largest relative error (float64) of a declared symmetry.
    seed : int
        Seeds the initialisation and the random operations.

    Returns
    -------
    CheckReport

    Raises
    ------
    ContractError
        One line naming the first broken part of the contract.
    """
    hparams = dict(hparams or {})
    report = CheckReport(model=model, width=width)
    torch.manual_seed(seed)
    try:
        built = models.build(model, width=width, **hparams)
    except ContractError:
        raise
    except Exception as err:  # any failure to build is the finding
        raise ContractError(f"{model}: cannot build with width={width} {hparams}: {err}") from err
    inner = (
        getattr(built, "model", built) if isinstance(built, models.ConservativeForces) else built
    )
    name = type(inner).__name__

    # 2. attributes
    cutoff = getattr(built, "cutoff", None)
    if not isinstance(cutoff, int | float) or not cutoff > 0:
        raise ContractError(f"{name}: attribute cutoff (Angstrom, > 0) missing or {cutoff!r}")
    max_neighbors = getattr(built, "max_neighbors", None)
    uses_edges = getattr(built, "uses_edges", True)
    if not isinstance(max_neighbors, int) or (uses_edges and max_neighbors < 1):
        raise ContractError(
            f"{name}: attribute max_neighbors (int >= 1) missing or {max_neighbors!r}"
        )
    symmetries = getattr(type(inner), "symmetries", None)
    if symmetries is None:
        report.notes.append(
            "declares no 'symmetries' class attribute: none is claimed, all are measured"
        )
        symmetries = frozenset()
    if isinstance(symmetries, str) or not set(symmetries) <= models.SYMMETRIES:
        raise ContractError(
            f"{name}: symmetries {symmetries!r} must be a set drawn from "
            f"{sorted(models.SYMMETRIES)}"
        )
    report.cutoff, report.max_neighbors = float(cutoff), max_neighbors
    report.symmetries = sorted(symmetries)
    report.forces = getattr(built, "forces", "direct")
    report.n_params = models.num_params(built)
    if report.n_params == 0:
        raise ContractError(f"{name}: no trainable parameters")

    # 3-4. signature, shapes, forward and backward (float32, as trained)
    demo = demo_batch(seed=seed)
    prepare = getattr(built, "prepare", None)
    if callable(prepare):
        edges = demo.edges(built)
        prepare(demo.atomic_numbers, demo.positions, edges, demo.batch, demo.num_molecules)
    built.train()
    positions = demo.positions.clone().requires_grad_(True)
    energy, forces = _call(built, demo, positions, demo.edges(built))
    (energy.square().sum() + forces.square().sum()).backward()
    for pname, param in built.named_parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            report.params_without_grad.append(pname)
        elif not bool(torch.isfinite(param.grad).all()):
            raise ContractError(f"{name}: non-finite gradient of parameter {pname}")
    if report.params_without_grad:
        report.notes.append(
            f"{len(report.params_without_grad)} parameter tensors get no gradient: "
            + ", ".join(report.params_without_grad[:5])
        )
    built.zero_grad(set_to_none=True)

    # 5. state_dict round trip (prepare's state included)
    built.eval()
    torch.manual_seed(seed + 1)
    fresh = models.build(model, width=width, **hparams)
    try:
        fresh.load_state_dict(built.state_dict())
    except RuntimeError as err:
        raise ContractError(
            f"{name}: state_dict does not load into a fresh instance: {err}"
        ) from err
    fresh.eval()
    edges = demo.edges(built)
    e1, f1 = _call(built, demo, demo.positions, edges)
    e2, f2 = _call(fresh, demo, demo.positions, edges)
    if _rel_err(e2.detach(), e1.detach()) > 1e-5 or _rel_err(f2.detach(), f1.detach()) > 1e-5:
        raise ContractError(
            f"{name}: a fresh instance loaded with the state_dict gives other outputs "
            f"(state set outside parameters/buffers, e.g. by prepare, is lost in checkpoints)"
        )

    # 7. FLOPs of one forward pass (counted on the float32 model)
    from pipeline.train.flops import count_forward_flops

    inputs = (demo.atomic_numbers, demo.positions, edges, demo.batch, demo.num_molecules)
    flops = count_forward_flops(built, inputs)
    atoms = int(demo.atomic_numbers.shape[0])
    report.forward_flops_per_atom = {k: v / atoms for k, v in flops.items()}
    if flops["counted"] == 0:
        raise ContractError(
            f"{name}: FlopCounterMode counted 0 FLOPs in a forward pass (no matmul it sees); "
            f"kappa and compute would be 0"
        )

    # 6. symmetries in float64
    double = copy.deepcopy(built).double().eval()
    demo64 = demo_batch(seed=seed, dtype=torch.float64)
    for symmetry in sorted(models.SYMMETRIES):
        errors = symmetry_errors(double, demo64, symmetry, seed=seed)
        report.symmetry_errors[symmetry] = errors
        worst = max(errors.values())
        if symmetry in symmetries and worst > rtol:
            which = "energy" if errors["energy"] >= errors["forces"] else "forces"
            raise ContractError(
                f"{name}: declares {symmetry!r} but its {which} change by a relative "
                f"{worst:.1e} under a {symmetry} (float64, tolerance {rtol:g})"
            )
    return report


def _parse_hparam(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--hparam {text!r}: expected key=value")
    return key, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.models.check",
        description="Check a model class against the contract of pipeline.models.",
    )
    parser.add_argument("model", nargs="?", help="registry name or package.module:Class")
    parser.add_argument("--width", type=int, required=True, help="ladder coordinate")
    parser.add_argument(
        "--hparam",
        type=_parse_hparam,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder keyword (value parsed as YAML); repeatable",
    )
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help="symmetry tolerance")
    parser.add_argument("--all", action="store_true", help="check every registered family")
    args = parser.parse_args(argv)
    if args.all == (args.model is not None):
        parser.error("give a model or --all")
    torch.set_num_threads(1)
    targets = sorted(models.REGISTRY) if args.all else [args.model]
    status = 0
    for target in targets:
        try:
            report = check_model(
                target, width=args.width, hparams=dict(args.hparam), rtol=args.rtol
            )
        except ContractError as err:
            print(f"check failed: {err}", file=sys.stderr)
            status = 1
            continue
        print("\n".join(report.lines()))
    return status


if __name__ == "__main__":
    sys.exit(main())
