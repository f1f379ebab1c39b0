"""Layers of GemNet-OC (private to ``gemnet_oc.py``): dense and residual layers, basis
embeddings, the triplet, quadruplet, pair and atom-update interactions.

The bilinear aggregations use the reformulation of Gasteiger et al. (2022) that never
materialises the per-triplet outer products; index sets and bases come from
:mod:`pipeline.models.gemnet_oc_graph`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.models.gemnet_oc_graph import by_centre, scatter_rows
from pipeline.models.gemnet_oc_quad import quadruplet_sum
from pipeline.models.gemnet_oc_scale import ScaleFactor

__all__ = [
    "AngularBasisEmbedding",
    "Dense",
    "QuadrupletInteraction",
    "RadialBasisEmbedding",
    "ResidualLayer",
    "ScaledSiLU",
    "TripletInteraction",
    "angle_sums",
    "dihedral_sum",
    "residual_stack",
    "swap_add",
]


def dihedral_sum(
    x_in: torch.Tensor,
    z_c: torch.Tensor,
    z_d: torch.Tensor,
    trip_in_mid: torch.Tensor,
    trip_out_mid: torch.Tensor,
    self_term: torch.Tensor,
    num_qedges: int,
) -> torch.Tensor:
    """``v[t, k] = sum_{d != c} Re(z_c[t]^k conj(z_d^k)) x_in[(a <- b <- d)]`` per triplet t.

    For every triplet ``t = (c -> a <- b)`` the sum runs over the triplets
    ``a <- b <- d`` of the same quadruplet-graph edge ``b -> a`` except ``d == c``:
    the quadruplet sum of eq. (10) with the dihedral modes ``cos(k phi_cabd)``, computed
    in O(triplets) instead of O(quadruplets) since ``cos(k (alpha_c - alpha_d))``
    separates into products of per-atom modes (:func:`azimuth_modes`).

    Parameters
    ----------
    x_in : float [Ti, C]
        Per triplet ``a <- b <- d``.
    z_c : float [To, S, 2]
        Modes of ``r_ca`` per triplet ``c -> a <- b``.
    z_d : float [Ti, S, 2]
        Modes of ``r_db`` per triplet ``a <- b <- d``.
    trip_in_mid, trip_out_mid : long [Ti], long [To]
        The q-edge ``b -> a`` of each triplet.
    self_term : long [To]
        Index of the ``d == c`` triplet to exclude, or -1.
    num_qedges : int

    Returns
    -------
    float [To, S, C]
    """
    per_mid = scatter_rows(
        z_d.unsqueeze(-1) * x_in[:, None, None, :], trip_in_mid, num_qedges
    )  # [Eq, S, 2, C]
    v = (z_c.unsqueeze(-1) * per_mid[trip_out_mid]).sum(2)  # [To, S, C]
    has = (self_term >= 0).to(v.dtype).view(-1, 1, 1)
    own = self_term.clamp(min=0)
    self_modes = (z_c * z_d[own]).sum(-1)  # [To, S]
    return v - has * self_modes.unsqueeze(-1) * x_in[own].unsqueeze(1)


# --- dense layers ----------------------------------------------------------------------------


def he_orthogonal_(weight: torch.Tensor) -> torch.Tensor:
    """Orthogonal init rescaled to variance ``1 / fan_in`` (fan_in = last dims)."""
    with torch.no_grad():
        flat = weight.view(weight.shape[0], -1) if weight.dim() > 2 else weight
        nn.init.orthogonal_(flat)
        flat.sub_(flat.mean(dim=1, keepdim=True))
        std = flat.std(dim=1, keepdim=True) if flat.shape[1] > 1 else torch.ones_like(flat)
        flat.div_(std.clamp(min=1e-12)).mul_(1.0 / math.sqrt(flat.shape[1]))
    return weight


class ScaledSiLU(nn.Module):
    """``silu(x) / 0.6``: keeps unit-variance inputs at roughly unit variance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x) * (1.0 / 0.6)


