"""Quadruplet geometry and sum of GemNet-OC (private to ``gemnet_oc*.py``).

Quadruplets ``c -> a <- b <- d`` (eq. 10 with u = c, v = a, k = b, j = d) are built in a
padded per-centre layout instead of index lists: per centre ``a`` the main edges
``c -> a`` in ``K`` slots (:func:`~pipeline.models.gemnet_oc_graph.slots_in_group`), the
quadruplet-graph edges ``b -> a`` in ``Kq`` slots, and per quadruplet-graph edge
``b -> a`` the quadruplet-graph edges ``d -> b`` in the ``Kq`` slots of ``b``. Every
triplet ``c -> a <- b`` is a pair of slots ``(i, j)`` of its centre and every triplet
``a <- b <- d`` a pair ``(j, jd)``; geometry is computed for all pairs and zeroed where
there is no triplet (padding, ``b == c``, ``d == a``). On the demo graphs nearly all
pairs are triplets, so the padding costs less than the index lists it replaces: no
per-triplet gathers or scatters in the blocks, and the only per-forward tensor that
carries gradients (the triplet-side basis) is built by dense products, not index puts.
"""

from __future__ import annotations

import torch

from pipeline.models.gemnet_oc_graph import (
    azimuth_modes,
    by_centre,
    legendre,
    nearest_edges_per_centre,
    reference_directions,
    slots_in_group,
)

__all__ = ["quadruplet_geometry", "quadruplet_sum"]


def _padded(index: torch.Tensor, centre: torch.Tensor, slot: torch.Tensor, shape) -> torch.Tensor:
    """``out[centre, slot] = index``, -1 elsewhere: long ``shape``."""
    out = torch.full(shape, -1, dtype=torch.long, device=index.device)
    out[centre, slot] = index
    return out


