"""Random rotations (Haar measure on SO(3)) for augmentation and symmetry losses."""

from __future__ import annotations

import torch


def random_rotations(
    count: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``count`` rotation matrices drawn uniformly from SO(3): (count, 3, 3).

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q gives the Haar
    measure on O(3); flipping one column where det = -1 maps it onto SO(3).
    """
    gaussian = torch.randn(count, 3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    flip = torch.linalg.det(q) < 0
    q[flip, :, 0] = -q[flip, :, 0]
    return q.to(dtype=dtype, device=device)


def rotate_per_molecule(
    vectors: torch.Tensor, rotations: torch.Tensor, batch: torch.Tensor
) -> torch.Tensor:
    """Apply molecule m's rotation to each of its atoms' vectors: (A, 3) -> (A, 3)."""
    return torch.einsum("aij,aj->ai", rotations[batch], vectors)
