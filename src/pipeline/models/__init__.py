"""Model registry: ``build(name, **hparams)`` returns an ``nn.Module``.

Every model has the same call signature::

    energy, forces = model(atomic_numbers, positions, edge_index, batch, num_molecules)

with ``atomic_numbers`` long [A], ``positions`` float [A, 3] (Angstrom),
``edge_index`` long [2, E] (row 0 the neighbour u, row 1 the centre v, so that
``r_uv = positions[u] - positions[v]``), ``batch`` long [A] (molecule of each
atom) and ``num_molecules`` an int M. It returns ``energy`` [M] (referenced,
normalised units) and direct ``forces`` [A, 3] (eV/Angstrom divided by the
energy std). Each model exposes ``cutoff`` (Angstrom) and ``max_neighbors``, the
graph it expects, and the class attributes ``properties`` (table 2),
``symmetries`` (a frozenset of "rotation", "reflection", "translation",
"permutation": the exact invariances of the energy and equivariances of the
forces it claims; ``python -m pipeline.models.check`` verifies them) and
``forces``: "direct" (default) or "conservative".

Your own architecture
---------------------
A class outside this package trains with no edit here: name it as
``"package.module:Class"``, in the config as ``archs.<name>.model`` (or
``archs.<name>.hparams.model``), or directly as ``build("package.module:Class")``.
The module is imported with :mod:`importlib`; when it is not importable from the
installed packages, the working directory is searched too (Snakemake's working
directory is the checkout, so ``examples.schnet:SchNet`` resolves there).

A class with ``forces = "conservative"`` may return the energy alone, or
``(energy, None)``: :func:`build` wraps it in :class:`ConservativeForces`, which
returns ``forces = -dE/dx`` by autograd, so the trainer, the evaluation and the FLOP
counter need no change (the counted FLOPs then include the backward pass).
"""

from __future__ import annotations

import importlib
import os
import sys

import torch
from torch import nn

# name -> "module:Class"; modules are imported on first use so that building
# one family never pays for importing another (e3nn is slow to import).
REGISTRY: dict[str, str] = {
    "mpnn": "pipeline.models.mpnn:MPNN",
    "egnn": "pipeline.models.egnn:MCEGNN",
    "esen": "pipeline.models.esen:ESEN",
    "gemnet_oc": "pipeline.models.gemnet_oc:GemNetOC",
    "transformer": "pipeline.models.transformer:Transformer",
}

SYMMETRIES = frozenset({"rotation", "reflection", "translation", "permutation"})
FORCE_MODES = ("direct", "conservative")


def _import_class(path: str) -> type[nn.Module]:
    """The class named by ``"package.module:Class"``; ValueError naming what failed."""
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"model {path!r}: expected a registry name or 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        cwd = os.getcwd()
        if err.name is None or not module_name.startswith(err.name) or cwd in sys.path:
            raise
        # A package folder in the working directory (a checkout's examples/): a Snakemake
        # script runs with its own folder, not the working directory, on sys.path.
        sys.path.append(cwd)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise ValueError(
                f"model {path!r}: cannot import {module_name!r} ({err}); install the "
                f"package or add its folder to PYTHONPATH"
            ) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"model {path!r}: {module_name} has no nn.Module class {class_name!r}")
    return cls


def model_class(name: str) -> type[nn.Module]:
    """The class registered under ``name``, or named by ``"package.module:Class"``."""
    if name in REGISTRY:
        return _import_class(REGISTRY[name])
    if ":" in name:
        return _import_class(name)
    raise ValueError(
        f"unknown model {name!r}; expected one of {sorted(REGISTRY)} or 'package.module:Class' "
        f"(config archs.<name>.model)"
    )


# The ladder coordinate that configs call ``width`` is the embedding width for most
# families; eSEN's ladder (Table 5) is in channels C, its width being (lmax + 1)^2 C.
WIDTH_KEYWORD: dict[str, str] = {"esen": "channels"}


