"""SO(3) machinery for eSEN: edge-aligned frames, Wigner-D matrices and SO(2) convolutions.

Conventions follow e3nn: node features are real spherical-harmonic coefficients
stored as ``[N, (lmax+1)**2, C]`` with the coefficient of degree ``l`` and order
``m`` at index ``l*l + l + m``. The ``l = 1`` block is ordered (x, y, z), so
``D_1(R) = R``, and the polar axis of the spherical harmonics is y: a rotation
about y mixes only the pair of orders ``(m, -m)`` of each degree, by the same
angle ``m * phi`` for every degree. This is what makes the SO(2) convolution of
the paper's eq. (21)-(22) exact: in the frame where the edge points along +y,
the convolution is a complex multiplication per order ``m``, which commutes with
the remaining freedom of the frame (a rotation about y).

Edge features in the rotated frame are kept in an "m-major" layout restricted to
``|m| <= mmax``: first the ``m = 0`` coefficients of degrees ``0..lmax``, then,
for ``m = 1..mmax``, the ``+m`` coefficients of degrees ``m..lmax`` followed by
the ``-m`` coefficients of the same degrees. :func:`m_major_index` gives the
e3nn index of each row.

Wigner-D matrices are not built from Euler angles (slow and singular at the
poles) but exactly from spherical harmonics: for a fixed set of unit vectors
``P`` and a rotation ``R``, ``Y_l(R p) = D_l(R) Y_l(p)``, so
``D_l(R)^T = pinv(Y_l(P)) Y_l(P R^T)``, one small matrix product per edge once
the pseudo-inverse is precomputed. The identity is exact (no fit) as long as
``Y_l(P)`` has full column rank, which the constructor checks.
"""

from __future__ import annotations

import logging
import math

import torch
from e3nn import o3
from torch import nn

logger = logging.getLogger(__name__)

_Y_AXIS = 1  # e3nn's polar axis: spherical harmonics with m != 0 vanish on +/- y


def m_major_index(lmax: int, mmax: int) -> list[tuple[int, int]]:
    """(l, m) of each row of the m-major layout with ``|m| <= mmax``.

    Parameters
    ----------
    lmax, mmax : int
        Largest degree and largest order kept (``0 <= mmax <= lmax``).

    Returns
    -------
    list of (int, int)
        ``(l, m)`` per row; the e3nn index of a row is ``l*l + l + m``.
    """
    if not 0 <= mmax <= lmax:
        raise ValueError(f"need 0 <= mmax <= lmax, got lmax={lmax}, mmax={mmax}")
    rows = [(ell, 0) for ell in range(lmax + 1)]
    for m in range(1, mmax + 1):
        rows += [(ell, m) for ell in range(m, lmax + 1)]
        rows += [(ell, -m) for ell in range(m, lmax + 1)]
    return rows


