"""Index constructions and angular functions of GemNet-OC (private to ``gemnet_oc*.py``).

Edge convention of the project: edge ``e = (u, v)`` has neighbour ``u = edge_index[0, e]``,
centre ``v = edge_index[1, e]`` and vector ``r_uv = x_u - x_v``. Messages of edge
``c -> a`` collect triplets ``c -> a <- b`` (edges sharing the centre ``a``) and
quadruplets ``c -> a <- b <- d`` (eq. 10 with u = c, v = a, k = b, j = d).

Everything is pure torch and vectorised (no torch-scatter): groups are enumerated with
``bincount``/``repeat_interleave`` and padded to dense ``[groups, K, ...]`` tensors.
"""

from __future__ import annotations

import torch

__all__ = [
    "angles_by_centre",
    "angles_in_slots",
    "azimuth_modes",
    "by_centre",
    "group_pairs",
    "legendre",
    "nearest_edges_per_centre",
    "pad_groups",
    "quadruplet_triplets",
    "quadruplets",
    "ranks_in_group",
    "reference_directions",
    "reverse_edges",
    "scatter_rows",
    "slots_in_group",
    "triplets",
]


# --- index constructions ---------------------------------------------------------------


def group_pairs(
    key_a: torch.Tensor, key_b: torch.Tensor, num_keys: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """All index pairs ``(i, j)`` with ``key_a[i] == key_b[j]``.

    Parameters
    ----------
    key_a : long [Na]
    key_b : long [Nb]
        Keys in ``[0, num_keys)``.
    num_keys : int

    Returns
    -------
    (long [P], long [P])
        ``i`` ascending (pairs of one ``i`` contiguous), ``j`` in ascending order of
        ``(key_b, j)`` within each ``i``.
    """
    device = key_a.device
    order_b = torch.argsort(key_b, stable=True)
    count_b = torch.bincount(key_b, minlength=num_keys)
    start_b = torch.cumsum(count_b, 0) - count_b
    n_per_a = count_b[key_a]  # [Na]
    i = torch.repeat_interleave(torch.arange(len(key_a), device=device), n_per_a)
    first = torch.cumsum(n_per_a, 0) - n_per_a
    offset = torch.arange(len(i), device=device) - first[i]
    j = order_b[start_b[key_a[i]] + offset]
    return i, j


def ranks_in_group(group: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Position of every element within its group, for a sorted ``group`` [N] -> long [N]."""
    count = torch.bincount(group, minlength=num_groups)
    first = torch.cumsum(count, 0) - count
    return torch.arange(len(group), device=group.device) - first[group]


def slots_in_group(group: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, int]:
    """Position of every element among the elements of its group (any order).

    Parameters
    ----------
    group : long [N]
    num_groups : int

    Returns
    -------
    (long [N], int)
        Slots (elements of a group numbered 0, 1, ... in index order) and the largest
        group size (at least 1).
    """
    order = torch.argsort(group, stable=True)
    slot = torch.empty_like(group)
    slot[order] = ranks_in_group(group[order], num_groups)
    width = int(torch.bincount(group, minlength=1).max()) if len(group) else 1
    return slot, width


def angles_by_centre(
    ang: torch.Tensor,
    t_out: torch.Tensor,
    t_in: torch.Tensor,
    centre: torch.Tensor,
    slot: torch.Tensor,
    width: int,
    num_atoms: int,
) -> torch.Tensor:
    """Angular basis of the triplets ``c -> a <- b`` as one dense matrix per centre ``a``.

    ``out[a, k_out * L + l, k_in] = ang[t, l]`` for the triplet ``t`` of the edges in
    slots ``k_out`` (``c -> a``) and ``k_in`` (``b -> a``) of centre ``a``; zero where
    there is no triplet (``b == c``, padding). Geometry only, built once per forward.

    Parameters
    ----------
    ang : float [T, L]
    t_out, t_in : long [T]
        Edge ``c -> a`` and edge ``b -> a`` of each triplet.
    centre, slot : long [E]
        Centre of every edge and its slot there (:func:`slots_in_group`).
    width : int
        K, the largest number of edges of one centre.
    num_atoms : int

    Returns
    -------
    float [A, K * L, K]
    """
    out = ang.new_zeros(num_atoms, width, ang.shape[1], width)
    # written through a view that puts the indexed dims first: one row of L per triplet
    out.transpose(2, 3)[centre[t_out], slot[t_out], slot[t_in]] = ang
    return out.view(num_atoms, width * ang.shape[1], width)


def angles_in_slots(
    unit: torch.Tensor,
    src: torch.Tensor,
    centre: torch.Tensor,
    slot: torch.Tensor,
    width: int,
    num_atoms: int,
    num: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Legendre basis of all triplets ``c -> a <- b`` as one dense matrix per centre ``a``.

    The result of :func:`angles_by_centre` for ``ang = legendre(cos angle cab, num)``,
    computed for all slot pairs of every centre (zero where ``b == c`` or a slot is
    padding) instead of from a triplet list: no index construction, no scatter.

    Parameters
    ----------
    unit : float [E, 3]
        Edge directions.
    src, centre, slot : long [E]
        Neighbour and centre of every edge and its slot there (:func:`slots_in_group`).
    width : int
        K, the largest number of edges of one centre.
    num_atoms, num : int

    Returns
    -------
    (float [A, K * L, K], bool [A, K, K])
        ``out[a, k_out * L + l, k_in]`` and the slot pairs that are triplets.
    """
    num_edges = len(src)
    epad = torch.full((num_atoms, width), num_edges, dtype=torch.long, device=src.device)
    epad[centre, slot] = torch.arange(num_edges, device=src.device)
    u = torch.cat([unit, unit.new_zeros(1, 3)])[epad]  # padding reads a zero row [A, K, 3]
    s = torch.cat([src, src.new_full((1,), -1)])[epad]
    ok = (s[:, :, None] != s[:, None, :]) & (s[:, :, None] >= 0) & (s[:, None, :] >= 0)
    cos = (u[:, :, None, :] * u[:, None, :, :]).sum(-1)  # [A, K(out), K(in)]
    ang = legendre(cos, num, dim=2).mul_(ok.unsqueeze(2).to(unit.dtype))  # [A, K, L, K]
    return ang.view(num_atoms, width * num, width), ok


def by_centre(
    values: torch.Tensor, centre: torch.Tensor, slot: torch.Tensor, num_atoms: int, width: int
) -> torch.Tensor:
    """Per-edge rows ``values`` [E, ...] in their centre's slots: [A, K, ...], zero-padded."""
    out = values.new_zeros(num_atoms, width, *values.shape[1:])
    out[centre, slot] = values
    return out


def reverse_edges(edge_index: torch.Tensor, num_atoms: int) -> torch.Tensor:
    """Index of the reverse edge ``v -> u`` of every edge ``u -> v``, -1 where absent.

    A radius graph truncated at ``max_neighbors`` can miss reverse edges; their
    symmetric contribution is then zero.

    Parameters
    ----------
    edge_index : long [2, E]
    num_atoms : int

    Returns
    -------
    long [E]
    """
    key = edge_index[0] * num_atoms + edge_index[1]
    rev = edge_index[1] * num_atoms + edge_index[0]
    order = torch.argsort(key)
    sorted_key = key[order]
    pos = torch.searchsorted(sorted_key, rev).clamp(max=max(len(key) - 1, 0))
    if len(key) == 0:
        return key.clone()
    found = sorted_key[pos] == rev
    return torch.where(found, order[pos], torch.full_like(pos, -1))


def nearest_edges_per_centre(
    dist: torch.Tensor, centre: torch.Tensor, num_atoms: int, cutoff: float, max_per_centre: int
) -> torch.Tensor:
    """The edges of a sub-graph: per centre, the ``max_per_centre`` nearest within ``cutoff``.

    Parameters
    ----------
    dist : float [E]
        Edge lengths, Angstrom.
    centre : long [E]
        Centre atom of every edge.
    num_atoms : int
    cutoff : float
        Angstrom; edges with ``dist < cutoff`` are candidates.
    max_per_centre : int
        At most this many edges per centre, the shortest (ties: lower edge index first).

    Returns
    -------
    long [Eq]
        Indices of the selected edges, ascending.
    """
    cand = torch.nonzero(dist < cutoff).squeeze(-1)
    order = torch.argsort(dist[cand], stable=True)
    order = order[torch.argsort(centre[cand][order], stable=True)]  # by centre, then distance
    by_centre = cand[order]
    rank = ranks_in_group(centre[by_centre], num_atoms)
    return torch.sort(by_centre[rank < max_per_centre]).values


def triplets(
    edge_index_out: torch.Tensor, edge_index_in: torch.Tensor, num_atoms: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triplets ``c -> a <- b``: an out edge ``(c, a)`` and an in edge ``(b, a)``, ``b != c``.

    Parameters
    ----------
    edge_index_out, edge_index_in : long [2, E_out], long [2, E_in]
        Both in the project's convention (row 1 the shared centre ``a``).
    num_atoms : int

    Returns
    -------
    (long [T], long [T])
        ``idx_out`` (sorted ascending) and ``idx_in``.
    """
    idx_out, idx_in = group_pairs(edge_index_out[1], edge_index_in[1], num_atoms)
    keep = edge_index_in[0, idx_in] != edge_index_out[0, idx_out]
    return idx_out[keep], idx_in[keep]


def quadruplets(
    edge_index: torch.Tensor, qint_edge_index: torch.Tensor, num_atoms: int
) -> dict[str, torch.Tensor]:
    """Quadruplets ``c -> a <- b <- d`` on a main graph and a (sub-)graph for ``b, d``.

    ``c -> a`` is a main edge, ``b -> a`` and ``d -> b`` are edges of the quadruplet
    graph, with ``b != c``, ``d != a`` and ``d != c`` (the four atoms distinct).

    Parameters
    ----------
    edge_index : long [2, E]
        Main graph.
    qint_edge_index : long [2, Eq]
        Quadruplet graph (edges indexed separately).
    num_atoms : int

    Returns
    -------
    dict of long tensors
        ``trip_out_out`` [To] (main edge c->a), ``trip_out_mid`` [To] (q-edge b->a):
        the triplets c -> a <- b; ``trip_in_mid`` [Ti] (q-edge b->a), ``trip_in_in``
        [Ti] (q-edge d->b): the triplets a <- b <- d; ``quad_out`` [Q] (main edge c->a,
        sorted ascending), ``quad_trip_out`` [Q] and ``quad_trip_in`` [Q] (the two
        triplets each quadruplet joins).
    """
    trip_out_out, trip_out_mid = triplets(edge_index, qint_edge_index, num_atoms)
    # a <- b <- d: q-edge d->b whose centre b is the neighbour of q-edge b->a, d != a
    trip_in_mid, trip_in_in = group_pairs(qint_edge_index[0], qint_edge_index[1], num_atoms)
    keep = qint_edge_index[0, trip_in_in] != qint_edge_index[1, trip_in_mid]
    trip_in_mid, trip_in_in = trip_in_mid[keep], trip_in_in[keep]
    # join the two triplet lists on the shared q-edge b->a
    quad_trip_out, quad_trip_in = group_pairs(trip_out_mid, trip_in_mid, qint_edge_index.shape[1])
    c = edge_index[0, trip_out_out[quad_trip_out]]
    d = qint_edge_index[0, trip_in_in[quad_trip_in]]
    keep = c != d
    quad_trip_out, quad_trip_in = quad_trip_out[keep], quad_trip_in[keep]
    return {
        "trip_out_out": trip_out_out,
        "trip_out_mid": trip_out_mid,
        "trip_in_mid": trip_in_mid,
        "trip_in_in": trip_in_in,
        "quad_out": trip_out_out[quad_trip_out],
        "quad_trip_out": quad_trip_out,
        "quad_trip_in": quad_trip_in,
    }


def quadruplet_triplets(
    edge_index: torch.Tensor, qint_edge_index: torch.Tensor, num_atoms: int
) -> dict[str, torch.Tensor]:
    """The two triplet lists of the quadruplets ``c -> a <- b <- d``, without joining them.

    The quadruplet sum is evaluated as a sum over ``d`` per quadruplet-graph edge
    ``b -> a`` followed by a sum over the triplets ``c -> a <- b`` (see
    :class:`QuadrupletInteraction`); the excluded term ``d == c`` is subtracted, so
    only its index is needed.

    Returns
    -------
    dict of long tensors
        ``trip_out_out``, ``trip_out_mid`` [To] (main edge c->a sorted ascending, q-edge
        b->a), ``trip_in_mid``, ``trip_in_in`` [Ti] (q-edge b->a, q-edge d->b, d != a),
        ``self_term`` [To]: index into the ``trip_in`` lists of ``d == c`` for the
        triplet (q-edge c->b exists), else -1.
    """
    trip_out_out, trip_out_mid = triplets(edge_index, qint_edge_index, num_atoms)
    trip_in_mid, trip_in_in = group_pairs(qint_edge_index[0], qint_edge_index[1], num_atoms)
    keep = qint_edge_index[0, trip_in_in] != qint_edge_index[1, trip_in_mid]
    trip_in_mid, trip_in_in = trip_in_mid[keep], trip_in_in[keep]
    key_in = trip_in_mid * num_atoms + qint_edge_index[0, trip_in_in]  # (b->a, d)
    key_out = trip_out_mid * num_atoms + edge_index[0, trip_out_out]  # (b->a, c)
    self_term = torch.full_like(key_out, -1)
    if len(key_in) and len(key_out):
        order = torch.argsort(key_in)
        pos = torch.searchsorted(key_in[order], key_out).clamp(max=len(key_in) - 1)
        found = key_in[order][pos] == key_out
        self_term = torch.where(found, order[pos], self_term)
    return {
        "trip_out_out": trip_out_out,
        "trip_out_mid": trip_out_mid,
        "trip_in_mid": trip_in_mid,
        "trip_in_in": trip_in_in,
        "self_term": self_term,
    }


def azimuth_modes(
    vectors: torch.Tensor,
    axis: torch.Tensor,
    frame: torch.Tensor,
    num: int,
    eps: float = 1e-9,
    dim: int | None = None,
) -> torch.Tensor:
    """Fourier modes ``rho^k (cos k alpha, sin k alpha)`` of vectors about an axis.

    ``alpha`` is the azimuth of each vector about its unit ``axis`` in the reference
    direction ``frame`` (unit, normal to the axis), ``rho = |p| / sqrt(|p|^2 + eps)``
    with ``p`` the component normal to the axis (so the modes k >= 1 vanish smoothly for
    vectors along the axis, where the azimuth is undefined). For two vectors with modes
    ``z1, z2``: ``Re(z1^k conj(z2^k)) = rho1^k rho2^k cos(k phi)``, ``phi`` the unsigned
    dihedral angle between them about the axis, whatever the reference direction.

    Parameters
    ----------
    vectors, axis, frame : float [..., 3]
        Broadcastable; ``frame`` and ``axis`` of the same shape.
    num : int
        Modes k = 0 .. num-1.
    eps : float
        Angstrom^2.
    dim : int or None
        Where the (mode, re/im) dims go among the broadcast dims ``[...]``; None: last.

    Returns
    -------
    float [..., num, 2]
        (real, imaginary) parts (``[..., num, 2, ...]`` with ``dim``).
    """
    normal = torch.linalg.cross(axis, frame)
    x = (vectors * frame).sum(-1)
    y = (vectors * normal).sum(-1)
    scale = torch.rsqrt(x.square() + y.square() + eps)
    x, y = x * scale, y * scale
    re, im = [torch.ones_like(x)], [torch.zeros_like(x)]
    for _ in range(1, num):
        re_k = re[-1] * x - im[-1] * y
        im.append(re[-1] * y + im[-1] * x)
        re.append(re_k)
    d = x.dim() if dim is None else dim
    return torch.stack([torch.stack(re, d), torch.stack(im, d)], d + 1)


def reference_directions(axis: torch.Tensor) -> torch.Tensor:
    """A unit vector normal to each unit ``axis`` [N, 3] -> [N, 3].

    Built from the coordinate axis least aligned with ``axis`` (never degenerate); the
    choice is arbitrary, and the dihedral modes built on it do not depend on it.
    """
    helper = torch.zeros_like(axis)
    helper[torch.arange(len(axis), device=axis.device), axis.abs().argmin(dim=-1)] = 1.0
    ref = helper - (helper * axis).sum(-1, keepdim=True) * axis
    return ref / torch.linalg.vector_norm(ref, dim=-1, keepdim=True)


# --- angular functions -------------------------------------------------------------------


def legendre(x: torch.Tensor, num: int, dim: int = -1) -> torch.Tensor:
    """Legendre polynomials ``P_0..P_{num-1}`` of ``x`` [N] -> [N, num] (Bonnet recursion);
    ``dim``: where the new dim goes (as :func:`torch.stack`)."""
    out = [torch.ones_like(x), x]
    for n in range(1, num - 1):
        out.append(((2 * n + 1) * x * out[n] - n * out[n - 1]) / (n + 1))
    return torch.stack(out[:num], dim=dim)


def pad_groups(
    values: torch.Tensor, group: torch.Tensor, rank: torch.Tensor, num_groups: int
) -> torch.Tensor:
    """Scatter per-element rows ``values`` [T, C] into a zero-padded ``[G, K, C]`` tensor."""
    k = int(rank.max()) + 1 if len(rank) else 1
    out = values.new_zeros(num_groups, k, values.shape[1])
    out[group, rank] = values
    return out


def scatter_rows(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of ``src`` [N, ...] into ``size`` bins of ``index`` [N]."""
    return src.new_zeros((size, *src.shape[1:])).index_add_(0, index, src)
