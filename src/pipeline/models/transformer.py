"""Vanilla transformer baseline (paper appendix K).

A GPT-style encoder over the atoms of each molecule: every token is an
atomic-number embedding concatenated with the Cartesian coordinates (relative to
the molecule's centroid), and attention is global within a molecule (no graph, no
cutoff). It has none of the rotational inductive biases of the message-passing
models: it is permutation equivariant (no positional encoding) and translation
invariant (centred coordinates), but not rotation invariant.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.blocks import centred_positions, check_atomic_numbers, scatter_sum

logger = logging.getLogger(__name__)


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, mlp_ratio * width)
        self.fc_out = nn.Linear(mlp_ratio * width, width)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """``x`` [M, n, w], ``attend`` bool [M, 1, 1, n] (key may be attended) -> [M, n, w]."""
        m, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(w, dim=-1)  # 3 x [M, n, w]
        shape = (m, n, self.num_heads, w // self.num_heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # [M, H, n, w/H]
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)  # [M, H, n, w/H]
        x = x + self.proj(att.transpose(1, 2).reshape(m, n, w))
        return x + self.fc_out(F.gelu(self.fc(self.norm2(x))))


class Transformer(nn.Module):
    """GPT-style encoder with energy and direct force heads (appendix K).

    Structure (``w`` = ``width``)::

        t_v   = [Embed(z_v) | x_v - c_mol(v)]       [A, w]  (w - 3 embedding dims + 3 coordinates)
        T     = pad per molecule                    [M, n_max, w]
        T     = L x pre-LN block (multi-head self-attention over the atoms of the same
                molecule, padding masked; GELU MLP of width mlp_ratio * w)
        E_mol = sum_v Linear(w -> 1)(LN(t_v)),  F_v = Linear(w -> 3)(LN(t_v))

    ``edge_index`` is accepted for the common signature and ignored. Coordinates
    enter in Angstrom relative to the molecule's centroid ``c_mol``, so a rotation
    of a molecule changes its predictions while a translation does not, and
    relabelling the atoms permutes them (no positional encoding). Appendix K
    feeds "atomic coordinates"; centring them is our choice: with absolute
    coordinates the float32 model's accuracy, and its predictions, would depend on
    where the molecule sits (the paper's appendix J measures that cost for the
    MPNN separately).

    Initialisation: linear layers as in GPT-2, N(0, 0.02), residual output
    projections N(0, 0.02 / sqrt(2 L)), zero biases. The atomic-number embedding is
    N(0, 1), not GPT-2's 0.02: it is concatenated with coordinates of O(1)
    Angstrom, and at 0.02 the three coordinates made up 99.9 % (width 32) to 99.3 %
    (width 256) of the sum of squares the first LayerNorm normalises, on the demo
    molecules (a coordinate entry's mean square 1.2e4 times an embedding entry's);
    at N(0, 1) that ratio is 4.7 and every token entry enters at O(1).

    Parameters
    ----------
    width : int
        Token width ``w``; divisible by ``num_heads`` and > 3.
    num_layers : int
        Transformer blocks ``L``. Default 6.
    num_heads : int
        Attention heads. Default 4.
    mlp_ratio : int
        Hidden width of the block MLP as a multiple of ``w``. Default 4.
    num_elements : int
        Size of the atomic-number embedding table (atomic numbers below it). Default 120.
    cutoff : float
        Angstrom. Only tells the data loader which graph to build (the model
        ignores it); default 6.0, as for the other families.
    max_neighbors : int
        Same role as ``cutoff``; default 30.
    """

    properties = dict(characteristic="unconstrained", tensor_order="-", body_order="-")
    # exact invariances of the energy / equivariances of the forces (contract 5)
    symmetries: frozenset[str] = frozenset({"translation", "permutation"})
    forces: str = "direct"
    # Global attention within each molecule: the trainer builds no radius graph for it.
    uses_edges = False

    def __init__(
        self,
        width: int,
        num_layers: int = 6,
        num_heads: int = 4,
        mlp_ratio: int = 4,
        num_elements: int = 120,
        cutoff: float = 6.0,
        max_neighbors: int = 30,
    ):
        super().__init__()
        if width <= 3 or width % num_heads:
            raise ValueError(
                f"Transformer: width must be > 3 and divisible by num_heads={num_heads}, "
                f"got {width}"
            )
        if num_layers < 1 or mlp_ratio < 1:
            raise ValueError(
                f"Transformer: num_layers and mlp_ratio must be >= 1, got {num_layers}, {mlp_ratio}"
            )
        self.width = width
        self.num_layers = num_layers
        self.num_elements = num_elements
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.embedding = nn.Embedding(num_elements, width - 3)
        self.blocks = nn.ModuleList(_Block(width, num_heads, mlp_ratio) for _ in range(num_layers))
        self.norm = nn.LayerNorm(width)
        self.energy_head = nn.Linear(width, 1)
        self.force_head = nn.Linear(width, 3)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # unit-variance entries, as the O(1) Angstrom coordinates they sit next to
        nn.init.normal_(self.embedding.weight, std=1.0)
        for block in self.blocks:
            for proj in (block.proj, block.fc_out):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.num_layers))

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
            Ignored (global attention).
        batch : long [A]
            Molecule of each atom, sorted ascending (molecules contiguous).
        num_molecules : int
            M.
        """
        n_atoms = atomic_numbers.shape[0]
        check_atomic_numbers(
            atomic_numbers, 0, self.num_elements - 1, "Transformer", "num_elements"
        )
        if n_atoms > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError("Transformer: batch must be sorted (atoms of a molecule contiguous)")
        counts = torch.bincount(batch, minlength=num_molecules)  # [M]
        start = torch.cumsum(counts, 0) - counts  # [M]
        slot = torch.arange(n_atoms, device=batch.device) - start[batch]  # [A] index in molecule
        n_max = int(counts.max()) if num_molecules and n_atoms else 1

        centred = centred_positions(positions, batch, num_molecules)  # [A, 3]
        tokens = torch.cat([self.embedding(atomic_numbers), centred], dim=-1)  # [A, w]
        dense = tokens.new_zeros(num_molecules, n_max, self.width)  # [M, n_max, w]
        dense = dense.index_put((batch, slot), tokens)
        valid = torch.arange(n_max, device=batch.device) < counts.unsqueeze(1)  # [M, n_max]
        # empty molecules attend to their padding so that no softmax row is all -inf
        attend = (valid | (counts == 0).unsqueeze(1)).view(num_molecules, 1, 1, n_max)

        for block in self.blocks:
            dense = block(dense, attend)  # [M, n_max, w]
        out = self.norm(dense[batch, slot])  # [A, w]
        energy = scatter_sum(self.energy_head(out).squeeze(-1), batch, num_molecules)  # [M]
        forces = self.force_head(out)  # [A, 3]
        return energy, forces
