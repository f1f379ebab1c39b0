"""Model registry: ``build(name, **hparams)`` returns an ``nn.Module``.

Every model has the same call signature::

    energy, forces = model(atomic_numbers, positions, edge_index, batch, num_molecules)

with ``atomic_numbers`` long [A], ``positions`` float [A, 3] (Angstrom),
``edge_index`` long [2, E] (row 0 the neighbour u, row 1 the centre v, so that
``r_uv = positions[u] - positions[v]``), ``batch`` long [A] (molecule of each
atom) and ``num_molecules`` an int M. It returns ``energy`` [M] (referenced,
normalised units) and direct ``forces`` [A, 3] (eV/Angstrom divided by the
energy std). Each model exposes ``cutoff`` (Angstrom) and ``max_neighbors``, the
graph it expects, and the class attribute ``properties`` (table 2).
"""

from __future__ import annotations

import importlib

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


def model_class(name: str) -> type[nn.Module]:
    """The class registered under ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(REGISTRY)}")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


# The ladder coordinate that configs call ``width`` is the embedding width for most
# families; eSEN's ladder (Table 5) is in channels C, its width being (lmax + 1)^2 C.
WIDTH_KEYWORD: dict[str, str] = {"esen": "channels"}


def build(name: str, **hparams) -> nn.Module:
    """Instantiate the model ``name`` with keyword hyperparameters.

    ``width`` is the family's ladder coordinate (Tables 3-6): it is passed on as
    ``channels`` for eSEN (``WIDTH_KEYWORD``) and as ``width`` otherwise.
    """
    keyword = WIDTH_KEYWORD.get(name)
    if keyword is not None and "width" in hparams:
        if keyword in hparams:
            raise ValueError(f"{name}: give either width or {keyword}, not both")
        hparams[keyword] = hparams.pop("width")
    return model_class(name)(**hparams)


def num_params(model: nn.Module) -> int:
    """Number of trainable parameters N."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["REGISTRY", "build", "model_class", "num_params"]
