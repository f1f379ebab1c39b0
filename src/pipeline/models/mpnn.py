"""Unconstrained message passing network (paper appendix C.1, eq. 8-9).

Geometry enters as the raw relative vector ``r_uv = x_u - x_v`` and its length,
without symmetry constraints (Duval et al., 2023), inside every layer's message
function. The model is therefore translation invariant and permutation
equivariant, but neither rotation invariant nor equivariant.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn

from pipeline.models.blocks import (
    MLP,
    GaussianBasis,
    PolynomialEnvelope,
    check_atomic_numbers,
    edge_vectors,
    scatter_sum,
    weighted_mean,
)

logger = logging.getLogger(__name__)

MESSAGE_INPUTS = ("paper", "radial_basis")


class MPNN(nn.Module):
    """Unconstrained MPNN with mean aggregation and a direct force head.

    Structure (``w`` = ``width``, ``L`` = ``num_layers``)::

        h_v^0   = Embed(z_v)                                                 [A, w]
        g_uv    = [r_uv | rho(|r_uv|)]                                       [E, 3 + R]
        m_uv^t  = phi_m^t(h_u^t, h_v^t, r_uv, |r_uv|)
                = SiLU(W_t [h_u^t | h_v^t | g_uv] + b_t),  W_t: R^{2w+3+R} -> R^w  (eq. 9)
        h_v^t+1 = h_v^t + sum_u u(|r_uv|) m_uv^t / max(sum_u u(|r_uv|), 1)   (eq. 8)
        E_mol   = sum_v MLP(w -> w -> 1)(h_v^L)
        F_v     = MLP(w -> w -> 3)(h_v^L)

    With ``message_input="paper"`` (the paper's form) ``rho(d) = d`` (R = 1), so
    every layer's ``phi_m`` maps the concatenation ``[h_u, h_v, r_uv, |r_uv|]`` of
    2w + 4 numbers (Angstrom for the geometry) to w, as appendix C.1 writes it:
    direction and distance enter each message together with both atom states.
    ``message_input="radial_basis"`` replaces ``|r_uv|`` by R Gaussians of it
    (a richer radial input for small CPU-scale models; not the paper's form).
    ``u`` is the polynomial cutoff envelope. Measured on the demo data (width 32,
    depth 4, batch 16, benchmarks/bench_mpnn_message.py): the paper's form stays
    near the zero predictor's validation loss of 2.10 for about a thousand steps
    (2.01 after 600, 1.73 after 1800) where ``radial_basis`` reaches 1.07 and
    0.74, so the demo study (config.yaml) uses ``radial_basis`` and
    config/paper.yaml the paper's form.

    ``phi_m`` is one linear layer and a SiLU (the smallest MLP): Table 3's counts,
    ``12 w^2 + ...`` for L = 5, leave room for exactly ``2 w^2`` per layer next to
    the two ``w -> w`` heads, which excludes a hidden layer of width w
    (``3 w^2`` per layer, ``17 w^2`` in all).

    Differences from eq. (8), stated: a residual connection ``h + mean(m)`` (a
    plain replacement loses the atom's own state, and an atom without neighbours
    would be zeroed) and an envelope-weighted mean whose weights vanish at the
    cutoff, so that energies and forces are continuous when an atom crosses it (a
    hard neighbour count would jump). No normalisation layers.

    Parameter count (:meth:`param_count_formula`), ``Z = num_elements``::

        N = (2L + 2) w^2 + (Z + L (4 + R) + 6) w + 4

    For the paper's form (R = 1), L = 5, Z = 120: ``12 w^2 + 151 w + 4``. Table 3
    prints ``12 w^2 + 201.5 w + 4`` (+66.5 for odd w): the quadratic and constant
    terms agree, and we count ``50.5 w`` (+66.5 for odd w) fewer parameters,
    2.9 % at w = 128 falling to 0.16 % at w = 2557 (docs/ladders.yaml, per rung).
    The half-integer terms show that the paper's code split some width-w layer
    into halves, which eq. (9) does not describe; we do not pad the model with
    unused parameters to match (N counts what is trained).

    Symmetry: translation invariant (only ``r_uv`` is used), permutation
    equivariant, not rotation invariant (raw ``r_uv`` components are inputs).

    Parameters
    ----------
    width : int
        Node embedding width ``w`` (Table 3 "Width").
    num_layers : int
        Message passing layers (Table 3 "Depth"), default 5.
    cutoff : float
        Radius of the graph the model expects, in Angstrom; also the envelope's
        zero and the last Gaussian centre. Default 6.0.
    max_neighbors : int
        Neighbours per atom of the graph the model expects. Default 30.
    num_elements : int
        Size of the atomic-number embedding table; atomic numbers must be below it.
        Default 120 (every element, Z < 120).
    message_input : {"paper", "radial_basis"}
        Geometry fed to every message: ``[r_uv, |r_uv|]`` (eq. 9, 4 numbers with
        the atom states' 2w) or ``[r_uv, rho(|r_uv|)]`` with ``num_radial``
        Gaussians ``rho``. Default "paper".
    num_radial : int, optional
        Number of Gaussians R for ``message_input="radial_basis"``, default 48;
        an error with "paper" (which has no basis).
    radial_start : float, optional
        First Gaussian centre in Angstrom for ``radial_basis``, default 0.0; an
        error with "paper".
    envelope_exponent : int
        Exponent p of the polynomial cutoff envelope. Default 5.
    translation_invariant : bool
        True (the paper's MPNN): the direction features are ``r_uv``. False: the
        translation-invariance ablation of appendix J (figure 15), which feeds the
        neighbour's absolute position ``x_u`` instead; same parameter count.
    """

    properties = dict(characteristic="unconstrained", tensor_order="-", body_order=2)
    # exact invariances of the energy / equivariances of the forces (contract 5);
    # the absolute-position ablation drops "translation" on its instances
    symmetries: frozenset[str] = frozenset({"translation", "permutation"})
    forces: str = "direct"

    def __init__(
        self,
        width: int,
        num_layers: int = 5,
        cutoff: float = 6.0,
        max_neighbors: int = 30,
        num_elements: int = 120,
        message_input: Literal["paper", "radial_basis"] = "paper",
        num_radial: int | None = None,
        radial_start: float | None = None,
        envelope_exponent: int = 5,
        translation_invariant: bool = True,
    ):
        super().__init__()
        if width < 1:
            raise ValueError(f"MPNN: width must be >= 1, got {width}")
        if num_layers < 1:
            raise ValueError(f"MPNN: num_layers must be >= 1, got {num_layers}")
        if message_input not in MESSAGE_INPUTS:
            raise ValueError(
                f"MPNN: message_input must be one of {MESSAGE_INPUTS}, got {message_input!r}"
            )
        if message_input == "paper" and (num_radial is not None or radial_start is not None):
            raise ValueError(
                "MPNN: num_radial and radial_start set the Gaussians of "
                "message_input='radial_basis'; the paper's message has none "
                f"(got num_radial={num_radial}, radial_start={radial_start})"
            )
        self.width = width
        self.num_layers = num_layers
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.num_elements = num_elements
        self.message_input = message_input
        self.translation_invariant = bool(translation_invariant)
        if not self.translation_invariant:
            self.symmetries = frozenset({"permutation"})

        self.embedding = nn.Embedding(num_elements, width)
        if message_input == "radial_basis":
            n_rad = 48 if num_radial is None else num_radial
            start = 0.0 if radial_start is None else radial_start
            self.radial_basis: nn.Module | None = GaussianBasis(n_rad, start, cutoff)
        else:
            self.radial_basis = None
            n_rad = 1
        self.geometry_dim = 3 + n_rad
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.message_lins = nn.ModuleList(
            nn.Linear(2 * width + self.geometry_dim, width) for _ in range(num_layers)
        )
        self.energy_head = MLP([width, width, 1])
        self.force_head = MLP([width, width, 3])
        self.act = nn.SiLU()

    @staticmethod
    def param_count_formula(
        width: int,
        num_layers: int = 5,
        num_elements: int = 120,
        message_input: str = "paper",
        num_radial: int | None = None,
    ) -> int:
        """Closed form of the parameter count (no model built).

        ``(2L + 2) w^2 + (Z + L (4 + R) + 6) w + 4`` with ``Z = num_elements`` and
        ``R`` radial features (1 for "paper"). For ``L = 5``, ``Z = 120``, "paper":
        ``12 w^2 + 151 w + 4``; Table 3 prints ``50.5 w`` (+66.5 for odd w) more.
        """
        r = (48 if num_radial is None else num_radial) if message_input == "radial_basis" else 1
        return (
            (2 * num_layers + 2) * width**2 + (num_elements + num_layers * (4 + r) + 6) * width + 4
        )

    def forward(
        self,
        atomic_numbers: torch.Tensor,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        num_molecules: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies [M] and direct forces [A, 3] (normalised units).

        Parameters
        ----------
        atomic_numbers : long [A]
        positions : float [A, 3]
            Angstrom.
        edge_index : long [2, E]
            Row 0 neighbour u, row 1 centre v.
        batch : long [A]
            Molecule of each atom.
        num_molecules : int
            M.
        """
        n_atoms = atomic_numbers.shape[0]
        check_atomic_numbers(atomic_numbers, 0, self.num_elements - 1, "MPNN", "num_elements")
        src, dst = edge_index[0], edge_index[1]
        r_uv = edge_vectors(positions, edge_index)  # [E, 3]
        dist = torch.linalg.vector_norm(r_uv, dim=-1)  # [E]
        envelope = self.envelope(dist)  # [E]
        radial = dist.unsqueeze(-1) if self.radial_basis is None else self.radial_basis(dist)
        direction = r_uv if self.translation_invariant else positions[src]  # [E, 3]
        geometry = torch.cat([direction, radial], dim=-1)  # [E, 3 + R]

        h = self.embedding(atomic_numbers)  # [A, w]
        w = self.width
        for lin in self.message_lins:
            # W [h_u | h_v | g_uv] + b = W_u h_u + W_v h_v + W_g g_uv + b: project atoms,
            # then gather to edges, the same map with E/A (about 17 at 30 neighbours)
            # times fewer multiply-adds for the atom parts
            from_u = nn.functional.linear(h, lin.weight[:, :w])  # [A, w]
            to_v = nn.functional.linear(h, lin.weight[:, w : 2 * w], lin.bias)  # [A, w]
            geo = nn.functional.linear(geometry, lin.weight[:, 2 * w :])  # [E, w]
            message = self.act(from_u[src] + to_v[dst] + geo)  # [E, w], eq. (9)
            h = h + weighted_mean(message, envelope, dst, n_atoms)  # [A, w], eq. (8)

        atom_energy = self.energy_head(h).squeeze(-1)  # [A]
        energy = scatter_sum(atom_energy, batch, num_molecules)  # [M]
        forces = self.force_head(h)  # [A, 3]
        return energy, forces
