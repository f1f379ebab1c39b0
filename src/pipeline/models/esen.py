"""eSEN: equivariant Smooth Energy Network with SO(2) convolutions (paper appendix C.4).

Node features are real spherical-harmonic irreps ``h_u = (+)_{l<=lmax} h_{u,l}``
with ``C`` channels per degree (eq. 13), stored as ``[A, (lmax+1)**2, C]``, so the
embedding width is ``w = C (lmax+1)**2``. A message ``u -> v`` rotates the
features of both ends into the frame where ``r_uv`` points along +y (Wigner-D of
``R_uv``), applies the SO(2) convolution of eq. (20)-(22) for ``|m| <= mmax``
with inputs modulated by a radial function of ``|r_uv|`` and the two atoms'
species, a gated nonlinearity and a second SO(2) linear map, and rotates back
with ``D^T`` (eq. 15). Messages are smoothly enveloped at the cutoff and averaged
over the neighbours of ``v`` (eq. 8). Each of the ``num_layers`` blocks is
``x + edgewise(norm(x))`` then ``x + atomwise(norm(x))``; energy is a linear
read-out of the ``l = 0`` features summed over atoms and the direct forces a
linear read-out of the ``l = 1`` features.

The layer structure and sizes are those of the eSEN/UMA backbone of Fu et al.
(2025) and Wood et al. (2025) as used by the paper, rebuilt here from the
equations; the parameter count reproduces Table 5 (see ``docs/ladders_esen.yaml``
and :meth:`ESEN.param_count_formula`). The atom-wise feed-forward is a gated MLP
(``ffn="gate"``, exactly equivariant; the demo's default) or, as in the reference
and ``config/paper.yaml``, eSEN's MLP on an S2 grid (``ffn="grid"``; see
:mod:`pipeline.models.esen_blocks`).

Cost: everything that depends only on the graph (edge frames, the Wigner-D rows
of every edge, the envelope, the distance basis, the aggregation weights) and the
radial MLPs of all layers (one batched pass: they read the same edge inputs) are
computed once per forward. Per layer, the rotation into the edge frames and the one
back are one batched matmul each over all order groups, with channels zero-padded
to what ATen's BLAS path and the SO(2) maps multiply fastest
(:func:`pipeline.models.so3.blas_channels`: 8 at lmax 2); the source and target
features are two gathers from padded node tables, the SO(2) convolutions take
strided views of the rotated features (one matmul per order m, ``mmax + 1`` in all)
and the second one writes the padded layout the rotation back reads. What remains at
demo size is the per-edge matmuls of the rotations (~15 % of a step) and memory-bound
per-edge elementwise work and skinny matmuls. The zero padding adds exact zeros, so
values match the unpadded products to rounding.
``benchmarks/bench_esen.py`` times this against the code before that work.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn

from pipeline.models.blocks import GaussianBasis, PolynomialEnvelope, check_atomic_numbers
from pipeline.models.esen_blocks import (
    EdgeGate,
    EquivariantRMSNorm,
    GateFeedForward,
    GridFeedForward,
    RadialMLP,
    stacked_radial,
)
from pipeline.models.so3 import (
    SO2Convolution,
    WignerFromPoints,
    blas_channels,
    edge_frames,
    m_major_index,
    safe_norm,
)

logger = logging.getLogger(__name__)


class _Block(nn.Module):
    """One eSEN layer: edge-wise SO(2) message passing and an atom-wise feed-forward."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        lmax: int,
        mmax: int,
        edge_sizes: list[int],
        ffn: str,
        grid_resolution: int | None,
    ):
        super().__init__()
        self.norm_1 = EquivariantRMSNorm(lmax, channels)
        # source and target features side by side: 2C input channels (eq. 15 on [h_u, h_v])
        self.conv_1 = SO2Convolution(
            2 * channels, hidden, lmax, mmax, extra_m0_channels=lmax * hidden
        )
        self.radial = RadialMLP(edge_sizes + [self.conv_1.radial_size])
        self.gate = EdgeGate(lmax, mmax)
        self.conv_2 = SO2Convolution(hidden, channels, lmax, mmax)
        self.norm_2 = EquivariantRMSNorm(lmax, channels)
        if ffn == "gate":
            self.atom_wise: nn.Module = GateFeedForward(channels, hidden)
        else:
            self.atom_wise = GridFeedForward(channels, hidden, lmax, grid_resolution)

    def forward(
        self,
        x: torch.Tensor,
        radial: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        wigner: torch.Tensor,
        wigner_back: torch.Tensor,
        agg_weight: torch.Tensor,
    ) -> torch.Tensor:
        """One layer.

        Parameters
        ----------
        x : Tensor [A, S, C]
            Node features, ``S = (lmax+1)**2``.
        radial : Tensor [E, K * P]
            This block's radial weights (its ``radial`` MLP of the invariant edge
            inputs), expanded to the flat rotated features, ``P`` channels per row
            (``2C`` zero padded to ``blas_channels``; ``conv_1.radial_columns(P)``).
        src, dst : long [E]
            Neighbour u and centre v of each edge.
        wigner : Tensor [E, K, S]
            The ``K`` m-major rows of ``D(R_uv)`` (all order groups).
        wigner_back : Tensor [E, S, K]
            Their transposes times the cutoff envelope.
        agg_weight : Tensor [A, 1, 1]
            1/degree (mean) or a constant (sum).

        Returns
        -------
        Tensor [A, S, C]
        """
        num_atoms, size, channels = x.shape
        num_edges, _, num_rows = wigner_back.shape
        # [h_u, h_v] with zero channels up to what the rotation multiplies fastest
        # (blas_channels) as the sum of two gathers from padded node tables: no
        # concatenation of C-wide pieces per edge, [E, S, P]
        pad_in = blas_channels(num_rows, size, 2 * channels)
        h = self.norm_1(x)
        zeros = h.new_zeros(num_atoms, size, pad_in - 2 * channels)
        source = torch.cat((h, zeros, torch.zeros_like(h)), dim=2).view(num_atoms, -1)
        target = torch.cat((torch.zeros_like(h), h, zeros), dim=2).view(num_atoms, -1)
        pair = source.index_select(0, src) + target.index_select(0, dst)
        # rotate into the edge frame, every order group in one batched matmul: [E, K, P]
        rotated = torch.bmm(wigner, pair.view(num_edges, size, pad_in))
        y, gates = self.conv_1(rotated.flatten(1), radial, pad_in_channels=pad_in)
        # the second map writes the channels the rotation back multiplies fastest (zero
        # padded when C is small), so no copy pads or trims the messages per edge
        pad = blas_channels(size, num_rows, channels)
        y, _ = self.conv_2(self.gate(gates, y), pad_out_channels=pad)  # [E, rows_g * pad]
        # rotate back (envelope included) in one batched matmul: [E, S, pad]
        msg = torch.bmm(wigner_back, torch.cat(y, dim=1).view(num_edges, num_rows, pad))
        # (under autocast bmm gives bf16: messages are summed in the residual's dtype)
        agg = x.new_zeros(num_atoms, size, pad).index_add_(0, dst, msg.to(x.dtype))
        x = x + agg[:, :, :channels] * agg_weight
        return x + self.atom_wise(self.norm_2(x))


