"""eSEN layers: radial MLPs, the edge gate, the equivariant norm and the atom-wise feed-forwards.

See :mod:`pipeline.models.esen`.

``GateFeedForward`` is exactly equivariant; ``GridFeedForward`` is eSEN's MLP applied
pointwise on an S2 grid, as in the reference implementation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3
from torch import nn

from pipeline.models.so3 import Float64Constants


class RadialMLP(nn.Module):
    """Linear -> LayerNorm -> SiLU for each hidden size, then a final Linear."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(1, len(sizes)):
            layers.append(nn.Linear(sizes[i - 1], sizes[i]))
            if i < len(sizes) - 1:
                layers += [nn.LayerNorm(sizes[i]), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _layer_norm(h: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis without affine; spelled out below 8 features,
    where ATen's fused kernel is ~2x slower (measured on [2, 7596, 3-4], forward and
    backward)."""
    if h.shape[-1] >= 8:
        return nn.functional.layer_norm(h, h.shape[-1:], eps=eps)
    centred = h - h.mean(dim=-1, keepdim=True)
    return centred * torch.rsqrt(centred.square().mean(dim=-1, keepdim=True) + eps)


def stacked_radial(
    mlps: list[RadialMLP], x: torch.Tensor, out_index: torch.Tensor | None = None
) -> torch.Tensor:
    """Several :class:`RadialMLP` of equal sizes applied to the same input at once.

    The first layers of all MLPs are one matrix product, the later ones one
    batched product each, so ``L`` MLPs cost about as many kernels as one (eSEN's
    blocks all read the same edge features). Same values as calling each MLP, up
    to rounding.

    Parameters
    ----------
    mlps : list of RadialMLP
        ``L`` MLPs with the same sizes.
    x : Tensor [E, F]
    out_index : long Tensor [R'], optional
        Output columns to return (repeats allowed), e.g. to expand per-order radial
        weights to every row they multiply; selected from the last layer's weights,
        so no [E, R'] copy is made. Default: all ``R`` columns.

    Returns
    -------
    Tensor [L, E, R']
    """
    layers = [[m for m in mlp.net if not isinstance(m, nn.SiLU)] for mlp in mlps]
    first = [lay[0] for lay in layers]
    h = nn.functional.linear(
        x, torch.cat([f.weight for f in first]), torch.cat([f.bias for f in first])
    )
    h = h.view(x.shape[0], len(mlps), first[0].out_features).transpose(0, 1)  # [L, E, hidden]
    for i in range(1, len(layers[0]), 2):  # (LayerNorm, Linear) pairs
        norm = layers[0][i]
        weight = torch.stack([lay[i].weight for lay in layers])[:, None]  # [L, 1, hidden]
        bias = torch.stack([lay[i].bias for lay in layers])[:, None]
        h = nn.functional.silu(_layer_norm(h, norm.eps) * weight + bias)
        weight = torch.stack([lay[i + 1].weight for lay in layers])  # [L, out, in]
        bias = torch.stack([lay[i + 1].bias for lay in layers])  # [L, out]
        if i + 2 == len(layers[0]) and out_index is not None:
            weight, bias = weight.index_select(1, out_index), bias.index_select(1, out_index)
        h = torch.baddbmm(bias[:, None], h, weight.transpose(1, 2))  # [L, E, out]
    if len(layers[0]) == 1 and out_index is not None:
        h = h.index_select(2, out_index)
    return h


class GateFeedForward(nn.Module):
    """Atom-wise feed-forward ``C -> H -> H -> C`` on spherical features, exactly equivariant.

    The three channel maps have no bias and are shared by every (l, m)
    coefficient, as the S2-grid MLP of eSEN is; between them a gated
    nonlinearity (SiLU on ``l = 0``, ``l > 0`` scaled by the sigmoid of the same
    channel's ``l = 0`` value) replaces the pointwise nonlinearity on the sphere,
    which a finite grid makes equivariant only approximately.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(channels, hidden, bias=False)
        self.lin2 = nn.Linear(hidden, hidden, bias=False)
        self.lin3 = nn.Linear(hidden, channels, bias=False)

    @staticmethod
    def _gate(h: torch.Tensor) -> torch.Tensor:
        s, rest = h.split([1, h.shape[1] - 1], dim=1)
        return torch.cat((nn.functional.silu(s), rest * torch.sigmoid(s)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [A, S, C] -> [A, S, C]."""
        return self.lin3(self._gate(self.lin2(self._gate(self.lin1(x)))))


class GridFeedForward(Float64Constants):
    """eSEN's atom-wise MLP ``C -> H -> H -> C`` (SiLU) applied pointwise on an S2 grid.

    Features are evaluated on a Gauss-Legendre (polar, about y) x uniform
    (azimuth) grid, passed through the MLP and projected back by quadrature.
    With ``resolution >= lmax + 1`` polar points the quadrature integrates
    products of two degree-``lmax`` signals exactly, so the round trip
    ``from_grid(to_grid(x))`` is the identity; the MLP's output is not band
    limited, so the layer is equivariant only up to the grid's aliasing error.
    """

    def __init__(self, channels: int, hidden: int, lmax: int, resolution: int | None):
        super().__init__()
        n_polar = 2 * (lmax + 1) if resolution is None else resolution
        if n_polar < lmax + 1:
            raise ValueError(
                f"ESEN: grid_resolution must be >= lmax + 1 = {lmax + 1} polar points "
                f"(exact round trip to the grid), got {n_polar}"
            )
        n_azim = 2 * n_polar
        nodes, weights = gauss_legendre(n_polar)
        phi = torch.arange(n_azim, dtype=torch.float64) * (2 * math.pi / n_azim)
        cos_t = nodes[:, None].expand(n_polar, n_azim)
        sin_t = torch.sqrt(1 - cos_t**2)
        points = torch.stack(
            (sin_t * torch.cos(phi), cos_t, sin_t * torch.sin(phi)), dim=-1
        ).reshape(-1, 3)
        w = (weights[:, None] * (2 * math.pi / n_azim)).expand(n_polar, n_azim).reshape(-1)
        # integral normalisation (e3nn's default, as eSEN's grid): the integral over the
        # sphere of Y_i Y_j is delta_ij, and the quadrature weights sum to 4 pi, so
        # from_grid @ to_grid is the identity on degrees <= lmax (exact quadrature)
        y = o3.spherical_harmonics(
            list(range(lmax + 1)), points, normalize=False, normalization="integral"
        )  # [G, S]
        self.set_constants(to_grid=y, from_grid=(y * w[:, None]).T.contiguous())
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.SiLU(),
            nn.Linear(hidden, hidden, bias=False),
            nn.SiLU(),
            nn.Linear(hidden, channels, bias=False),
        )

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Values on the grid of the signals with coefficients ``x`` [A, S, C] -> [A, G, C]."""
        return torch.matmul(self.const("to_grid", x), x)

    def from_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """Coefficients (quadrature projection) of grid values ``grid`` [A, G, C] -> [A, S, C]."""
        return torch.matmul(self.const("from_grid", grid), grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [A, S, C] -> [A, S, C]."""
        return self.from_grid(self.mlp(self.to_grid(x)))


class EdgeGate(nn.Module):
    """Gated nonlinearity on order-grouped edge features (see :class:`SO2Convolution`).

    The ``l = 0`` coefficient goes through SiLU; every coefficient of degree
    ``l > 0`` is multiplied by ``sigmoid`` of a gating scalar for its degree and
    channel (invariant under rotations about the edge axis). One sigmoid for all
    rows, one product per order group.

    Parameters
    ----------
    lmax, mmax : int
        Layout of the edge features.
    """

    def __init__(self, lmax: int, mmax: int):
        super().__init__()
        self.lmax = lmax
        self.mmax = mmax

    def forward(self, gates: torch.Tensor, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``gates`` [E, lmax*C], ``xs`` per order group [E, rows*C] -> same shapes."""
        num_edges, n0 = gates.shape[0], self.lmax + 1
        channels = gates.shape[1] // self.lmax
        # silu(s) = s sigmoid(s): degree 0 is gated by itself, degree l by gate l
        logits = torch.cat((xs[0][:, :channels], gates), dim=1).view(num_edges, n0, channels)
        sig = torch.sigmoid(logits)  # [E, lmax+1, C]
        out = [(xs[0].view(num_edges, n0, channels) * sig).view(num_edges, n0 * channels)]
        for m in range(1, self.mmax + 1):  # rows of degrees m..lmax, for +m and for -m
            x = xs[m].view(num_edges, 2, n0 - m, channels) * sig[:, None, m:]
            out.append(x.view(num_edges, 2 * (n0 - m) * channels))
        return out


class EquivariantRMSNorm(nn.Module):
    """Layer norm for spherical-harmonic features ``[N, (lmax+1)**2, C]``.

    Centres the ``l = 0`` channels, divides every coefficient by one RMS per
    node (each degree weighted equally: mean over its ``2l+1`` orders, then over
    degrees and channels), scales by a learned weight per (degree, channel) and
    adds a learned bias to ``l = 0``. Rotation equivariant because the RMS of each
    degree is invariant. Parameters: ``(lmax+1) C + C``.
    """

    def __init__(self, lmax: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(lmax + 1, channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        degree = torch.cat([torch.full((2 * ell + 1,), ell) for ell in range(lmax + 1)])
        balance = torch.cat(
            [
                torch.full((2 * ell + 1,), 1.0 / ((2 * ell + 1) * (lmax + 1)))
                for ell in range(lmax + 1)
            ]
        )
        self.register_buffer("degree", degree)
        self.register_buffer("balance", balance)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [N, S, C] -> [N, S, C]."""
        x0 = x[:, :1] - x[:, :1].mean(dim=2, keepdim=True)
        x = torch.cat((x0, x[:, 1:]), dim=1)
        ms = torch.einsum("nsc,s->n", x * x, self.balance) / x.shape[2]  # [N]
        scale = torch.rsqrt(ms + self.eps)[:, None, None]
        out = x * scale * self.weight.index_select(0, self.degree)[None]
        return torch.cat((out[:, :1] + self.bias, out[:, 1:]), dim=1)


def gauss_legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [-1, 1] (float64)."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy(nodes), torch.from_numpy(weights)


__all__ = [
    "EdgeGate",
    "EquivariantRMSNorm",
    "GateFeedForward",
    "GridFeedForward",
    "RadialMLP",
    "gauss_legendre",
    "stacked_radial",
]
