"""torch_geometric's SchNet as a fifth family, through the ``archs.<name>.model`` interface.

``archs.schnet.model: "examples.schnet:SchNet"`` (config/examples/schnet.yaml) trains it
with no edit to ``pipeline.models``. The class reuses PyG's building blocks (the
embedding, ``GaussianSmearing``, ``InteractionBlock`` with its continuous-filter
convolution, ``ShiftedSoftplus``) on the pipeline's radius graph (``edge_index`` from
``pipeline.data``), so no compiled extension (torch_cluster) is needed: PyG's own
``SchNet.forward`` builds its graph with ``radius_graph``, which needs one.

It predicts the energy only and declares ``forces = "conservative"``:
``pipeline.models.build`` wraps it so that forces are ``-dE/dx`` by autograd.

Structure (Schütt et al. 2018), with w = ``width`` (hidden channels = filters)::

    h_v^0   = Embed(Z_v)                                       # [A, w]
    e_uv    = GaussianSmearing(|r_uv|)                         # [E, num_gaussians]
    h^{t+1} = h^t + Interaction_t(h^t, edge_index, |r_uv|, e_uv)
    E_m     = sum_{v in m} Lin(ssp(Lin(h_v^T)))                # [M]

Parameter count (exact, tested): with G = ``num_gaussians``, T = ``num_interactions``
and Z = ``num_elements``::

    N = Z w + T (G w + w^2 + w + 2 w^2 + 2 w + w^2 + w) + (w w/2 + w/2) + (w/2 + 1)
      = Z w + T (4 w^2 + G w + 4 w) + w^2/2 + w + 1      (w even)
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn.models.schnet import GaussianSmearing, InteractionBlock, ShiftedSoftplus


class SchNet(nn.Module):
    """SchNet energy model on a given radius graph.

    Parameters
    ----------
    width : int
        Hidden channels w, also the number of filters of each interaction.
    num_interactions : int
        Interaction blocks T.
    num_gaussians : int
        Gaussians G of the distance expansion on [0, cutoff].
    cutoff : float
        Radius of the graph and of the cosine cutoff of the filters, in Angstrom.
    max_neighbors : int
        Neighbours per atom of the graph the model expects.
    num_elements : int
        Size Z of the atomic-number embedding (atomic numbers < Z).
    """

    properties = dict(characteristic="invariant", tensor_order="0", body_order=2)
    symmetries = frozenset({"rotation", "reflection", "translation", "permutation"})
    forces = "conservative"

    def __init__(
        self,
        width: int,
        *,
        num_interactions: int = 3,
        num_gaussians: int = 50,
        cutoff: float = 6.0,
        max_neighbors: int = 30,
        num_elements: int = 100,
    ):
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError(f"SchNet width must be an even integer >= 2, got {width}")
        self.width = width
        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.embedding = nn.Embedding(num_elements, width)
        self.distance_expansion = GaussianSmearing(0.0, cutoff, num_gaussians)
        self.interactions = nn.ModuleList(
            InteractionBlock(width, num_gaussians, width, cutoff) for _ in range(num_interactions)
        )
        self.lin1 = nn.Linear(width, width // 2)
        self.act = ShiftedSoftplus()
        self.lin2 = nn.Linear(width // 2, 1)

    def forward(
        self,
        atomic_numbers: torch.Tensor,
        positions: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor,
        num_molecules: int,
    ) -> tuple[torch.Tensor, None]:
        """Energy [M] of each molecule (normalised units) and ``None`` for the forces."""
        h = self.embedding(atomic_numbers).to(positions.dtype)  # [A, w]
        u, v = edge_index
        distance = (positions[u] - positions[v]).norm(dim=-1)  # [E], Angstrom
        expansion = self.distance_expansion(distance)  # [E, G]
        for interaction in self.interactions:
            h = h + interaction(h, edge_index, distance, expansion)
        atom_energy = self.lin2(self.act(self.lin1(h))).squeeze(-1)  # [A]
        energy = atom_energy.new_zeros(num_molecules).index_add(0, batch, atom_energy)  # [M]
        return energy, None