def quadruplet_geometry(
    edge_index: torch.Tensor,
    vec: torch.Tensor,
    dist: torch.Tensor,
    unit: torch.Tensor,
    rad: torch.Tensor,
    slot: torch.Tensor,
    width: int,
    num_atoms: int,
    model,
) -> dict:
    """Quadruplet-graph edges, bases and index sets for all blocks of one forward.

    Parameters
    ----------
    edge_index : long [2, E]
    vec, unit : float [E, 3]
        ``r_uv`` (Angstrom) and its direction.
    dist : float [E]
    rad : float [E, R]
        Enveloped radial basis of the main graph.
    slot : long [E]
        Slot of every edge at its centre; ``width`` (K) the largest number of edges of a
        centre.
    num_atoms : int
    model : GemNetOC
        For ``cutoff_qint``, ``max_neighbors_qint``, ``num_spherical``, the quadruplet
        graph's radial basis and envelope and the shared basis embeddings
        ``mlp_cbf_qint`` and ``mlp_sbf_qint``.

    Returns
    -------
    dict or None
        None if the quadruplet graph has no edges (no quadruplets). Else ``q_edges``
        [Eq] (main index of the quadruplet-graph edges), ``qpad`` [A, Kq]
        (their main index per centre slot, -1 padding), ``out_ok`` [A, K, Kq] and
        ``in_ok`` [A, Kq, Kq] (bool: slot pairs that are triplets ``c -> a <- b`` and
        ``a <- b <- d``), ``db_edge`` [A, Kq, Kq] (main index of ``d -> b``),
        ``cbf`` [A, Kq, Kq, cbf] (basis of ``a <- b <- d``), ``z_d`` [A Kq, Kq, 2S]
        (dihedral modes of ``r_db``), ``basis`` [A, Kq 2S, sbf K] (the learned triplet
        side ``u[t, sbf, k] z_c[t, k, re/im]``), ``centre``, ``slot`` [E], and the
        excluded ``d == c`` terms: ``self_out`` [Ts] (edge ``c -> a``), ``self_in`` [Ts]
        (flat index into ``[A, Kq, Kq]``), ``self_w`` [Ts, sbf].
    """
    s = model.num_spherical
    src, dst = edge_index
    num_edges = len(dist)
    q_edges = nearest_edges_per_centre(
        dist, dst, num_atoms, model.cutoff_qint, model.max_neighbors_qint
    )  # [Eq]
    if len(q_edges) == 0:
        return None
    q_slot, kq = slots_in_group(dst[q_edges], num_atoms)
    qpad = _padded(q_edges, dst[q_edges], q_slot, (num_atoms, kq))  # [A, Kq]
    epad = _padded(torch.arange(num_edges, device=dst.device), dst, slot, (num_atoms, width))
    q_ok, e_ok = qpad >= 0, epad >= 0
    qc, ec = qpad.clamp(min=0), epad.clamp(min=0)
    atoms = torch.arange(num_atoms, device=dst.device)

    # triplets c -> a <- b: slots (i, j) of centre a; angle c a b, modes of r_ca about a-b
    axis = unit[qc]  # unit (x_b - x_a) [A, Kq, 3]
    ref = reference_directions(axis.reshape(-1, 3)).view(num_atoms, kq, 3)
    out_ok = e_ok[:, :, None] & q_ok[:, None, :] & (src[ec][:, :, None] != src[qc][:, None, :])
    cos_cab = (unit[ec][:, :, None, :] * axis[:, None, :, :]).sum(-1)  # [A, K, Kq]
    # modes in the layout of the basis below, [A, Kq(j), S, 2, K(i)]
    z_c = azimuth_modes(vec[ec][:, None], axis[:, :, None], ref[:, :, None], s, dim=2)
    z_c = z_c.mul_(out_ok.transpose(1, 2)[:, :, None, None, :].to(vec.dtype))
    # u[a, i, j, k, sbf] = sum_l W[|r_ca|][k, l, sbf] P_l(cos cab): one small product per
    # edge c -> a (radial weights in the centre's slots; padding rows of rad are zero)
    # (the weights' angular index is k * S + l; permuting the small weight tensor, not
    # the per-edge output, gives the layout [l, k, sbf] of the product below)
    sbf = model.mlp_sbf_qint.size
    weight = model.mlp_sbf_qint.weight.view(-1, s, s, sbf).transpose(1, 2).reshape(rad.shape[1], -1)
    rad_pad = by_centre(rad, dst, slot, num_atoms, width).view(num_atoms * width, -1)
    rad_w = (rad_pad @ weight).view(-1, s, s * sbf)  # [A K, S(l), S(k) sbf]
    p = legendre(cos_cab, s).view(num_atoms * width, kq, s)  # [A K, Kq, S(l)]
    u = (p @ rad_w).view(num_atoms, width, kq, s, sbf)  # [A, K, Kq, S(k), sbf]
    # the whole triplet side in the layout of the per-centre product: rows (j, k, re/im),
    # columns (sbf, i), so each block's quadruplet sum is one batched product per centre
    # (both factors contiguous in that order, so the product is too; i innermost keeps
    # the broadcasts of the product and of its backward vectorised)
    # (built without autograd: :class:`_BasisProduct` differentiates u and z_c directly)
    u_t = u.permute(0, 2, 3, 4, 1).contiguous()  # [A, Kq, S, sbf, K]
    with torch.no_grad():
        basis = u_t.unsqueeze(3) * z_c.unsqueeze(4)  # [A, Kq, S, 2, sbf, K]
    basis = basis.view(num_atoms, kq * 2 * s, sbf * width)

    # triplets a <- b <- d: slots (j, jd), d -> b in the slots of b; angle a b d
    b_atom = src[qc]  # [A, Kq]
    dpad = qpad[b_atom]  # main index of d -> b [A, Kq, Kq]
    dc = dpad.clamp(min=0)
    in_ok = q_ok[:, :, None] & (dpad >= 0) & (src[dc] != atoms[:, None, None])
    cos_abd = -(axis[:, :, None, :] * unit[dc]).sum(-1)  # [A, Kq, Kq]
    rad_q = model.envelope_qint(dist[qc]).unsqueeze(-1) * model.radial_qint(dist[qc])
    rad_wq = model.mlp_cbf_qint(rad_q.view(num_atoms * kq, -1))  # [A Kq, cbf, S]
    cbf = legendre(cos_abd, s).view(num_atoms * kq, kq, s) @ rad_wq.transpose(1, 2)
    cbf = cbf.view(num_atoms, kq, kq, -1) * model.envelope_qint(dist[dc]).unsqueeze(-1)
    z_d = azimuth_modes(vec[dc], axis[:, :, None], ref[:, :, None], s)  # [A, Kq, Kq, S, 2]
    z_d = z_d.mul_(in_ok[..., None, None].to(vec.dtype))

    # the excluded d == c terms: triplet c -> a <- b whose b -> a has the triplet
    # a <- b <- c (q-edge c -> b), weight sum_k u[t, k, :] Re(z_c^k conj z_d^k)
    a_t, i_t, j_t = torch.nonzero(out_ok, as_tuple=True)  # [To]
    c_t, b_t = src[ec[a_t, i_t]], b_atom[a_t, j_t]
    q_key = src[q_edges] * num_atoms + dst[q_edges]  # ascending in main index, not key
    order = torch.argsort(q_key)
    want = c_t * num_atoms + b_t
    pos = torch.searchsorted(q_key[order], want).clamp(max=len(q_key) - 1)
    has = q_key[order][pos] == want
    a_s, i_s, j_s = a_t[has], i_t[has], j_t[has]
    jd_s = q_slot[order[pos[has]]]  # slot of c -> b at b
    modes = (z_c[a_s, j_s, :, :, i_s] * z_d[a_s, j_s, jd_s]).sum(-1)  # [Ts, S]
    self_w = (modes.unsqueeze(1) @ u[a_s, i_s, j_s]).squeeze(1)  # [Ts, sbf]
    return {
        "q_edges": q_edges,
        "qpad": qpad,
        "out_ok": out_ok,
        "in_ok": in_ok,
        "db_edge": dc,
        "cbf": cbf,
        "z_d": z_d.view(num_atoms * kq, kq, 2 * s),
        "basis": basis,
        "u": u_t,
        "z_c": z_c,
        "centre": dst,
        "slot": slot,
        "self_out": epad[a_s, i_s],
        "self_in": (a_s * kq + j_s) * kq + jd_s,
        "self_w": self_w,
    }


