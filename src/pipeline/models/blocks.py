"""Building blocks shared by the models: radial bases, envelopes, MLPs, aggregation.

Everything here is plain torch and works in float32 and float64. Shapes use ``A``
for atoms, ``E`` for edges and ``M`` for molecules.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "MLP",
    "GaussianBasis",
    "PolynomialEnvelope",
    "centred_positions",
    "edge_vectors",
    "random_orthogonal",
    "random_rotation",
    "scatter_mean",
    "scatter_sum",
    "weighted_mean",
]


def edge_vectors(positions: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """Relative vectors ``r_uv = x_u - x_v`` of every edge.

    Parameters
    ----------
    positions : float [A, 3]
        Angstrom.
    edge_index : long [2, E]
        Row 0 the neighbour u, row 1 the centre v.

    Returns
    -------
    float [E, 3]
        Angstrom.
    """
    return positions[edge_index[0]] - positions[edge_index[1]]


def centred_positions(
    positions: torch.Tensor, batch: torch.Tensor, num_molecules: int
) -> torch.Tensor:
    """Positions relative to their molecule's centroid, ``x_v - mean_{u in mol(v)} x_u``.

    Translation invariant (exactly, up to rounding of the inputs) and rotation
    equivariant. Models that use positions themselves, not only differences, take
    these: in float32 a molecule 1000 Angstrom from the origin would otherwise carry
    only ~1e-4 Angstrom of resolution (the float32 spacing at 1000 is 6e-5) through
    every sum of small updates onto large coordinates.

    Parameters
    ----------
    positions : float [A, 3]
        Angstrom.
    batch : long [A]
        Molecule of each atom.
    num_molecules : int
        M.

    Returns
    -------
    float [A, 3]
        Angstrom, each molecule's centroid at the origin.

    Notes
    -----
    Computed as ``d - mean(d)`` with ``d = x - x_first`` relative to the molecule's
    first atom: differences of nearby coordinates are exact in floating point, so no
    rounding of the large absolute coordinates enters (a plain float32 mean of
    coordinates near 1000 Angstrom is off by ~1e-4 Angstrom, which moved the
    transformer's outputs by 2.6e-5 relative).
    """
    n_atoms = positions.shape[0]
    if n_atoms == 0:
        return positions
    first = torch.full((num_molecules,), n_atoms - 1, dtype=torch.long, device=batch.device)
    first = first.scatter_reduce(0, batch, torch.arange(n_atoms, device=batch.device), "amin")
    relative = positions - positions[first][batch]  # [A, 3], exact for nearby atoms
    return relative - scatter_mean(relative, batch, num_molecules)[batch]


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` [N, ...] into ``dim_size`` bins given by ``index`` [N]."""
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add_(0, index, src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Mean of rows of ``src`` [N, ...] per bin of ``index`` [N]; empty bins give 0."""
    total = scatter_sum(src, index, dim_size)
    count = torch.bincount(index, minlength=dim_size).clamp(min=1).to(src.dtype)
    return total / count.view(-1, *([1] * (src.dim() - 1)))


def weighted_mean(
    src: torch.Tensor, weight: torch.Tensor, index: torch.Tensor, dim_size: int
) -> torch.Tensor:
    """Envelope-weighted neighbour mean, continuous when neighbours cross the cutoff.

    ``out_v = sum_u w_uv src_uv / max(sum_u w_uv, 1)``. With all weights 1 this is
    the mean of eq. (8). Because each weight goes smoothly to 0 at the cutoff, a
    neighbour entering or leaving changes the output continuously (a plain count
    would jump). Atoms whose soft neighbour count is below 1 get the weighted sum,
    so an atom without neighbours gets exactly 0.

    Parameters
    ----------
    src : float [E, ...]
        Per-edge values (messages).
    weight : float [E]
        Per-edge weights in [0, 1] (the cutoff envelope).
    index : long [E]
        Centre atom v of every edge.
    dim_size : int
        Number of atoms A.

    Returns
    -------
    float [A, ...]
    """
    shape = (-1, *([1] * (src.dim() - 1)))
    total = scatter_sum(src * weight.view(shape), index, dim_size)
    norm = scatter_sum(weight, index, dim_size).clamp(min=1.0)
    return total / norm.view(shape)


class GaussianBasis(nn.Module):
    """Gaussian radial basis ``exp(-(d - mu_k)^2 / (2 sigma^2))``.

    Parameters
    ----------
    num : int
        Number of Gaussians K.
    start, stop : float
        Angstrom; centres ``mu_k`` are ``linspace(start, stop, K)``.
    width : float or None
        Angstrom; ``sigma``. Default: the spacing between centres.
    """

    def __init__(self, num: int, start: float, stop: float, width: float | None = None):
        super().__init__()
        if num < 1:
            raise ValueError(f"GaussianBasis: num must be >= 1, got {num}")
        if not stop > start:
            raise ValueError(f"GaussianBasis: need stop > start, got start={start}, stop={stop}")
        centres = torch.linspace(start, stop, num, dtype=torch.float64)
        spacing = (stop - start) / max(num - 1, 1)
        sigma = spacing if width is None else width
        if sigma <= 0:
            raise ValueError(f"GaussianBasis: width must be > 0, got {sigma}")
        self.num = num
        self.register_buffer("centres", centres.float())  # [K]
        self.coeff = -0.5 / sigma**2

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """``distance`` float [E] (Angstrom) -> float [E, K].

        The exponent is clamped at -80 (values below 2e-35): exp of large negative
        numbers gives float32 subnormals, which make the following matrix products
        many times slower on CPU. The clamp is continuous.
        """
        diff = distance.unsqueeze(-1) - self.centres.to(distance.dtype)
        return torch.exp((self.coeff * diff.square()).clamp(min=-80.0))


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff ``u(d)`` of Klicpera et al. (2020): 1 at 0, 0 at the cutoff.

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)`` for
    ``x = d / cutoff < 1`` and 0 beyond; value and first two derivatives vanish at
    the cutoff, so anything multiplied by it is continuous when an atom crosses it.

    Parameters
    ----------
    cutoff : float
        Angstrom.
    exponent : int
        p, default 5.
    """

    def __init__(self, cutoff: float, exponent: int = 5):
        super().__init__()
        if cutoff <= 0:
            raise ValueError(f"PolynomialEnvelope: cutoff must be > 0 Angstrom, got {cutoff}")
        if exponent < 1:
            raise ValueError(f"PolynomialEnvelope: exponent must be >= 1, got {exponent}")
        self.cutoff = float(cutoff)
        p = exponent
        self.p = p
        self.a = -(p + 1) * (p + 2) / 2
        self.b = p * (p + 2)
        self.c = -p * (p + 1) / 2

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """``distance`` float [E] (Angstrom) -> float [E] in [0, 1]."""
        x = (distance / self.cutoff).clamp(max=1.0)
        xp = x.pow(self.p)
        u = 1.0 + xp * (self.a + x * (self.b + self.c * x))
        return torch.where(distance < self.cutoff, u, torch.zeros_like(u))


class MLP(nn.Sequential):
    """Linear layers with an activation between them (none after the last).

    Parameters
    ----------
    dims : sequence of int
        ``[in, hidden..., out]``; at least two entries.
    activation : type of nn.Module
        Default ``nn.SiLU``.
    bias : bool
        Biases on every linear layer.
    """

    def __init__(
        self, dims: Sequence[int], activation: type[nn.Module] = nn.SiLU, bias: bool = True
    ):
        dims = list(dims)
        if len(dims) < 2 or min(dims) < 1:
            raise ValueError(f"MLP: dims must list >= 2 positive sizes, got {dims}")
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out, bias=bias))
            if i < len(dims) - 2:
                layers.append(activation())
        super().__init__(*layers)


def random_rotation(
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """A Haar-random proper rotation matrix [3, 3] (det +1), for tests."""
    q = random_orthogonal(generator, dtype)
    if torch.linalg.det(q) < 0:
        q = q.clone()
        q[:, 0] = -q[:, 0]
    return q


def random_orthogonal(
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """A Haar-random orthogonal matrix [3, 3] (det +1 or -1), for tests.

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q.
    """
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(dtype)


def check_atomic_numbers(
    atomic_numbers: torch.Tensor, lowest: int, highest: int, model: str, table: str
) -> None:
    """Raise ``ValueError`` unless every atomic number lies in ``lowest..highest``.

    An embedding lookup out of range would raise an opaque index error (or, on a GPU,
    an asynchronous device assert); this names the model and its table size instead.
    """
    if atomic_numbers.numel() == 0:
        return
    low, high = int(atomic_numbers.min()), int(atomic_numbers.max())
    if low < lowest or high > highest:
        raise ValueError(
            f"{model}: atomic numbers {low}..{high} outside {lowest}..{highest} "
            f"({table} = {highest + 1 - lowest} embedding rows)"
        )
