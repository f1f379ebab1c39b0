"""Interaction and output blocks of GemNet-OC (private to ``gemnet_oc.py``): the pair
and atom-update interactions, the output block and the interaction block that joins the
triplet, quadruplet, atom-to-edge, edge-to-atom and pair interactions."""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.models.gemnet_oc_graph import scatter_rows
from pipeline.models.gemnet_oc_layers import (
    Dense,
    QuadrupletInteraction,
    TripletInteraction,
    angle_sums,
    residual_stack,
)
from pipeline.models.gemnet_oc_scale import ScaleFactor

__all__ = ["AtomUpdate", "InteractionBlock", "OutputBlock", "PairInteraction"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


class PairInteraction(nn.Module):
    """Atom-to-atom messages: ``sum_b rbf(|r_ba|) outer h_b`` through a bilinear layer.

    Parameters
    ----------
    width : int
        Atom embedding size.
    pair_in, pair_out : int
        Sizes before and after the bilinear layer.
    rbf : int
        Radial basis embedding size.
    """

    def __init__(self, width: int, pair_in: int, pair_out: int, rbf: int):
        super().__init__()
        self.down = Dense(width, pair_in, True)
        self.bilinear = Dense(rbf * pair_in, pair_out)
        self.up = Dense(pair_out, width, True)
        self.scale_sum = ScaleFactor()

    def forward(
        self, h: torch.Tensor, rbf: torch.Tensor, edge_index: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Atom messages [A, width] from atom embeddings ``h`` [A, width]."""
        x = self.down(h)[edge_index[0]]  # [E, pair_in]
        outer = rbf.unsqueeze(2) * x.unsqueeze(1)  # [E, rbf, pair_in]
        agg = scatter_rows(outer, edge_index[1], h.shape[0]).flatten(1)  # [A, rbf * pair_in]
        return self.up(self.scale_sum(self.bilinear(agg) * scale, ref=x))


class AtomUpdate(nn.Module):
    """Edges to atoms: ``sum_{c -> a} m_ca * Dense(rbf_ca)``, then residual layers.

    Parameters
    ----------
    width : int
        Atom and edge embedding size.
    rbf : int
        Radial basis embedding size.
    num_layers : int
        Residual layers after the sum.
    """

    def __init__(self, width: int, rbf: int, num_layers: int):
        super().__init__()
        self.dense_rbf = Dense(rbf, width)
        self.layers = residual_stack(width, num_layers)
        self.scale_sum = ScaleFactor()

    def forward(
        self, m: torch.Tensor, rbf: torch.Tensor, centre: torch.Tensor, num_atoms: int, scale: float
    ) -> torch.Tensor:
        x = scatter_rows(m * self.dense_rbf(rbf), centre, num_atoms) * scale  # [A, width]
        x = self.scale_sum(x, ref=m)
        return self.layers(x)


class OutputBlock(AtomUpdate):
    """Per-block output: atom features for the energy, edge features for the forces.

    Parameters
    ----------
    width : int
    rbf : int
    num_layers : int
        Residual layers before adding the atom embedding (and in the force branch).
    num_layers_after : int
        Residual layers after adding the atom embedding.
    """

    def __init__(self, width: int, rbf: int, num_layers: int, num_layers_after: int):
        super().__init__(width, rbf, num_layers)
        self.layers_after = residual_stack(width, num_layers_after)
        self.layers_forces = residual_stack(width, num_layers)
        self.dense_rbf_forces = Dense(rbf, width)
        self.scale_rbf_forces = ScaleFactor()

    def forward(
        self,
        h: torch.Tensor,
        m: torch.Tensor,
        rbf: torch.Tensor,
        centre: torch.Tensor,
        num_atoms: int,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(atom features [A, width], edge features [E, width])."""
        x_e = super().forward(m, rbf, centre, num_atoms, scale)
        x_e = self.layers_after((x_e + h) * (1.0 / math.sqrt(2.0)))
        x_f = self.layers_forces(m)
        x_f = self.scale_rbf_forces(x_f * self.dense_rbf_forces(rbf), ref=x_f)
        return x_e, x_f


class InteractionBlock(nn.Module):
    """One GemNet-OC interaction block (edge and atom embeddings both of width ``w``)."""

    def __init__(
        self,
        width: int,
        *,
        trip_in: int,
        trip_out: int,
        quad_in: int,
        quad_out: int,
        pair_in: int,
        pair_out: int,
        rbf: int,
        cbf: int,
        sbf: int,
        num_before_skip: int,
        num_after_skip: int,
        num_concat: int,
        num_atom: int,
        num_atom_emb_layers: int,
    ):
        super().__init__()
        w = width
        self.dense_ca = Dense(w, w, True)
        self.trip = TripletInteraction(w, w, trip_in, trip_out, rbf, cbf, symmetric=True)
        self.quad = QuadrupletInteraction(w, quad_in, quad_out, rbf, cbf, sbf)
        self.atom_edge = TripletInteraction(w, w, trip_in, trip_out, rbf, cbf, symmetric=True)
        self.edge_atom = TripletInteraction(w, w, trip_in, trip_out, rbf, cbf, symmetric=False)
        self.pair = PairInteraction(w, pair_in, pair_out, rbf)
        self.layers_before_skip = residual_stack(w, num_before_skip)
        self.layers_after_skip = residual_stack(w, num_after_skip)
        self.atom_emb_layers = residual_stack(w, num_atom_emb_layers)
        self.atom_update = AtomUpdate(w, rbf, num_atom)
        self.concat = Dense(3 * w, w, True)
        self.residual_m = residual_stack(w, num_concat)

    def forward(self, h: torch.Tensor, m: torch.Tensor, g: dict, s: dict[str, float]):
        """Updated (atom embeddings [A, w], edge embeddings [E, w])."""
        src, dst = g["edge_index"]
        num_atoms = h.shape[0]
        x = self.dense_ca(m)  # skip path [E, w]
        # the three triplet interactions share one batched angle sum (channels stacked)
        x_tint = self.trip.project(m, g["rbf_tint"])  # [E, trip_in]
        x_aeint = self.atom_edge.project(h, g["rbf_aeint"], expand_index=src)
        x_eaint = self.edge_atom.project(m, g["rbf_eaint"])
        sums = angle_sums(
            torch.cat([x_tint, x_aeint, x_eaint], dim=-1), g["ang_atom"], dst, g["slot"]
        ).split(x_tint.shape[1], dim=-1)  # 3 x [E, S, trip_in]
        x = x + self.trip.finish(sums[0], x_tint, g["cbf_tint"], g["rev"], s["trip"])
        x = x + self.quad(m, g["rbf_qint"], g["quad"], g["rev"], s["quad"])
        x = x + self.atom_edge.finish(sums[1], x_aeint, g["cbf_aeint"], g["rev"], s["trip"])
        x = x * 0.5  # 1 / sqrt(4 summands)
        h_e2a = self.edge_atom.finish(
            sums[2], x_eaint, g["cbf_eaint"], g["rev"], s["e2a"], to_atoms=(dst, num_atoms)
        )
        h_a2a = self.pair(h, g["rbf_aint"], g["edge_index"], s["pair"])
        h = (h + h_e2a + h_a2a) * (1.0 / math.sqrt(3.0))

        m = (m + self.layers_before_skip(x)) * _INV_SQRT2
        m = self.layers_after_skip(m)

        h = self.atom_emb_layers(h)
        h = (h + self.atom_update(m, g["rbf_h"], dst, num_atoms, s["atom"])) * _INV_SQRT2

        m2 = self.residual_m(self.concat(torch.cat([h[src], h[dst], m], dim=-1)))
        m = (m + m2) * _INV_SQRT2
        return h, m