def arch_hparams(section: dict) -> dict:
    """Builder keywords of one ``archs.<name>`` config section: ``hparams`` plus ``model``.

    ``archs.<name>.model: "package.module:Class"`` travels as the keyword ``model`` of
    :func:`build`, so every caller that builds from ``(name, width, **hparams)``
    (training, kappa, ladders, checkpoints) builds the user's class.
    """
    hparams = dict(section.get("hparams") or {})
    model = section.get("model")
    if model is not None:
        if hparams.get("model", model) != model:
            raise ValueError(
                f"archs: model {model!r} and hparams.model {hparams['model']!r} disagree"
            )
        hparams["model"] = model
    return hparams


def build(name: str, **hparams) -> nn.Module:
    """Instantiate the model ``name`` with keyword hyperparameters.

    Parameters
    ----------
    name : str
        A registry name (``REGISTRY``), or ``"package.module:Class"``.
    **hparams
        The class's keywords. ``width`` is the family's ladder coordinate (Tables 3-6):
        it is passed on as ``channels`` for eSEN (``WIDTH_KEYWORD``) and as ``width``
        otherwise. ``model="package.module:Class"`` (the config's ``archs.<name>.model``)
        names the class instead of ``name``, which is then only the arch's label.

    Returns
    -------
    nn.Module
        The model; a :class:`ConservativeForces` wrapper around it when its class
        declares ``forces = "conservative"``.
    """
    path = hparams.pop("model", None)
    cls = model_class(path if path is not None else name)
    keyword = WIDTH_KEYWORD.get(name) if path is None else None
    if keyword is not None and "width" in hparams:
        if keyword in hparams:
            raise ValueError(f"{name}: give either width or {keyword}, not both")
        hparams[keyword] = hparams.pop("width")
    mode = getattr(cls, "forces", "direct")
    if mode not in FORCE_MODES:
        raise ValueError(f"{cls.__name__}.forces is {mode!r}; expected one of {FORCE_MODES}")
    model = cls(**hparams)
    return ConservativeForces(model) if mode == "conservative" else model


class ConservativeForces(nn.Module):
    """Forces ``-dE/dx`` (autograd) of a model that predicts the energy only.

    The wrapped model returns ``energy`` [M] or ``(energy, None)``; this module
    returns ``(energy [M], forces [A, 3])`` as every model does. While gradients are
    enabled (training) the force graph is kept (``create_graph``), so a loss on the
    forces trains the parameters; under ``torch.no_grad`` (evaluation, FLOP counting)
    gradients are enabled inside for the positions only and the outputs come back
    detached. FLOPs counted on this module therefore include the backward pass.

    Attributes that the module does not define itself (``cutoff``, ``max_neighbors``,
    ``symmetries``, ``properties``, ``prepare`` ...) are the wrapped model's. Its
    state_dict keys carry the prefix ``model.``.
    """

    forces = "conservative"

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(
        self,
        atomic_numbers: torch.Tensor,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        num_molecules: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        training_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            if not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            # A view, not the leaf itself, enters the model: FlopCounterMode's module
            # hooks reject leaf inputs inside autograd.grad.
            inputs = positions.view_as(positions)
            out = self.model(atomic_numbers, inputs, edge_index, batch, num_molecules)
            if isinstance(out, tuple | list):
                if len(out) != 2 or out[1] is not None:
                    raise ValueError(
                        f"{type(self.model).__name__} declares forces = 'conservative' but "
                        f"returned {len(out)} outputs; return the energy [M] or (energy, None)"
                    )
                out = out[0]
            energy = out  # [M]
            (grad,) = torch.autograd.grad(
                energy.sum(), positions, create_graph=training_graph, allow_unused=True
            )
        if grad is None:  # the energy does not depend on the positions
            grad = torch.zeros_like(positions)
        if not training_graph:
            return energy.detach(), -grad.detach()
        return energy, -grad  # [M], [A, 3]


def num_params(model: nn.Module) -> int:
    """Number of trainable parameters N."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "REGISTRY",
    "SYMMETRIES",
    "ConservativeForces",
    "arch_hparams",
    "build",
    "model_class",
    "num_params",
]