def safe_norm(vec: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean norm over the last axis with a finite gradient at zero.

    Parameters
    ----------
    vec : Tensor [..., 3]
    eps : float
        Floor on the squared norm (so the norm is at least ``sqrt(eps)``).

    Returns
    -------
    Tensor [...]
    """
    return torch.sqrt(torch.clamp((vec * vec).sum(-1), min=eps))


def edge_frames(r_uv: torch.Tensor) -> torch.Tensor:
    """Rotation matrices that map each edge direction onto +y.

    The rotation is fixed only up to a rotation about y; the SO(2) convolution
    does not depend on that choice, so a discontinuous choice of the helper axis
    is harmless. The helper axis is x unless the edge is within ~41 degrees of x,
    then z, so the cross product below never has a norm under 0.66: values and
    gradients stay finite for edges along any axis. Edges down to ~1e-15 Angstrom
    are normalised exactly; a zero-length edge gives a finite (degenerate) matrix
    rather than NaN.

    Parameters
    ----------
    r_uv : Tensor [E, 3]
        Edge vectors x_u - x_v (Angstrom).

    Returns
    -------
    Tensor [E, 3, 3]
        ``R`` with ``R @ r_uv / |r_uv| = (0, 1, 0)`` and ``det R = +1``.
    """
    unit = r_uv / safe_norm(r_uv, eps=1e-30).unsqueeze(-1)  # [E, 3]; 1e-30 is float32-safe
    use_z = unit[:, 0].abs() > 0.75
    helper = torch.zeros_like(unit)
    helper[:, 0] = (~use_z).to(unit.dtype)
    helper[:, 2] = use_z.to(unit.dtype)
    e1 = torch.linalg.cross(helper, unit)
    e1 = e1 / safe_norm(e1).unsqueeze(-1)
    e3 = torch.linalg.cross(e1, unit)
    return torch.stack((e1, unit, e3), dim=-2)  # rows: e1, r_hat, e1 x r_hat


def _fibonacci_sphere(n: int) -> torch.Tensor:
    """``n`` well spread unit vectors [n, 3] (float64), deterministic."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    cos_t = 1.0 - 2.0 * i / n
    sin_t = torch.sqrt(1.0 - cos_t**2)
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    return torch.stack((sin_t * torch.cos(phi), cos_t, sin_t * torch.sin(phi)), dim=-1)


class Float64Constants(nn.Module):
    """Module base keeping fixed float64 tables outside ``state_dict`` and ``.to()``.

    Buffers follow ``model.float()``; a float32 round trip would then cost the
    tables (Wigner pseudo-inverses, grids) their float64 precision and break exact
    equivariance in float64. Tables set with :meth:`set_constants` stay float64
    on the CPU, and :meth:`const` returns a copy cast to the dtype and device of a
    given tensor, cached.
    """

    def set_constants(self, **tables: torch.Tensor) -> None:
        self._masters = {k: v.to(torch.float64) for k, v in tables.items()}
        self._cache: dict = {}

    def const(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = self._masters[name].to(dtype=like.dtype, device=like.device)
        return self._cache[key]


def _conditions(lmax: int, num_points: int) -> list[float]:
    """Condition number of Y_l at the Fibonacci points, per degree l."""
    y = o3.spherical_harmonics(list(range(lmax + 1)), _fibonacci_sphere(num_points), False)
    return [torch.linalg.cond(y[:, e * e : (e + 1) ** 2]).item() for e in range(lmax + 1)]


class WignerFromPoints(Float64Constants):
    """Rows of block-diagonal Wigner-D matrices ``D(R)`` for a batch of rotations.

    Parameters
    ----------
    lmax : int
        Largest degree.
    rows : list of (int, int)
        The ``(l, m)`` rows of ``D`` to return (e.g. :func:`m_major_index`).
    num_points : int, optional
        Number of fixed unit vectors used to pin down ``D_l``; at least
        ``2*lmax + 1``. Default: the fewest from ``2*lmax + 1`` on whose blocks
        ``Y_l(P)`` all have condition numbers under 50 (9 for lmax 4).

    Notes
    -----
    ``forward(R)`` returns ``[E, len(rows), (lmax+1)**2]`` with
    ``out[e, k, j] = D(R_e)[l_k*l_k + l_k + m_k, j]``; applying it to node
    features ``[E, (lmax+1)**2, C]`` gives the features in the rotated frame,
    restricted to ``rows``, and its transpose rotates them back.
    """

    def __init__(self, lmax: int, rows: list[tuple[int, int]], num_points: int | None = None):
        super().__init__()
        if num_points is None:  # fewest Fibonacci points with well-conditioned blocks
            num_points = 2 * lmax + 1
            while max(_conditions(lmax, num_points)) > 50.0 and num_points < 4 * lmax + 8:
                num_points += 1
        if num_points < 2 * lmax + 1:
            raise ValueError(f"num_points={num_points} < 2*lmax+1={2 * lmax + 1}")
        self.lmax = lmax
        points = _fibonacci_sphere(num_points)
        y = o3.spherical_harmonics(list(range(lmax + 1)), points, normalize=False)
        conds = _conditions(lmax, num_points)
        if max(conds) > 1e6:
            raise ValueError(
                f"spherical harmonics up to degree {lmax} at {num_points} points are "
                f"ill-conditioned (condition numbers {conds}); use more points"
            )
        # per degree, the left inverse of Y_l(P): [2l+1, Np]
        pinvs = [torch.linalg.pinv(y[:, e * e : (e + 1) ** 2]) for e in range(lmax + 1)]
        for ell, m in rows:
            if abs(m) > ell or ell > lmax:
                raise ValueError(f"row (l={ell}, m={m}) is not a valid coefficient for lmax={lmax}")
        size = (lmax + 1) ** 2
        # pinv_all[p, j] = pinv_l(j)[j - l*l, p]: one matmul gives every block of D at once,
        # plus cross-degree junk that `mask` (row degree == column degree) removes
        pinv_all = torch.cat([pinvs[ell].T for ell in range(lmax + 1)], dim=1)  # [Np, S]
        degree = torch.cat([torch.full((2 * ell + 1,), ell) for ell in range(lmax + 1)])
        mask = (torch.tensor([e for e, _ in rows])[:, None] == degree[None, :]).to(torch.float64)
        self.register_buffer("sh_index", torch.tensor([e * e + e + m for e, m in rows]))
        self.set_constants(points=points, pinv_all=pinv_all, mask=mask)
        self.size = size

    def forward(self, rot: torch.Tensor) -> torch.Tensor:
        """Wigner-D rows for rotations ``rot`` [E, 3, 3] -> [E, K, (lmax+1)**2]."""
        num_edges = rot.shape[0]
        rotated = torch.einsum("pj,eij->epi", self.const("points", rot), rot)  # R p, [E, Np, 3]
        sh = o3.spherical_harmonics(list(range(self.lmax + 1)), rotated, normalize=False)
        sh = sh.transpose(1, 2).index_select(1, self.sh_index)  # Y_k(R p), [E, K, Np]
        d = (sh.reshape(-1, sh.shape[2]) @ self.const("pinv_all", rot)).view(
            num_edges, sh.shape[1], self.size
        )
        return d * self.const("mask", rot)


#: Fewest multiply-adds per matrix (rows x inner x columns) that the per-edge rotations
#: are padded to. ATen multiplies batched matrices under 400 in a plain loop, 2-4x
#: slower per matrix than its BLAS path; 600 gives c = 8 for the [E, 9, 9] x [E, 9, c]
#: rotations of lmax 2, as fast per product as c = 5-6 (measured) and with row widths
#: that the SO(2) maps' matmuls multiply 2-3x faster than 10- or 15-wide ones
_BMM_BLAS_MIN_MACS = 600


def blas_channels(rows: int, inner: int, channels: int) -> int:
    """Fewest channels ``c >= channels`` with ``rows * inner * c >= _BMM_BLAS_MIN_MACS``:
    the zero-padded width of per-edge ``[rows, inner] @ [inner, c]`` products."""
    return max(channels, -(-_BMM_BLAS_MIN_MACS // (rows * inner)))


class SO2Convolution(nn.Module):
    """SO(2) linear map of the paper's eq. (21)-(22) on m-major edge features.

    For each order ``m`` the map mixes all degrees and channels: ``m = 0`` is a
    real linear map (with bias), and each ``m > 0`` a complex one,
    ``y_{+m} = W_m x_{+m} - W_{-m} x_{-m}``, ``y_{-m} = W_{-m} x_{+m} + W_m x_{-m}``,
    which commutes with rotations about the edge axis. The inputs may be scaled
    per edge by invariant radial weights, shared by ``+m`` and ``-m``.

    Features travel flat, ``[E, K * channels]`` for the ``K`` rows of
    :func:`m_major_index` (row-major: row, then channel). The rows of order group
    0 are the ``lmax+1`` coefficients of ``m = 0``; those of group ``m`` the
    ``2 (lmax+1-m)`` coefficients of ``+m`` then ``-m``. Each group is a strided
    view of the flat input (no copy); one matrix product per group; the outputs stay
    per group (a concatenation costs more than the per-group gate, measured).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels per coefficient on input and output.
    lmax, mmax : int
        Degrees and orders of the m-major layout.
    extra_m0_channels : int, optional
        Extra invariant outputs of the ``m = 0`` map (gating scalars), returned
        separately. Default 0.

    Notes
    -----
    Parameters: ``(lmax+1) in ((lmax+1) out + extra)`` weights plus
    ``(lmax+1) out + extra`` biases for ``m = 0``; ``2 (lmax+1-m)^2 in out``
    weights (real and imaginary parts) for each ``m > 0``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        lmax: int,
        mmax: int,
        *,
        extra_m0_channels: int = 0,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.lmax = lmax
        self.mmax = mmax
        self.extra_m0_channels = extra_m0_channels
        n0 = lmax + 1
        self.fc_m0 = nn.Linear(n0 * in_channels, n0 * out_channels + extra_m0_channels)
        self.fc_m = nn.ModuleList()
        for m in range(1, mmax + 1):
            n = lmax + 1 - m
            # rows [:n out] hold W_m (real part), rows [n out:] W_-m (imaginary part)
            fc = nn.Linear(n * in_channels, 2 * n * out_channels, bias=False)
            with torch.no_grad():
                fc.weight.mul_(1.0 / math.sqrt(2.0))  # two terms add up per output
            self.fc_m.append(fc)
        #: coefficient rows of each order group, and radial weights each group takes
        self.group_rows = [n0] + [2 * (lmax + 1 - m) for m in range(1, mmax + 1)]
        self.radial_sizes = [(lmax + 1 - m) * in_channels for m in range(mmax + 1)]
        self.radial_size = sum(self.radial_sizes)
        # column of the radial weights that multiplies each flat input column (+m and -m
        # rows share those of order m): radial.index_select(1, radial_index) expands them
        starts = [sum(self.radial_sizes[:m]) for m in range(mmax + 1)]
        index = [torch.arange(starts[0], starts[0] + self.radial_sizes[0])]
        for m in range(1, mmax + 1):
            index += [torch.arange(starts[m], starts[m] + self.radial_sizes[m])] * 2
        self.register_buffer("radial_index", torch.cat(index), persistent=False)

    def radial_columns(self, pad_in_channels: int = 0) -> torch.Tensor:
        """Radial column [K * max(in, pad_in_channels)] multiplying each flat input column.

        Padded input channels (exactly zero) take column 0: any weight times zero is zero.
        """
        index = self.radial_index
        grow = pad_in_channels - self.in_channels
        if grow > 0:
            index = index.view(-1, self.in_channels)
            index = torch.cat((index, index.new_zeros(len(index), grow)), dim=1).flatten()
        return index

    def _weights(self, pad_in: int, pad_out: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per order group the weight [out_g, in_g] of its flat map (complex for m > 0)
        and the m = 0 bias, with zero channels added to reach ``pad_in`` inputs and
        ``pad_out`` outputs per row."""
        weights = [self.fc_m0.weight]
        for fc in self.fc_m:
            w_re, w_im = fc.weight.chunk(2, dim=0)
            # [y+, y-] = [[W_m, -W_-m], [W_-m, W_m]] [x+, x-]
            weights.append(torch.cat((torch.cat((w_re, -w_im), 1), torch.cat((w_im, w_re), 1))))
        bias = self.fc_m0.bias

        def padded(w: torch.Tensor, rows: int, old: int, new: int, dim: int) -> torch.Tensor:
            shape = list(w.shape)
            w = w.unflatten(dim, (rows, old))
            zeros = list(w.shape)
            zeros[dim + 1] = new - old
            w = torch.cat((w, w.new_zeros(zeros)), dim=dim + 1)
            shape[dim] = rows * new
            return w.reshape(shape)

        extra = self.extra_m0_channels
        if pad_out > self.out_channels:
            out, rows = self.out_channels, self.group_rows
            weights = [
                torch.cat(
                    (weights[0][:extra], padded(weights[0][extra:], rows[0], out, pad_out, 0))
                )
            ] + [padded(w, r, out, pad_out, 0) for w, r in zip(weights[1:], rows[1:], strict=True)]
            bias = torch.cat((bias[:extra], padded(bias[extra:], rows[0], out, pad_out, 0)))
        if pad_in > self.in_channels:
            weights = [
                padded(w, r, self.in_channels, pad_in, 1)
                for w, r in zip(weights, self.group_rows, strict=True)
            ]
        return weights, bias

    def forward(
        self,
        x: torch.Tensor | list[torch.Tensor],
        radial: torch.Tensor | None = None,
        *,
        pad_in_channels: int = 0,
        pad_out_channels: int = 0,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Apply the convolution.

        Parameters
        ----------
        x : Tensor [E, K * in_channels], or list of Tensor [E, group_rows[g] * in_channels]
            Flat m-major edge features (``K = sum(group_rows)``), or one per order group.
        radial : Tensor [E, radial_size] or [E, K * in_channels], optional
            Invariant per-edge weights multiplying the inputs, per order group
            ``radial_sizes[g]`` columns (degree-major, then channel); or already
            expanded to every input column (``radial[:, radial_index]``).
            With ``pad_in_channels``: ``radial[:, radial_columns(pad_in_channels)]``.
        pad_in_channels : int, optional
            Channels per input row, if ``x`` carries zero channels after the
            ``in_channels`` real ones (as the rotation in multiplies fastest).
        pad_out_channels : int, optional
            Give each output row this many channels, the extra ones exactly zero
            (a layout the rotation back multiplies fastest); default: no padding.

        Returns
        -------
        ys : list of Tensor [E, group_rows[g] * max(out_channels, pad_out_channels)]
            Per order group; ``torch.cat(ys, 1)`` is the flat layout.
        extra : Tensor [E, extra_m0_channels] or None
        """
        in_channels = max(self.in_channels, pad_in_channels)
        if isinstance(x, list) and radial is None:
            groups = x  # no concatenation to split again
        else:
            if isinstance(x, list):
                x = torch.cat(x, dim=1)
            if radial is not None:  # +m and -m rows share the radial weights of order m
                if radial.shape[1] != x.shape[1]:
                    radial = radial.index_select(1, self.radial_columns(pad_in_channels))
                x = x * radial
            groups = x.split([rows * in_channels for rows in self.group_rows], dim=1)
        weights, bias = self._weights(pad_in_channels, pad_out_channels)
        y0 = nn.functional.linear(groups[0], weights[0], bias)
        ys = [g @ w.T for g, w in zip(groups[1:], weights[1:], strict=True)]
        extra = None
        if self.extra_m0_channels:
            extra, y0 = y0.split([self.extra_m0_channels, y0.shape[1] - self.extra_m0_channels], 1)
        return [y0, *ys], extra


__all__ = [
    "blas_channels",
    "Float64Constants",
    "SO2Convolution",
    "WignerFromPoints",
    "edge_frames",
    "m_major_index",
    "safe_norm",
]