class Dense(nn.Module):
    """Linear map without bias, optionally followed by the scaled SiLU.

    Parameters
    ----------
    d_in, d_out : int
    activation : bool
    """

    def __init__(self, d_in: int, d_out: int, activation: bool = False):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=False)
        he_orthogonal_(self.linear.weight)
        self.act = ScaledSiLU() if activation else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class ResidualLayer(nn.Module):
    """``(x + Dense(Dense(x))) / sqrt(2)`` with two activated ``units x units`` layers."""

    def __init__(self, units: int):
        super().__init__()
        self.mlp = nn.Sequential(Dense(units, units, True), Dense(units, units, True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.mlp(x)) * (1.0 / math.sqrt(2.0))


def residual_stack(units: int, count: int) -> nn.Sequential:
    """``count`` residual layers of width ``units`` (identity when ``count`` is 0)."""
    return nn.Sequential(*[ResidualLayer(units) for _ in range(count)])


# --- basis embeddings ------------------------------------------------------------------------


class RadialBasisEmbedding(nn.Module):
    """Down-projection of a radial basis ``[E, R] -> [E, size]`` (no bias), shared by blocks."""

    def __init__(self, num_radial: int, size: int):
        super().__init__()
        self.weight = nn.Parameter(he_orthogonal_(torch.empty(size, num_radial)))

    def forward(self, rad: torch.Tensor) -> torch.Tensor:
        return rad @ self.weight.T


class AngularBasisEmbedding(nn.Module):
    """Joint radial x angular basis: ``W[r, l, :]`` weights products ``rad_r * ang_l``.

    The radial factor belongs to the output group (an edge), the angular factor to each
    triplet or quadruplet, so the weights are applied per group: ``forward`` returns
    ``rad_w`` [groups, size, L] with ``rad_w[g, :, l] = sum_r rad[g, r] W[r, l, :]``; the
    basis vector of an element ``t`` of group ``g`` is ``rad_w[g] @ ang[t]``.

    Parameters
    ----------
    num_radial : int
        R.
    num_angular : int
        L (``num_spherical`` for one angle, its square for two).
    size : int
        Embedding size (``emb_size_cbf`` or ``emb_size_sbf``).
    """

    def __init__(self, num_radial: int, num_angular: int, size: int):
        super().__init__()
        self.num_angular = num_angular
        self.size = size
        self.weight = nn.Parameter(torch.empty(num_radial, num_angular, size))
        he_orthogonal_(self.weight)

    def forward(self, rad: torch.Tensor) -> torch.Tensor:
        out = rad @ self.weight.reshape(self.weight.shape[0], -1)  # [G, L * size]
        return out.view(-1, self.num_angular, self.size).transpose(1, 2)  # [G, size, L]


def angle_sums(
    x: torch.Tensor, ang_atom: torch.Tensor, centre: torch.Tensor, slot: torch.Tensor
) -> torch.Tensor:
    """``out[e, l] = sum_{t = (c -> a <- b)} ang[t, l] x[b -> a]`` for every edge e = c -> a.

    The edge inputs are placed in their centre's slots ([A, K, C], E rows) and contracted
    with the per-centre angular matrices in one batched product, so no per-triplet tensor
    is built per interaction: the triplets live only in ``ang_atom``
    (:func:`~pipeline.models.gemnet_oc_graph.angles_by_centre`, once per forward). The
    radial weights of the joint basis are applied to the result per edge
    (:meth:`TripletInteraction.finish`): ``rad_w[e] @ out[e]`` is the efficient bilinear
    sum of Gasteiger et al. (2022).

    Parameters
    ----------
    x : float [E, C]
        Per-edge inputs (edge ``b -> a``).
    ang_atom : float [A, K * L, K]
    centre, slot : long [E]
        Centre of every edge and its slot there.

    Returns
    -------
    float [E, L, C]
    """
    num_atoms, width = ang_atom.shape[0], ang_atom.shape[2]
    x_atom = by_centre(x, centre, slot, num_atoms, width)  # [A, K, C]
    y = (ang_atom @ x_atom).view(num_atoms, width, -1, x.shape[1])  # [A, K, L, C]
    return y[centre, slot]  # [E, L, C]


# --- interaction layers ----------------------------------------------------------------------


def swap_add(x_ca: torch.Tensor, x_ac: torch.Tensor, rev: torch.Tensor) -> torch.Tensor:
    """``(x_ca[e] + x_ac[rev[e]]) / sqrt(2)``; the second term is 0 where ``rev[e] == -1``."""
    gathered = x_ac[rev.clamp(min=0)] * (rev >= 0).unsqueeze(-1).to(x_ac.dtype)
    return (x_ca + gathered) * (1.0 / math.sqrt(2.0))


class TripletInteraction(nn.Module):
    """Triplet message passing ``c -> a <- b`` with an efficient bilinear layer.

    The input (edge embeddings ``b -> a``, or atom embeddings of ``b`` for the
    atom-to-edge variant) is transformed, modulated by the radial basis of ``b -> a``,
    down-projected to ``trip_in`` channels and combined with the joint radial
    (``|r_ca|``) x circular (angle ``c a b``) basis in a bilinear layer to ``trip_out``
    channels. Outputs go to the edges ``c -> a`` (optionally also to the reverse edges,
    "symmetric" message passing) or, summed over the edges of each centre, to atoms.

    Parameters
    ----------
    d_in, d_out : int
        Input and output embedding sizes.
    trip_in, trip_out : int
        Down-projected sizes before and after the bilinear layer.
    rbf, cbf : int
        Sizes of the shared radial and circular basis embeddings.
    symmetric : bool
        Also update the reverse edge ``a -> c`` (separate up-projection).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        trip_in: int,
        trip_out: int,
        rbf: int,
        cbf: int,
        symmetric: bool,
    ):
        super().__init__()
        self.dense_in = Dense(d_in, d_in, True)
        self.mlp_rbf = Dense(rbf, d_in)
        self.down = Dense(d_in, trip_in, True)
        self.bilinear = Dense(cbf * trip_in, trip_out)
        self.scale_rbf = ScaleFactor()
        self.scale_sum = ScaleFactor()
        self.up_ca = Dense(trip_out, d_out, True)
        self.up_ac = Dense(trip_out, d_out, True) if symmetric else None

    def project(
        self, x: torch.Tensor, rbf: torch.Tensor, expand_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-edge inputs of the bilinear sum [E, trip_in] from ``x`` [E or A, d_in].

        ``rbf`` [E, rbf]; ``expand_index`` [E] gathers atom inputs to edges.
        """
        x = self.dense_in(x)
        if expand_index is not None:
            x = x[expand_index]  # [E, d_in]
        return self.down(self.scale_rbf(x * self.mlp_rbf(rbf), ref=x))  # [E, trip_in]

    def finish(
        self,
        sums: torch.Tensor,
        x: torch.Tensor,
        cbf: dict[str, torch.Tensor],
        rev: torch.Tensor,
        scale: float,
        to_atoms: tuple[torch.Tensor, int] | None = None,
    ) -> torch.Tensor:
        """Messages [E, d_out] (or [A, d_out] with ``to_atoms``) from the angle sums.

        ``sums`` [E, S, trip_in] (:func:`angle_sums` of ``x`` [E, trip_in]); ``cbf`` holds
        ``rad_w`` [E, cbf, S] and ``in``, a callable giving the triplets' in-edges [T];
        ``to_atoms`` = (centre of every edge [E], number of atoms).
        """
        agg = cbf["rad_w"] @ sums  # [E, cbf, trip_in]
        if to_atoms is not None:
            agg = scatter_rows(agg, to_atoms[0], to_atoms[1])  # [A, cbf, trip_in]
        # fitted against the per-triplet inputs, as the reference
        y = self.scale_sum(self.bilinear(agg.flatten(1)) * scale, ref=lambda: x[cbf["in"]()])
        if self.up_ac is None:
            return self.up_ca(y)
        return swap_add(self.up_ca(y), self.up_ac(y), rev)

    def forward(
        self,
        x: torch.Tensor,
        rbf: torch.Tensor,
        cbf: dict[str, torch.Tensor],
        rev: torch.Tensor,
        scale: float,
        expand_index: torch.Tensor | None = None,
        to_atoms: tuple[torch.Tensor, int] | None = None,
    ) -> torch.Tensor:
        """:meth:`project`, :func:`angle_sums`, :meth:`finish` (``InteractionBlock`` batches
        the middle step of its three triplet interactions)."""
        x = self.project(x, rbf, expand_index)
        sums = angle_sums(x, cbf["ang_atom"], cbf["centre"], cbf["slot"])
        return self.finish(sums, x, cbf, rev, scale, to_atoms)


class QuadrupletInteraction(nn.Module):
    """Quadruplet message passing ``c -> a <- b <- d`` (dihedral angles, eq. 10).

    Edge embeddings of ``d -> b`` are modulated by the radial basis of ``d -> b``,
    down-projected, modulated per triplet ``a <- b <- d`` by the joint radial
    (``|r_ba|``) x circular (angle ``a b d``) basis, and summed over quadruplets into
    the edge ``c -> a`` through a bilinear layer with the joint radial (``|r_ca|``) x
    spherical (angle ``c a b``, dihedral ``c a b d``) basis; symmetric output.

    Parameters
    ----------
    width : int
        Edge embedding size.
    quad_in, quad_out : int
        Down-projected sizes before and after the bilinear layer.
    rbf, cbf, sbf : int
        Shared basis embedding sizes.
    """

    def __init__(self, width: int, quad_in: int, quad_out: int, rbf: int, cbf: int, sbf: int):
        super().__init__()
        self.dense_db = Dense(width, width, True)
        self.mlp_rbf = Dense(rbf, width)
        self.mlp_cbf = Dense(cbf, quad_in)
        self.down = Dense(width, quad_in, True)
        self.bilinear = Dense(sbf * quad_in, quad_out)
        self.scale_rbf = ScaleFactor()
        self.scale_cbf = ScaleFactor()
        self.scale_sum = ScaleFactor()
        self.up_ca = Dense(quad_out, width, True)
        self.up_ac = Dense(quad_out, width, True)

    def forward(
        self,
        m: torch.Tensor,
        rbf: torch.Tensor,
        quad: dict[str, torch.Tensor] | None,
        rev: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        """Messages [E, width] from edge embeddings ``m`` [E, width]."""
        if quad is None:  # no quadruplet-graph edges: nothing to sum
            return torch.zeros_like(m)
        x = self.dense_db(m)
        x = self.down(self.scale_rbf(x * self.mlp_rbf(rbf), ref=x))  # [E, quad_in]
        # per triplet a <- b <- d in the padded layout [A, Kq, Kq, quad_in]; the scale
        # factors are fitted on the triplets only (rows ``in_ok``)
        x_db = x[quad["db_edge"]]
        rows = quad["in_ok"]
        x_t = self.scale_cbf(x_db * self.mlp_cbf(quad["cbf"]), ref=lambda: x_db[rows], rows=rows)
        y = quadruplet_sum(x_t, quad, self.bilinear.linear.weight) * scale  # [E, quad_out]
        y = self.scale_sum(y, ref=lambda: x_t[rows])  # [E, quad_out]
        return swap_add(self.up_ca(y), self.up_ac(y), rev)