class _BasisProduct(torch.autograd.Function):
    """``y = pw @ basis`` per centre, ``basis = u (x) z`` built once per forward.

    Shapes: ``pw`` [A, O, Kq * S * 2 * sbf] (columns (j, k, re/im, sbf)), ``u``
    [A, Kq, S, sbf, K], ``z`` [A, Kq, S, 2, K], ``basis`` [A, Kq * S * 2, sbf * K]
    (``u`` times ``z``, no autograd history) -> ``y`` [A, O, K]. The backward gives
    ``u`` and ``z`` their gradients directly (O x 2 broadcast products of their size)
    instead of through a basis-sized gradient per block (a rank-O outer product per
    centre, summed over the blocks and then contracted with ``z``), which dominated the
    step. Same values as autograd through ``bmm(pw, u * z)`` up to rounding.
    """

    @staticmethod
    def forward(ctx, pw, u, z, basis):
        ctx.save_for_backward(pw, u, z, basis)
        return torch.bmm(pw, basis.view(pw.shape[0], pw.shape[2], -1))

    @staticmethod
    def backward(ctx, grad_y):
        pw, u, z, basis = ctx.saved_tensors
        num_atoms, num_out = pw.shape[:2]
        _, kq, s, sbf, width = u.shape
        grad_pw = grad_u = grad_z = None
        if ctx.needs_input_grad[0]:
            grad_pw = torch.bmm(grad_y, basis.view(num_atoms, -1, width).transpose(1, 2))
        pw6 = pw.view(num_atoms, num_out, kq, s, 2, sbf)
        if ctx.needs_input_grad[1]:
            # grad_u[a, j, k, :, i] = sum_{o, r} pw[a, o, j, k, r, :] z[a, j, k, r, i] g[a, o, i]
            for o in range(num_out):
                g = grad_y[:, o, None, None, None, :]  # [A, 1, 1, 1, K]
                for r in range(2):
                    term = (pw6[:, o, :, :, r, :, None], z[:, :, :, r, None, :] * g)
                    if grad_u is None:
                        grad_u = term[0] * term[1]
                    else:
                        grad_u.addcmul_(*term)
        if ctx.needs_input_grad[2]:
            # grad_z[a, j, k, r, i] = sum_o (sum_sbf pw[a, o, j, k, r, :] u[a, j, k, :, i]) g
            for o in range(num_out):
                term = pw6[:, o] @ u * grad_y[:, o, None, None, None, :]
                grad_z = term if grad_z is None else grad_z.add_(term)
        return grad_pw, grad_u, grad_z, None


def quadruplet_sum(x_t: torch.Tensor, quad: dict, weight: torch.Tensor) -> torch.Tensor:
    """The quadruplet interaction's bilinear layer applied to its sum over quadruplets.

    ``out[e] = W agg[e]`` with ``agg[e] = sum_{c -> a <- b <- d, d != c} sbf(t) outer
    x_t[a <- b <- d]`` for e = c -> a (``[sbf, C]``, flattened sbf-major as the weight's
    input). The sum over ``d`` per quadruplet-graph edge ``b -> a`` with the dihedral
    modes of ``r_db`` (:func:`~pipeline.models.gemnet_oc_layers.dihedral_sum`'s
    factorisation) is one batched product per ``b -> a``; the weight contracts its
    channels before it meets the triplet-side basis (one batched product per centre,
    ``quad_out`` rather than ``quad_in`` columns); the excluded ``d == c`` terms are
    subtracted.

    Parameters
    ----------
    x_t : float [A, Kq, Kq, C]
        Per triplet ``a <- b <- d`` (slots ``(j, jd)``; padding is ignored).
    quad : dict
        From :func:`quadruplet_geometry`.
    weight : float [O, sbf * C]
        The bilinear layer.

    Returns
    -------
    float [E, O]
    """
    num_atoms, kq, _, num_ch = x_t.shape
    num_out, sbf = weight.shape[0], quad["self_w"].shape[1]
    # [C, O sbf], columns (o, sbf)
    w = weight.view(num_out, sbf, num_ch).permute(2, 0, 1).reshape(num_ch, -1)
    per_mid = torch.bmm(quad["z_d"].transpose(1, 2), x_t.view(num_atoms * kq, kq, num_ch))
    pw = (per_mid.view(-1, num_ch) @ w).view(num_atoms, -1, num_out, sbf)  # [A, Kq 2S, O, sbf]
    pw = pw.transpose(1, 2).reshape(num_atoms, num_out, -1)  # [A, O, Kq 2S sbf]
    y = _BasisProduct.apply(pw, quad["u"], quad["z_c"], quad["basis"])  # [A, O, K]
    out = y.transpose(1, 2)[quad["centre"], quad["slot"]]  # [E, O]
    x_self = (x_t.reshape(-1, num_ch)[quad["self_in"]] @ w).view(-1, num_out, sbf)
    own = (x_self * quad["self_w"].unsqueeze(1)).sum(-1)  # [Ts, O]
    return out.index_add(0, quad["self_out"], own, alpha=-1.0)
