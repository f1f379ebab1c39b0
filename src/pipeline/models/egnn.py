"""Multi-channel E(3)-equivariant graph network, MC-EGNN (paper appendix C.3, eq. 11-12).

Each atom carries invariant features ``h_v`` [w] and ``E`` Cartesian vector
channels ``X_v`` [3, E]. Messages depend only on invariants; vectors are updated
by mixing the channels of ``X_u - X_v`` with weights predicted from the message,
scaled by ``1/E`` (the muP-informed scaling of appendix C.3).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from pipeline.models.blocks import (
    MLP,
    GaussianBasis,
    PolynomialEnvelope,
    centred_positions,
    check_atomic_numbers,
    edge_vectors,
    scatter_sum,
    weighted_mean,
)

logger = logging.getLogger(__name__)


def default_vector_channels(width: int) -> int:
    """``E = floor(sqrt(w))``, the rule that reproduces Table 4 (e.g. w=120 -> 10)."""
    return math.isqrt(width)


class _MCEGNNLayer(nn.Module):
    """One MC-EGNN layer, ``E_in`` vector channels in, ``E`` out.

    ``phi_m``: MLP(2w + E_in + R -> w -> w) with SiLU after both linears (eq. 11;
    the R radial features of ``|r_uv|`` are an edge attribute). ``Phi_x``:
    MLP(w -> w -> E_in*E), the last linear ``W_x`` without bias and initialised
    with std ``sqrt(min(w, E_in E)) / w`` (appendix C.3). ``phi_h``: MLP(2w -> w -> w)
    on ``[h_v, mean_u m_uv]``, added to ``h_v``.
    """

    def __init__(self, width: int, vec_in: int, vec_out: int, num_radial: int):
        super().__init__()
        if vec_in not in (1, vec_out):
            raise ValueError(f"MC-EGNN layer: vec_in must be 1 or {vec_out}, got {vec_in}")
        self.vec_in = vec_in
        self.vec_out = vec_out
        self.message = nn.Sequential(
            MLP([2 * width + vec_in + num_radial, width, width]), nn.SiLU()
        )
        # W_x: R^w -> R^{E_in x E} without bias (a bias would mix channels independently
        # of the message)
        w_x = nn.Linear(width, vec_in * vec_out, bias=False)
        nn.init.normal_(w_x.weight, std=math.sqrt(min(width, vec_in * vec_out)) / width)
        self.mixer = nn.Sequential(nn.Linear(width, width), nn.SiLU(), w_x)
        self.update = MLP([2 * width, width, width])

    def forward(self, h, vec, src, dst, radial, envelope):
        """``h`` [A, w], ``vec`` [A, 3, E_in] -> ``h`` [A, w], ``vec`` [A, 3, E]."""
        n_atoms = h.shape[0]
        vec_uv = vec[src] - vec[dst]  # [E_edges, 3, E_in]
        sq_norm = vec_uv.square().sum(dim=1)  # [E_edges, E_in], channel-wise |X_uv|^2
        m = self.message(torch.cat([h[src], h[dst], sq_norm, radial], dim=-1))  # [E_edges, w]
        mix = self.mixer(m).view(-1, self.vec_in, self.vec_out)  # [E_edges, E_in, E]
        delta = torch.einsum("eci,eio->eco", vec_uv, mix) / self.vec_in  # [E_edges, 3, E]
        if self.vec_in == 1:
            vec = vec.expand(-1, -1, self.vec_out)  # replicate the single input channel
        vec = vec + weighted_mean(delta, envelope, dst, n_atoms)  # eq. (12)
        agg = weighted_mean(m, envelope, dst, n_atoms)  # eq. (8)
        h = h + self.update(torch.cat([h, agg], dim=-1))
        return h, vec


class MCEGNN(nn.Module):
    """MC-EGNN with an invariant energy head and an equivariant direct force head.

    Structure (``w`` = ``width``, ``L`` = ``num_layers``, ``E`` = ``vector_channels``)::

        h_v^0 = Embed(z_v)                          [A, w]
        X_v^0 = x_v - c_mol(v)                      [A, 3, 1]   (centred positions, one channel)
        layer t (E_in = 1 for t = 1, else E):
          m_uv    = phi_m([h_u, h_v, |X_u - X_v|^2_channels, rho(|r_uv|)])           eq. (11)
          X_v    += sum_u u_uv (1/E_in)(X_u - X_v) Phi_x(m_uv) / max(sum_u u_uv, 1)   eq. (12)
          h_v    += phi_h([h_v, sum_u u_uv m_uv / max(sum_u u_uv, 1)])                eq. (8)
        E_mol = sum_v MLP(w -> w -> 1)(h_v^L)
        F_v   = (X_v^L - X_v^0 1^T) w_F             w_F in R^E, no bias

    ``c_mol`` is the centroid of the atom's molecule: the vector channels start
    from centred coordinates, so that they stay O(molecule size) wherever the
    molecule sits. (Started from absolute coordinates, as in eq. 12 read
    literally, the same maths in float32 lost precision with the distance from the
    origin: force error 1.4e-6 at 0, 1e-4 at 100 and 7e-4 at 1000 Angstrom.)
    The model is unchanged in exact arithmetic: every X enters as a difference.

    ``u_uv`` is the polynomial cutoff envelope of ``|r_uv|`` (continuity at the
    cutoff) and ``rho`` a Gaussian radial basis. The first layer lifts the single
    position channel to ``E`` channels (its ``W_x`` maps ``R^w -> R^{1 x E}``).
    Energies are E(3)-invariant and forces E(3)-equivariant (rotations,
    reflections, translations) and both permutation equivariant, exactly: all
    geometric inputs are differences of vectors, their squared norms and
    distances, and vectors are only combined linearly with invariant weights.

    The parameter count is
    ``(7L + 1) w^2 + (L - 1) w E^2 + L w E + (Z + L R + 5L + 3) w + E + 1``
    (see :meth:`param_count_formula`); with ``L = 12``, ``E = floor(sqrt(w))``,
    ``Z = R = 136`` it reproduces Table 4 (see ``docs/ladders.yaml``).

    Parameters
    ----------
    width : int
        Invariant feature width ``w`` (Table 4 "Width").
    num_layers : int
        Message passing layers ``L`` (Table 4 "Depth d"), default 12.
    vector_channels : int or None
        Number of vector channels ``E = E'``; default ``floor(sqrt(w))``.
    cutoff : float
        Radius of the graph the model expects, in Angstrom, and the envelope's
        zero. Default 6.0.
    max_neighbors : int
        Neighbours per atom of the graph the model expects. Default 30.
    num_elements : int
        Size of the atomic-number embedding table (atomic numbers below it).
        Default 136 (see the class docstring for why).
    num_radial : int
        Gaussians ``R`` of ``|r_uv|`` on ``[radial_start, cutoff]`` Angstrom fed to
        every message function. Default 136.
    radial_start : float
        First Gaussian centre in Angstrom. Default 0.0.
    envelope_exponent : int
        Exponent p of the polynomial cutoff envelope. Default 5.
    """

    properties = dict(characteristic="equivariant", tensor_order="1", body_order=2)
    # exact invariances of the energy / equivariances of the forces (contract 5)
    symmetries: frozenset[str] = frozenset({"rotation", "reflection", "translation", "permutation"})
    forces: str = "direct"

    def __init__(
        self,
        width: int,
        num_layers: int = 12,
        vector_channels: int | None = None,
        cutoff: float = 6.0,
        max_neighbors: int = 30,
        num_elements: int = 136,
        num_radial: int = 136,
        radial_start: float = 0.0,
        envelope_exponent: int = 5,
    ):
        super().__init__()
        if width < 1:
            raise ValueError(f"MCEGNN: width must be >= 1, got {width}")
        if num_layers < 1:
            raise ValueError(f"MCEGNN: num_layers must be >= 1, got {num_layers}")
        vec = default_vector_channels(width) if vector_channels is None else vector_channels
        if vec < 1:
            raise ValueError(f"MCEGNN: vector_channels must be >= 1, got {vec}")
        self.width = width
        self.num_layers = num_layers
        self.vector_channels = vec
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.num_elements = num_elements

        self.embedding = nn.Embedding(num_elements, width)
        self.radial_basis = GaussianBasis(num_radial, radial_start, cutoff)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.layers = nn.ModuleList(
            _MCEGNNLayer(width, 1 if t == 0 else vec, vec, num_radial) for t in range(num_layers)
        )
        self.energy_head = MLP([width, width, 1])
        self.force_weights = nn.Linear(vec, 1, bias=False)

    @staticmethod
    def param_count_formula(
        width: int,
        num_layers: int = 12,
        vector_channels: int | None = None,
        num_elements: int = 136,
        num_radial: int = 136,
    ) -> int:
        """Closed-form parameter count (no model built); see the class docstring."""
        w, n = width, num_layers
        e = default_vector_channels(w) if vector_channels is None else vector_channels
        return (
            (7 * n + 1) * w**2
            + (n - 1) * w * e**2
            + n * w * e
            + (num_elements + n * num_radial + 5 * n + 3) * w
            + e
            + 1
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
        check_atomic_numbers(atomic_numbers, 0, self.num_elements - 1, "MCEGNN", "num_elements")
        src, dst = edge_index[0], edge_index[1]
        dist = torch.linalg.vector_norm(edge_vectors(positions, edge_index), dim=-1)  # [E]
        radial = self.radial_basis(dist)  # [E, R]
        envelope = self.envelope(dist)  # [E]

        h = self.embedding(atomic_numbers)  # [A, w]
        start = centred_positions(positions, batch, num_molecules).unsqueeze(-1)  # [A, 3, 1]
        vec = start
        for layer in self.layers:
            h, vec = layer(h, vec, src, dst, radial, envelope)  # [A, w], [A, 3, E]

        energy = scatter_sum(self.energy_head(h).squeeze(-1), batch, num_molecules)  # [M]
        rel = vec - start  # [A, 3, E], translation invariant
        forces = self.force_weights(rel).squeeze(-1)  # [A, 3]
        return energy, forces