class ESEN(nn.Module):
    """eSEN interatomic potential with direct forces.

    Parameters
    ----------
    channels : int
        ``C``, channels per spherical-harmonic coefficient ("# Channels" of Table 5).
    lmax : int
        Largest degree of the node features (Table 5: 4; Fig. 4 also uses 2).
    mmax : int
        Largest order kept in the SO(2) convolutions (``<= lmax``; paper: 2).
    hidden_channels : int
        ``H``, channels inside the SO(2) messages and the atom-wise feed-forward
        ("# Hidden Channels" of Table 5: 32).
    num_layers : int
        Number of blocks (paper: 12).
    edge_channels : int, optional
        Width of the radial MLPs and of the species embeddings fed to them.
        Default ``channels`` (this is what makes Table 5 quadratic in C).
    num_distance_basis : int
        Number of Gaussians expanding ``|r_uv|`` (default 136, from Table 5).
    cutoff : float
        Radial cutoff in Angstrom (paper: 6.0); messages vanish smoothly there.
    max_neighbors : int
        Neighbours per atom the graph is built with (paper: 30); not used inside.
    max_num_elements : int
        Size of the atomic-number embeddings (Z < max_num_elements).
    aggregation : {"mean", "sum"}
        Mean over the neighbours of each atom (eq. 8; weighted by the cutoff
        envelope, so it is continuous in the positions) or a sum divided by
        ``avg_num_neighbors``.
    avg_num_neighbors : float
        Normaliser of the "sum" aggregation.
    ffn : {"gate", "grid"}
        Atom-wise feed-forward: "gate" (exactly equivariant gated MLP, default)
        or "grid" (eSEN's MLP on an S2 grid, the reference's and
        ``config/paper.yaml``'s; the grid round trip is exact, the pointwise SiLU
        makes it equivariant up to aliasing: measured 4e-7 (lmax 2) and 4e-6
        (lmax 4) relative in the forces at the default resolution, float64, random
        weights). Same parameters either way.
    grid_resolution : int, optional
        Polar points of the "grid" feed-forward (default ``2 (lmax+1)``, at least
        ``lmax + 1``); twice as many azimuthal points.

    Notes
    -----
    Symmetry: energies are exactly invariant and forces exactly equivariant under
    rotations, translations and atom permutations (SE(3) x S_n, up to rounding).
    Like eSEN, the model is not reflection-equivariant: edge frames are proper
    rotations and features carry no parity, so a mirror image may get another
    energy.

    ``forward(atomic_numbers, positions, edge_index, batch, num_molecules)``
    returns ``energy`` [M] and ``forces`` [A, 3] (normalised units); see
    :mod:`pipeline.models`.
    """

    properties = {"characteristic": "equivariant", "tensor_order": ">=2", "body_order": 2}
    #: exact invariances of the energy / equivariances of the forces (measured in
    #: tests/models/test_esen.py); no "reflection": features carry no parity, and a
    #: mirror image changes the forces by ~10 % of their size at initialisation
    symmetries: frozenset[str] = frozenset({"rotation", "translation", "permutation"})
    forces: str = "direct"

    def __init__(
        self,
        *,
        channels: int = 4,
        lmax: int = 4,
        mmax: int = 2,
        hidden_channels: int = 32,
        num_layers: int = 12,
        edge_channels: int | None = None,
        num_distance_basis: int = 136,
        cutoff: float = 6.0,
        max_neighbors: int = 30,
        max_num_elements: int = 100,
        aggregation: Literal["mean", "sum"] = "mean",
        avg_num_neighbors: float = 10.0,
        ffn: Literal["gate", "grid"] = "gate",
        grid_resolution: int | None = None,
    ):
        super().__init__()
        for name, value in (
            ("channels", channels),
            ("hidden_channels", hidden_channels),
            ("num_layers", num_layers),
            ("num_distance_basis", num_distance_basis),
            ("max_num_elements", max_num_elements),
        ):
            if value < 1:
                raise ValueError(f"ESEN: {name} must be >= 1, got {value}")
        if not 0 <= mmax <= lmax:
            raise ValueError(f"ESEN: need 0 <= mmax <= lmax, got lmax={lmax}, mmax={mmax}")
        if lmax < 1:
            raise ValueError(f"ESEN: lmax must be >= 1 for l=1 forces, got {lmax}")
        if aggregation not in ("mean", "sum"):
            raise ValueError(f"ESEN: aggregation must be 'mean' or 'sum', got {aggregation!r}")
        if ffn not in ("gate", "grid"):
            raise ValueError(f"ESEN: ffn must be 'gate' or 'grid', got {ffn!r}")
        if cutoff <= 0:
            raise ValueError(f"ESEN: cutoff must be > 0 Angstrom, got {cutoff}")
        self.channels = channels
        self.lmax = lmax
        self.mmax = mmax
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.edge_channels = channels if edge_channels is None else edge_channels
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.max_num_elements = max_num_elements
        self.aggregation = aggregation
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.width = channels * (lmax + 1) ** 2

        rows = m_major_index(lmax, mmax)
        self.wigner = WignerFromPoints(lmax, rows)
        degree = [ell for ell in range(lmax + 1) for _ in range(2 * ell + 1)]
        self.register_buffer("_sh_degree", torch.tensor(degree), persistent=False)
        self.register_buffer("_sh_index", torch.arange(len(degree)), persistent=False)
        # Gaussians of width two spacings on [0, cutoff] (eSEN's radial expansion)
        self.distance_basis = GaussianBasis(
            num_distance_basis,
            0.0,
            self.cutoff,
            width=2.0 * self.cutoff / max(num_distance_basis - 1, 1),
        )
        self.envelope = PolynomialEnvelope(self.cutoff)
        self.atom_embedding = nn.Embedding(max_num_elements, channels)
        self.source_embedding = nn.Embedding(max_num_elements, self.edge_channels)
        self.target_embedding = nn.Embedding(max_num_elements, self.edge_channels)
        for emb in (self.source_embedding, self.target_embedding):
            nn.init.uniform_(emb.weight, -1e-3, 1e-3)
        edge_sizes = [num_distance_basis + 2 * self.edge_channels] + [self.edge_channels] * 2
        # initial features: a learned radial profile per degree on the m = 0 coefficients
        self.degree_radial = RadialMLP(edge_sizes + [(lmax + 1) * channels])
        self.blocks = nn.ModuleList(
            _Block(channels, hidden_channels, lmax, mmax, edge_sizes, ffn, grid_resolution)
            for _ in range(num_layers)
        )
        self.norm = EquivariantRMSNorm(lmax, channels)
        self.energy_head = nn.Linear(channels, 1)
        self.force_head = nn.Linear(channels, 1, bias=False)  # on l = 1 only: no bias

    def forward(
        self,
        atomic_numbers: torch.Tensor,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        num_molecules: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies and direct forces.

        Parameters
        ----------
        atomic_numbers : long [A]
        positions : float [A, 3]
            Angstrom.
        edge_index : long [2, E]
            Row 0 the neighbour u, row 1 the centre v; ``r_uv = x_u - x_v``.
        batch : long [A]
            Molecule of each atom.
        num_molecules : int
            M.

        Returns
        -------
        energy : [M]
            Referenced, normalised energy per molecule.
        forces : [A, 3]
            Direct forces (normalised units).
        """
        check_atomic_numbers(
            atomic_numbers, 0, self.max_num_elements - 1, "ESEN", "max_num_elements"
        )
        src, dst = edge_index[0], edge_index[1]
        num_atoms = positions.shape[0]
        r_uv = positions.index_select(0, src) - positions.index_select(0, dst)  # [E, 3]
        dist = safe_norm(r_uv)  # [E]
        envelope = self.envelope(dist)  # [E]
        # the K m-major rows of D(R_uv), computed once and shared by every layer: [E, K, S];
        # back: D^T times the envelope, [E, S, K]
        wigner = self.wigner(edge_frames(r_uv))
        wigner_back = (wigner * envelope[:, None, None]).transpose(1, 2).contiguous()

        if self.aggregation == "mean":
            # envelope-weighted mean (as blocks.weighted_mean): the soft neighbour count
            # makes the mean continuous when a neighbour crosses the cutoff
            degree = torch.zeros(num_atoms, dtype=positions.dtype, device=positions.device)
            degree.index_add_(0, dst, envelope)
            agg_weight = 1.0 / degree.clamp(min=1.0)  # [A]
        else:
            agg_weight = positions.new_full((num_atoms,), 1.0 / self.avg_num_neighbors)
        agg_weight = agg_weight[:, None, None]  # [A, 1, 1]

        edge_feat = torch.cat(
            (
                self.distance_basis(dist),
                # embedding rows gathered directly: a much cheaper backward than
                # nn.Embedding's (measured 0.1 against 0.44 ms for 7,596 edges)
                self.source_embedding.weight.index_select(0, atomic_numbers.index_select(0, src)),
                self.target_embedding.weight.index_select(0, atomic_numbers.index_select(0, dst)),
            ),
            dim=1,
        )  # [E, num_distance_basis + 2 edge_channels]

        size = (self.lmax + 1) ** 2
        x = positions.new_zeros(num_atoms, size, self.channels)  # [A, S, C]
        x[:, 0, :] = self.atom_embedding(atomic_numbers)
        # edge-degree embedding: radial profiles on the m = 0 rows, rotated to the global
        # frame; D is block diagonal, so row s of D^T meets only the m = 0 row of its own
        # degree: an elementwise product, [E, S, C]
        num_edges = len(dist)
        m0 = stacked_radial([self.degree_radial], edge_feat)  # [1, E, (lmax+1) C]
        m0 = m0.view(num_edges, self.lmax + 1, self.channels)
        column = wigner_back[:, self._sh_index, self._sh_degree]  # D^T[e, s, (l(s), 0)], [E, S]
        init = column[:, :, None] * m0.index_select(1, self._sh_degree)
        agg = x.new_zeros(num_atoms, size, self.channels).index_add_(0, dst, init.to(x.dtype))
        x = x + agg * agg_weight

        # every block's radial MLP reads the same edge inputs: all at once, [L, E, K * 2C]
        conv = self.blocks[0].conv_1
        pad_in = blas_channels(wigner.shape[1], size, conv.in_channels)
        radials = stacked_radial(
            [block.radial for block in self.blocks], edge_feat, conv.radial_columns(pad_in)
        )
        for block, radial in zip(self.blocks, radials, strict=True):
            x = block(x, radial, src, dst, wigner, wigner_back, agg_weight)
        x = self.norm(x)

        atom_energy = self.energy_head(x[:, 0, :]).squeeze(-1)  # [A]
        energy = torch.zeros(num_molecules, dtype=x.dtype, device=x.device)
        energy = energy.index_add(0, batch, atom_energy.to(energy.dtype))  # sum in x's dtype
        forces = self.force_head(x[:, 1:4, :]).squeeze(-1)  # l = 1 block is (x, y, z), [A, 3]
        return energy, forces

    @staticmethod
    def param_count_formula(
        channels: int,
        lmax: int = 4,
        mmax: int = 2,
        hidden_channels: int = 32,
        num_layers: int = 12,
        edge_channels: int | None = None,
        num_distance_basis: int = 136,
        max_num_elements: int = 100,
    ) -> int:
        """Closed-form number of parameters of this model (checked against the instance)."""
        c, h, lm = channels, hidden_channels, lmax
        e = c if edge_channels is None else edge_channels

        def radial(out: int) -> int:
            first = num_distance_basis + 2 * e
            return first * e + e + 2 * e + e * e + e + 2 * e + e * out + out

        norm = (lm + 1) * c + c
        conv1_in = [(lm + 1 - m) * 2 * c for m in range(mmax + 1)]
        conv1 = conv1_in[0] * ((lm + 1) * h + lm * h) + (lm + 1) * h + lm * h
        conv1 += sum(conv1_in[m] * 2 * (lm + 1 - m) * h for m in range(1, mmax + 1))
        conv2 = (lm + 1) * h * (lm + 1) * c + (lm + 1) * c
        conv2 += sum((lm + 1 - m) * h * 2 * (lm + 1 - m) * c for m in range(1, mmax + 1))
        ffn = c * h + h * h + h * c
        block = 2 * norm + conv1 + radial(sum(conv1_in)) + conv2 + ffn
        total = max_num_elements * (c + 2 * e) + radial((lm + 1) * c)
        return total + num_layers * block + norm + (c + 1) + c


__all__ = ["ESEN"]
