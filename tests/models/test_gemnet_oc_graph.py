"""GemNet-OC index constructions, per-centre layouts and the quadruplet product's
backward against brute force (private helpers of ``pipeline.models.gemnet_oc*``)."""

from __future__ import annotations

import itertools

import torch

from pipeline.models.gemnet_oc_graph import (
    angles_by_centre,
    angles_in_slots,
    azimuth_modes,
    legendre,
    nearest_edges_per_centre,
    quadruplet_triplets,
    quadruplets,
    ranks_in_group,
    reference_directions,
    reverse_edges,
    slots_in_group,
    triplets,
)
from pipeline.models.gemnet_oc_layers import angle_sums, dihedral_sum
from pipeline.models.gemnet_oc_quad import _BasisProduct

# --- index constructions ----------------------------------------------------------------


def _tiny_graph():
    """7 atoms, directed edges with some reverse edges missing (as after max_neighbors)."""
    pairs = [(0, 1), (1, 0), (2, 1), (1, 2), (3, 1), (0, 2), (2, 0), (4, 2), (2, 4), (5, 3)]
    pairs += [(3, 5), (1, 3), (4, 0), (6, 5), (0, 4)]
    return torch.tensor(pairs).T, 7


def test_triplets_match_brute_force():
    ei, n = _tiny_graph()
    out, inn = triplets(ei, ei, n)
    got = sorted(zip(out.tolist(), inn.tolist(), strict=True))
    want = sorted(
        (eo, e_in)
        for eo, e_in in itertools.product(range(ei.shape[1]), repeat=2)
        if ei[1, eo] == ei[1, e_in] and ei[0, eo] != ei[0, e_in]
    )
    assert got == want and len(want) > 0
    assert torch.all(out[1:] >= out[:-1])  # grouped by output edge
    rank = ranks_in_group(out, ei.shape[1])
    assert len(set(zip(out.tolist(), rank.tolist(), strict=True))) == len(out)


def test_quadruplets_match_brute_force():
    ei, n = _tiny_graph()
    q_sel = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8, 9, 12])  # a reduced quadruplet graph
    qei = ei[:, q_sel]
    idx = quadruplets(ei, qei, n)
    got = sorted(
        zip(
            idx["quad_out"].tolist(),
            idx["trip_out_mid"][idx["quad_trip_out"]].tolist(),
            idx["trip_in_in"][idx["quad_trip_in"]].tolist(),
            strict=True,
        )
    )
    want = []
    for e_ca in range(ei.shape[1]):
        c, a = ei[:, e_ca].tolist()
        for e_ba in range(qei.shape[1]):
            b, a2 = qei[:, e_ba].tolist()
            if a2 != a or b == c:
                continue
            for e_db in range(qei.shape[1]):
                d, b2 = qei[:, e_db].tolist()
                if b2 == b and d not in (a, c):
                    want.append((e_ca, e_ba, e_db))
    assert got == sorted(want) and len(want) > 0
    # the triplets each quadruplet joins share the middle edge b -> a
    mid_out = idx["trip_out_mid"][idx["quad_trip_out"]]
    assert torch.equal(mid_out, idx["trip_in_mid"][idx["quad_trip_in"]])
    assert torch.all(idx["quad_out"][1:] >= idx["quad_out"][:-1])


