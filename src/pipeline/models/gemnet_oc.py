"""GemNet-OC (Gasteiger et al., 2022; paper appendix C.2, eq. 10): invariant directional
message passing with two- to four-body geometry and direct forces.

Layout follows the published architecture: atom and edge embeddings of width ``w``;
per interaction block an edge-to-edge triplet interaction (bond angles), a quadruplet
interaction (dihedral angles), atom-to-edge and edge-to-atom triplet interactions and an
atom-to-atom pair interaction, residual edge and atom updates; an output block after the
embedding and after every interaction block; energy = sum over atoms of a scalar, forces
= sum over edges of a scalar times the unit vector ``r_uv / |r_uv|`` (E(3) equivariant by
construction). All geometric inputs (distances, cosines of bond angles and of dihedral
angles) are E(3) invariant, so the energy is invariant under rotations, reflections,
translations and atom permutations.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from pipeline.models.blocks import GaussianBasis, PolynomialEnvelope, check_atomic_numbers
from pipeline.models.gemnet_oc_block import InteractionBlock, OutputBlock
from pipeline.models.gemnet_oc_graph import (
    angles_in_slots,
    reverse_edges,
    scatter_rows,
    slots_in_group,
)
from pipeline.models.gemnet_oc_layers import (
    AngularBasisEmbedding,
    Dense,
    RadialBasisEmbedding,
    residual_stack,
)
from pipeline.models.gemnet_oc_quad import quadruplet_geometry
from pipeline.models.gemnet_oc_scale import fit_scale_factors

logger = logging.getLogger(__name__)


class GemNetOC(nn.Module):
    """GemNet-OC with direct forces on the 10 Angstrom / 50 neighbour graph.

    Atom and edge embeddings have the same size ``width`` (Table 6 "Width"). Fixed sizes
    (defaults) reproduce Table 6 exactly: ``N(w) = 194 w^2 + 885 w + 86016`` at depth 4
    (see ``docs/ladders_gemnet_oc.yaml`` and :meth:`param_count_formula`).

    Normalisation: no LayerNorm; as in the reference implementation, data-fitted scale
    factors after every basis modulation and every neighbour sum (11 per interaction
    block, 2 per output block; :mod:`~pipeline.models.gemnet_oc_scale`), fitted once by
    :meth:`prepare` on one batch so that each output keeps the variance of its input,
    stored in buffers (state_dict, checkpoints). Before fitting they are 1 and fixed
    normalisers set the scale: every sum over neighbours is divided by
    ``sqrt(avg_neighbors)`` (by ``avg_neighbors`` for the double sum of the edge-to-atom
    interaction, by ``avg_quadruplets`` for the quadruplet sum); the fitted factors
    absorb these. Sums of residual branches are divided by the square root of the number
    of summands.

    Quadruplet graph: the ``b -> a`` and ``d -> b`` edges of a quadruplet
    ``c -> a <- b <- d`` come from a separate interaction graph with its own cutoff and
    neighbour cap. The reference (fairchem-core 1.10) takes only ``b -> a`` from that
    graph and ``d -> b``, like ``c -> a``, from the main graph (202,193 against our
    81,220 quadruplets on 4 demo molecules; benchmarks/bench_fairchem_gemnet.py): a
    deviation, listed in the README (``cutoff_qint``, ``max_neighbors_qint``; its
    OC20 configuration: 12 Angstrom / 8 neighbours beside a 12 Angstrom / 30 neighbour
    main graph). The model receives only the main graph (the registry's call signature),
    so it derives this graph inside: per centre, the ``max_neighbors_qint`` shortest
    main-graph edges shorter than ``cutoff_qint``. Defaults scale the reference to the
    main graph: ``cutoff_qint = cutoff`` and ``max_neighbors_qint =
    int(max_neighbors * 8 / 30)`` (13 on the paper's 10 Angstrom / 50 neighbour graph).
    Contributions through ``d -> b`` are multiplied by a smooth envelope at
    ``cutoff_qint``, so energies stay continuous when an atom crosses it; like the main
    graph's neighbour cap (and the reference's), the cap itself is not smooth.

    Angular bases (no ``acos``, finite gradients at angles 0 and pi): Legendre
    polynomials ``P_l(cos angle)``, ``l < num_spherical`` for bond angles; for
    quadruplets ``P_l(cos angle_cab)`` times the dihedral modes
    ``rho_c^k rho_d^k cos(k dihedral)``, ``l, k < num_spherical`` (``num_spherical^2``
    functions, the size of the original's spherical basis), with
    ``rho = |p| / sqrt(|p|^2 + 1e-9 Angstrom^2)``, ``p`` the component of ``r_ca`` (or
    ``r_db``) normal to the axis a-b: ``rho`` is 1 for ordinary geometries and goes to 0
    smoothly for an atom on the axis, where the dihedral is undefined.
    The dihedral is unsigned, as in the original, so the model is E(3) (not only SE(3))
    invariant. Because ``cos(k (alpha_c - alpha_d))`` separates into per-atom azimuth
    modes about the axis a-b, the quadruplet sum costs O(triplets), not O(quadruplets)
    (:func:`~pipeline.models.gemnet_oc_layers.dihedral_sum`); the result does not depend
    on the reference direction of the azimuths.

    Parameters
    ----------
    width : int
        Atom and edge embedding size ``w``.
    num_layers : int
        Interaction blocks (Table 6 "Depth"), default 4.
    cutoff : float
        Main graph radius in Angstrom (the trainer builds the graph), default 10.0.
    max_neighbors : int
        Neighbours per atom of the main graph, default 50.
    cutoff_qint : float or None
        Radius of the quadruplet graph in Angstrom, at most ``cutoff``; default (None)
        ``cutoff``.
    max_neighbors_qint : int or None
        Edges per centre of the quadruplet graph (the nearest); default (None)
        ``int(max_neighbors * 8 / 30)``, at least 1.
    num_elements : int
        Atomic numbers 1..num_elements are embedded, default 83 (H to Bi, OMol25).
    num_radial : int
        Gaussian radial functions R, default 64.
    num_spherical : int
        Angular orders S, default 7.
    emb_size_rbf, emb_size_cbf, emb_size_sbf : int
        Shared basis embedding sizes, defaults 8, 16, 8.
    emb_size_trip_in, emb_size_trip_out : int
        Triplet bilinear sizes, defaults 16, 8.
    emb_size_quad_in, emb_size_quad_out : int
        Quadruplet bilinear sizes, defaults 16, 4.
    emb_size_aint_in, emb_size_aint_out : int
        Atom-pair bilinear sizes, defaults 8, 4.
    num_before_skip, num_after_skip, num_concat : int
        Residual layers of the edge update, defaults 2, 2, 1.
    num_atom : int
        Residual layers of the atom update and output blocks, default 2.
    num_output_afteratom : int
        Residual layers of the output blocks after adding the atom embedding, default 3.
    num_atom_emb_layers : int
        Residual layers on the atom embedding per block, default 2.
    num_global_out_layers : int
        Residual layers of the final energy and force MLPs, default 2.
    avg_neighbors : float
        Fixed normaliser of neighbour sums, default 20.
    avg_quadruplets : float
        Fixed normaliser of quadruplet sums, default 8.
    envelope_exponent : int
        Exponent of the polynomial cutoff envelope, default 5.
    """

    properties = dict(characteristic="invariant", tensor_order=0, body_order=4)
    # exact invariances of the energy / equivariances of the forces (tests check them in
    # float64): all geometric inputs are distances and unsigned angles
    symmetries: frozenset[str] = frozenset({"rotation", "reflection", "translation", "permutation"})
    forces: str = "direct"

    def __init__(
        self,
        width: int,
        num_layers: int = 4,
        cutoff: float = 10.0,
        max_neighbors: int = 50,
        cutoff_qint: float | None = None,
        max_neighbors_qint: int | None = None,
        num_elements: int = 83,
        num_radial: int = 64,
        num_spherical: int = 7,
        emb_size_rbf: int = 8,
        emb_size_cbf: int = 16,
        emb_size_sbf: int = 8,
        emb_size_trip_in: int = 16,
        emb_size_trip_out: int = 8,
        emb_size_quad_in: int = 16,
        emb_size_quad_out: int = 4,
        emb_size_aint_in: int = 8,
        emb_size_aint_out: int = 4,
        num_before_skip: int = 2,
        num_after_skip: int = 2,
        num_concat: int = 1,
        num_atom: int = 2,
        num_output_afteratom: int = 3,
        num_atom_emb_layers: int = 2,
        num_global_out_layers: int = 2,
        avg_neighbors: float = 20.0,
        avg_quadruplets: float = 8.0,
        envelope_exponent: int = 5,
    ):
        super().__init__()
        if width < 1:
            raise ValueError(f"GemNetOC: width must be >= 1, got {width}")
        if num_layers < 1:
            raise ValueError(f"GemNetOC: num_layers must be >= 1, got {num_layers}")
        if cutoff_qint is None:
            cutoff_qint = cutoff
        if max_neighbors_qint is None:
            max_neighbors_qint = max(1, int(max_neighbors * 8 / 30))
        if max_neighbors_qint < 1:
            raise ValueError(f"GemNetOC: max_neighbors_qint must be >= 1, got {max_neighbors_qint}")
        if not 0 < cutoff_qint <= cutoff:
            raise ValueError(
                f"GemNetOC: need 0 < cutoff_qint <= cutoff, got {cutoff_qint} and {cutoff}"
            )
        if num_spherical < 2:
            raise ValueError(f"GemNetOC: num_spherical must be >= 2, got {num_spherical}")
        if avg_neighbors <= 0 or avg_quadruplets <= 0:
            raise ValueError("GemNetOC: avg_neighbors and avg_quadruplets must be > 0")
        self.width = width
        self.num_layers = num_layers
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.cutoff_qint = float(cutoff_qint)
        self.max_neighbors_qint = int(max_neighbors_qint)
        self.num_elements = num_elements
        self.num_spherical = num_spherical
        self.scales = {
            "trip": 1.0 / math.sqrt(avg_neighbors),
            "quad": 1.0 / avg_quadruplets,
            "e2a": 1.0 / avg_neighbors,
            "pair": 1.0 / math.sqrt(avg_neighbors),
            "atom": 1.0 / math.sqrt(avg_neighbors),
        }
        rad, rbf, cbf, sbf, s = num_radial, emb_size_rbf, emb_size_cbf, emb_size_sbf, num_spherical

        self.radial = GaussianBasis(num_radial, 0.0, cutoff)
        self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
        self.radial_qint = GaussianBasis(num_radial, 0.0, cutoff_qint)
        self.envelope_qint = PolynomialEnvelope(cutoff_qint, envelope_exponent)

        # basis embeddings shared by all blocks
        self.mlp_rbf_tint = RadialBasisEmbedding(rad, rbf)
        self.mlp_cbf_tint = AngularBasisEmbedding(rad, s, cbf)
        self.mlp_rbf_qint = RadialBasisEmbedding(rad, rbf)
        self.mlp_cbf_qint = AngularBasisEmbedding(rad, s, cbf)
        self.mlp_sbf_qint = AngularBasisEmbedding(rad, s * s, sbf)
        self.mlp_rbf_aeint = RadialBasisEmbedding(rad, rbf)
        self.mlp_cbf_aeint = AngularBasisEmbedding(rad, s, cbf)
        self.mlp_rbf_eaint = RadialBasisEmbedding(rad, rbf)
        self.mlp_cbf_eaint = AngularBasisEmbedding(rad, s, cbf)
        self.mlp_rbf_aint = RadialBasisEmbedding(rad, rbf)
        self.mlp_rbf_h = RadialBasisEmbedding(rad, rbf)
        self.mlp_rbf_out = RadialBasisEmbedding(rad, rbf)

        self.atom_emb = nn.Embedding(num_elements, width)
        nn.init.uniform_(self.atom_emb.weight, -math.sqrt(3.0), math.sqrt(3.0))
        self.edge_emb = Dense(2 * width + num_radial, width, True)

        self.blocks = nn.ModuleList(
            InteractionBlock(
                width,
                trip_in=emb_size_trip_in,
                trip_out=emb_size_trip_out,
                quad_in=emb_size_quad_in,
                quad_out=emb_size_quad_out,
                pair_in=emb_size_aint_in,
                pair_out=emb_size_aint_out,
                rbf=rbf,
                cbf=cbf,
                sbf=sbf,
                num_before_skip=num_before_skip,
                num_after_skip=num_after_skip,
                num_concat=num_concat,
                num_atom=num_atom,
                num_atom_emb_layers=num_atom_emb_layers,
            )
            for _ in range(num_layers)
        )
        self.out_blocks = nn.ModuleList(
            OutputBlock(width, rbf, num_atom, num_output_afteratom) for _ in range(num_layers + 1)
        )
        self.out_mlp_energy = nn.Sequential(
            Dense(width * (num_layers + 1), width, True),
            residual_stack(width, num_global_out_layers),
        )
        self.out_energy = Dense(width, 1)
        self.out_mlp_forces = nn.Sequential(
            Dense(width * (num_layers + 1), width, True),
            residual_stack(width, num_global_out_layers),
        )
        self.out_forces = Dense(width, 1)

    @staticmethod
    def param_count_formula(width: int) -> int:
        """Parameter count of the default configuration at depth 4 (Table 6's quadratic)."""
        return 194 * width**2 + 885 * width + 86016

    @torch.no_grad()
    def prepare(
        self,
        atomic_numbers: torch.Tensor,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        num_molecules: int,
    ) -> None:
        """Fit the scale factors on one batch (the trainer's first batch of a fresh run).

        Arguments as :meth:`forward`. Refits from scratch when called again; a factor
        that the batch cannot fit (e.g. no quadruplets) stays 1 and is logged.
        """
        fit_scale_factors(
            self, lambda: self(atomic_numbers, positions, edge_index, batch, num_molecules)
        )

    # --- geometry --------------------------------------------------------------------------

    def _graph(self, positions: torch.Tensor, edge_index: torch.Tensor, num_atoms: int) -> dict:
        """Indices, invariant geometry and basis embeddings shared by all blocks."""
        s = self.num_spherical
        src, dst = edge_index
        vec = positions[src] - positions[dst]  # r_uv [E, 3], Angstrom
        dist = torch.linalg.vector_norm(vec, dim=-1)  # [E]
        unit = vec / dist.clamp(min=1e-12).unsqueeze(-1)  # [E, 3]
        rad = self.envelope(dist).unsqueeze(-1) * self.radial(dist)  # [E, R]

        g: dict = {"edge_index": edge_index, "unit": unit, "rad": rad}
        g["rev"] = reverse_edges(edge_index, num_atoms)

        # triplets c -> a <- b on the main graph (shared by e2e, a2e, e2a), as slot pairs
        slot, width = slots_in_group(dst, num_atoms)  # slot of every edge at its centre [E]
        ang_atom, trip_ok = angles_in_slots(unit, src, dst, slot, width, num_atoms, s)
        g.update(ang_atom=ang_atom, slot=slot)  # [A, K S, K], [E]

        def t_in() -> torch.Tensor:
            """Edge b -> a of every triplet (the scale factors' fitting references)."""
            by_slot = torch.full((num_atoms, width), -1, dtype=torch.long, device=dst.device)
            by_slot[dst, slot] = torch.arange(len(dst), device=dst.device)
            return by_slot.unsqueeze(1).expand(-1, width, -1)[trip_ok]

        for name, mlp in (
            ("tint", self.mlp_cbf_tint),
            ("aeint", self.mlp_cbf_aeint),
            ("eaint", self.mlp_cbf_eaint),
        ):
            g[f"cbf_{name}"] = {
                "in": t_in,  # callable
                "centre": dst,
                "slot": slot,
                "ang_atom": ang_atom,
                "rad_w": mlp(rad),  # radial weights of the joint basis [E, cbf, S]
            }
        g["rbf_tint"] = self.mlp_rbf_tint(rad)
        g["rbf_aeint"] = self.mlp_rbf_aeint(rad)
        g["rbf_eaint"] = self.mlp_rbf_eaint(rad)
        g["rbf_aint"] = self.mlp_rbf_aint(rad)
        g["rbf_h"] = self.mlp_rbf_h(rad)
        g["rbf_out"] = self.mlp_rbf_out(rad)
        g["rbf_qint"] = self.mlp_rbf_qint(rad)
        g["quad"] = quadruplet_geometry(
            edge_index, vec, dist, unit, rad, slot, width, num_atoms, self
        )
        return g

    # --- forward ---------------------------------------------------------------------------

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
            1 .. num_elements.
        positions : float [A, 3]
            Angstrom.
        edge_index : long [2, E]
            Row 0 neighbour u, row 1 centre v; ``r_uv = x_u - x_v``.
        batch : long [A]
            Molecule of each atom.
        num_molecules : int
            M.
        """
        num_atoms = atomic_numbers.shape[0]
        check_atomic_numbers(atomic_numbers, 1, self.num_elements, "GemNetOC", "num_elements")
        g = self._graph(positions, edge_index, num_atoms)
        src, dst = edge_index

        h = self.atom_emb(atomic_numbers - 1)  # [A, w]
        m = self.edge_emb(torch.cat([h[src], h[dst], g["rad"]], dim=-1))  # [E, w]

        x_e, x_f = self.out_blocks[0](h, m, g["rbf_out"], dst, num_atoms, self.scales["atom"])
        xs_e, xs_f = [x_e], [x_f]
        for block, out in zip(self.blocks, self.out_blocks[1:], strict=True):
            h, m = block(h, m, g, self.scales)
            x_e, x_f = out(h, m, g["rbf_out"], dst, num_atoms, self.scales["atom"])
            xs_e.append(x_e)
            xs_f.append(x_f)

        atom_energy = self.out_energy(self.out_mlp_energy(torch.cat(xs_e, dim=-1)))  # [A, 1]
        energy = scatter_rows(atom_energy.squeeze(-1), batch, num_molecules)  # [M]
        edge_force = self.out_forces(self.out_mlp_forces(torch.cat(xs_f, dim=-1)))  # [E, 1]
        forces = scatter_rows(edge_force * g["unit"], dst, num_atoms)  # [A, 3]
        return energy, forces