def test_factorised_dihedral_sum_matches_explicit_quadruplets():
    """The O(triplets) sum over d equals the explicit sum over the quadruplets."""
    ei, n = _tiny_graph()
    qei = ei[:, torch.tensor([0, 1, 2, 3, 5, 6, 7, 8, 9, 12])]
    full = quadruplets(ei, qei, n)
    tri = quadruplet_triplets(ei, qei, n)
    for key in ("trip_out_out", "trip_out_mid", "trip_in_mid", "trip_in_in"):
        assert torch.equal(full[key], tri[key])
    assert torch.any(tri["self_term"] >= 0)  # the d == c exclusion is exercised
    gen = torch.Generator().manual_seed(0)
    n_in, n_out, s = len(tri["trip_in_mid"]), len(tri["trip_out_mid"]), 4
    x = torch.randn(n_in, 3, generator=gen, dtype=torch.float64)
    z_c = torch.randn(n_out, s, 2, generator=gen, dtype=torch.float64)
    z_d = torch.randn(n_in, s, 2, generator=gen, dtype=torch.float64)
    got = dihedral_sum(
        x, z_c, z_d, tri["trip_in_mid"], tri["trip_out_mid"], tri["self_term"], qei.shape[1]
    )
    want = torch.zeros(n_out, s, 3, dtype=torch.float64)
    for t, i in zip(full["quad_trip_out"].tolist(), full["quad_trip_in"].tolist(), strict=True):
        want[t] += (z_c[t] * z_d[i]).sum(-1).unsqueeze(-1) * x[i]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_azimuth_modes_give_dihedral_cosines_in_any_frame():
    """Re(z1^k conj z2^k) = rho1^k rho2^k cos(k phi), independent of the reference."""
    gen = torch.Generator().manual_seed(0)
    axis = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    axis = axis / axis.norm(dim=1, keepdim=True)
    v1, v2 = (torch.randn(20, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    p1 = torch.linalg.cross(v1, axis)
    p2 = torch.linalg.cross(v2, axis)
    cos_phi = (p1 * p2).sum(-1) / (p1.norm(dim=1) * p2.norm(dim=1))
    phi = torch.arccos(cos_phi.clamp(-1, 1))
    rho1 = p1.norm(dim=1) / torch.sqrt(p1.square().sum(-1) + 1e-9)
    rho2 = p2.norm(dim=1) / torch.sqrt(p2.square().sum(-1) + 1e-9)
    ref = reference_directions(axis)
    other = torch.linalg.cross(axis, ref) * 0.6 + ref * 0.8  # another unit normal
    for frame in (ref, other):
        prod = (azimuth_modes(v1, axis, frame, 5) * azimuth_modes(v2, axis, frame, 5)).sum(-1)
        k = torch.arange(5, dtype=torch.float64)
        want = (rho1 * rho2).unsqueeze(1) ** k * torch.cos(k * phi.unsqueeze(1))
        torch.testing.assert_close(prod, want, rtol=1e-10, atol=1e-10)
    # vectors along the axis: modes k >= 1 vanish (undefined azimuth), no NaN
    along = azimuth_modes(3.0 * axis, axis, ref, 5)
    assert torch.isfinite(along).all() and along[:, 1:].abs().max() < 1e-4


def test_nearest_edges_per_centre_brute_force():
    gen = torch.Generator().manual_seed(0)
    centre = torch.randint(0, 6, (40,), generator=gen).sort().values
    dist = torch.rand(40, generator=gen, dtype=torch.float64) * 4.0
    got = nearest_edges_per_centre(dist, centre, 6, 3.0, 3)
    want = []
    for a in range(6):
        cand = [e for e in range(40) if centre[e] == a and dist[e] < 3.0]
        want += sorted(cand, key=lambda e: float(dist[e]))[:3]
    assert got.tolist() == sorted(want) and len(want) > 6


def test_reverse_edges_brute_force():
    ei, n = _tiny_graph()
    rev = reverse_edges(ei, n)
    pairs = [tuple(p) for p in ei.T.tolist()]
    want = [pairs.index((v, u)) if (v, u) in pairs else -1 for u, v in pairs]
    assert rev.tolist() == want and -1 in want


def test_angle_sums_match_explicit_triplets():
    """The per-centre batched product equals the sum over triplets c -> a <- b."""
    ei, n = _tiny_graph()
    gen = torch.Generator().manual_seed(0)
    t_out, t_in = triplets(ei, ei, n)
    ang = torch.randn(len(t_out), 3, generator=gen, dtype=torch.float64)
    x = torch.randn(ei.shape[1], 5, generator=gen, dtype=torch.float64)
    slot, width = slots_in_group(ei[1], n)
    ang_atom = angles_by_centre(ang, t_out, t_in, ei[1], slot, width, n)
    got = angle_sums(x, ang_atom, ei[1], slot)
    want = torch.zeros(ei.shape[1], 3, 5, dtype=torch.float64)
    for t in range(len(t_out)):
        want[t_out[t]] += torch.outer(ang[t], x[t_in[t]])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_angles_in_slots_match_the_triplet_list():
    """The dense per-centre angular matrices equal those scattered from the triplet list."""
    ei, n = _tiny_graph()
    gen = torch.Generator().manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(ei.shape[1], 3, generator=gen), dim=1)
    t_out, t_in = triplets(ei, ei, n)
    slot, width = slots_in_group(ei[1], n)
    ang = legendre((unit[t_out] * unit[t_in]).sum(-1), 4)
    want = angles_by_centre(ang, t_out, t_in, ei[1], slot, width, n)
    got, ok = angles_in_slots(unit, ei[0], ei[1], slot, width, n, 4)
    assert torch.equal(got, want)
    assert int(ok.sum()) == len(t_out)


def test_basis_product_gradients():
    """The hand-written backward of the quadruplet product (gradients of u and z without
    a basis-sized gradient) agrees with finite differences (float64 gradcheck)."""
    gen = torch.Generator().manual_seed(0)
    a, o, kq, s, sbf, k = 2, 2, 2, 3, 2, 3

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    pw, u, z = rand(a, o, kq * s * 2 * sbf), rand(a, kq, s, sbf, k), rand(a, kq, s, 2, k)

    def product(pw, u, z):
        basis = (u.unsqueeze(3) * z.unsqueeze(4)).reshape(a, kq * s * 2, sbf * k)
        return _BasisProduct.apply(pw, u, z, basis.detach())

    assert torch.autograd.gradcheck(product, (pw, u, z))
