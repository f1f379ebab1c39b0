"""GemNet-OC: the quadruplet sum and graph, scale factors, robustness, training, Table 6
parameter counts (index constructions: test_gemnet_oc_graph.py; symmetries:
test_symmetry.py)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.models import build, num_params
from pipeline.models.gemnet_oc import GemNetOC
from pipeline.models.gemnet_oc_graph import nearest_edges_per_centre, quadruplets
from pipeline.models.gemnet_oc_quad import quadruplet_sum
from pipeline.models.gemnet_oc_scale import ScaleFactor
from tests.models.conftest import (
    MolBatch,
    assert_finite_with_grads,
    demo_molecules,
    random_molecules,
    train_losses,
)

LADDER = Path(__file__).resolve().parents[2] / "docs" / "ladders_gemnet_oc.yaml"


def _small(**kw) -> GemNetOC:
    """A narrow model with the default structure (all interactions), in float64."""
    return GemNetOC(**({"width": 16, "num_layers": 2} | kw)).double()


def _num_quadruplets(quad: dict | None) -> int:
    """Quadruplets behind the factorised bases: triplet pairs sharing b -> a, minus d == c."""
    if quad is None:
        return 0
    pairs = quad["out_ok"].sum(1) * quad["in_ok"].sum(2)  # per slot of b -> a [A, Kq]
    return int(pairs.sum()) - len(quad["self_out"])


# --- the quadruplet sum in the model (index constructions: test_gemnet_oc_graph.py) ---


def test_quadruplet_sum_matches_explicit_quadruplets(molecules):
    """The model's per-centre quadruplet sum equals the explicit sum over quadruplets
    c -> a <- b <- d (d != c) of u[t, k, :] Re(z_c^k conj z_d^k) x[a <- b <- d]."""
    model = _small(cutoff_qint=3.0, max_neighbors_qint=4)
    edges = molecules.edges(model.cutoff, model.max_neighbors)
    q_edges = nearest_edges_per_centre(
        (molecules.pos[edges[0]] - molecules.pos[edges[1]]).norm(dim=1), edges[1], 21, 3.0, 4
    )
    quad = model._graph(molecules.pos, edges, 21)["quad"]
    assert torch.equal(quad["q_edges"], q_edges)
    full = quadruplets(edges, edges[:, q_edges], 21)
    kq, width = quad["qpad"].shape[1], quad["basis"].shape[2] // 8
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(21, kq, kq, 3, generator=gen, dtype=torch.float64)
    weight = torch.randn(2, 8 * 3, generator=gen, dtype=torch.float64)  # bilinear, sbf-major
    got = quadruplet_sum(x_t, quad, weight)  # [E, 2]
    # slots of the edges at their centres, read back from the padded layouts
    q_slot = {int(e): j for a in range(21) for j, e in enumerate(quad["qpad"][a]) if e >= 0}
    slot = quad["slot"]
    basis = quad["basis"].view(21, kq, 7, 2, 8, width)  # rows (j, k, re/im), cols (sbf, i)
    z_d = quad["z_d"].view(21, kq, kq, 7, 2)
    want = torch.zeros(edges.shape[1], 3, 8, dtype=torch.float64)
    for e_ca, t, i in zip(
        full["quad_out"].tolist(),
        full["quad_trip_out"].tolist(),
        full["quad_trip_in"].tolist(),
        strict=True,
    ):
        a = int(edges[1, e_ca])
        j = q_slot[int(q_edges[full["trip_out_mid"][t]])]
        jd = q_slot[int(q_edges[full["trip_in_in"][i]])]
        b_t = basis[a, j, :, :, :, slot[e_ca]]  # [S, 2, sbf]
        want[e_ca] += torch.outer(x_t[a, j, jd], (b_t * z_d[a, j, jd, :, :, None]).sum((0, 1)))
    assert len(full["quad_out"]) > 100
    assert _num_quadruplets(quad) == len(full["quad_out"])
    want = want.transpose(1, 2).flatten(1) @ weight.T
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


# --- registry (symmetries: tests/models/test_symmetry.py) ------------------------------


def test_shapes_and_registry(molecules):
    model = build("gemnet_oc", width=16, num_layers=2).double()
    assert isinstance(model, GemNetOC)
    assert model.cutoff == 10.0 and model.max_neighbors == 50
    assert GemNetOC.properties == dict(characteristic="invariant", tensor_order=0, body_order=4)
    # what the symmetry tests below check numerically
    assert GemNetOC.symmetries == {"rotation", "reflection", "translation", "permutation"}
    assert GemNetOC.forces == "direct"
    energy, forces = molecules.run(model)
    assert energy.shape == (molecules.num_molecules,) and forces.shape == (len(molecules.z), 3)


def test_quadruplet_graph_defaults_scale_the_reference():
    """The reference's quadruplet graph (OC20: 12 A / 8 beside 12 A / 30) scaled to ours."""
    paper = build("gemnet_oc", width=8)
    assert (paper.cutoff_qint, paper.max_neighbors_qint) == (10.0, 13)
    demo = build("gemnet_oc", width=8, cutoff=6.0, max_neighbors=30)
    assert (demo.cutoff_qint, demo.max_neighbors_qint) == (6.0, 8)
    with pytest.raises(ValueError, match="max_neighbors_qint"):
        GemNetOC(width=8, max_neighbors_qint=0)
    with pytest.raises(ValueError, match="cutoff_qint"):
        GemNetOC(width=8, cutoff_qint=12.0)


def test_quadruplet_graph_is_capped_per_centre(molecules):
    """Quadruplet-graph edges: per centre the nearest max_neighbors_qint main-graph edges
    within cutoff_qint, so quadruplets grow with the cap, not with the main graph."""
    model = _small(cutoff_qint=4.0, max_neighbors_qint=2)
    edges = molecules.edges(model.cutoff, model.max_neighbors)
    g = model._graph(molecules.pos, edges, len(molecules.z))
    q_edges = g["quad"]["q_edges"]
    dist = (molecules.pos[edges[0]] - molecules.pos[edges[1]]).norm(dim=1)
    per_centre = torch.bincount(edges[1, q_edges], minlength=len(molecules.z))
    assert per_centre.max() == 2 and torch.all(dist[q_edges] < 4.0)
    for e in range(edges.shape[1]):  # every edge left out is farther than the kept ones
        kept = q_edges[edges[1, q_edges] == edges[1, e]]
        if e not in q_edges.tolist() and dist[e] < 4.0:
            assert len(kept) == 2 and dist[e] >= dist[kept].max()
    wider = _small(cutoff_qint=4.0, max_neighbors_qint=4)
    g_wide = wider._graph(molecules.pos, edges, len(molecules.z))
    assert _num_quadruplets(g_wide["quad"]) > _num_quadruplets(g["quad"]) > 0


def test_quadruplets_are_used(molecules):
    """The test molecules have quadruplets within cutoff_qint, so eq. (10) is exercised."""
    model = _small()
    g = model._graph(molecules.pos, molecules.edges(model.cutoff, model.max_neighbors), 21)
    assert _num_quadruplets(g["quad"]) > 50


def test_molecules_do_not_interact(edge_cases):
    model = _small()
    energy, forces = edge_cases.run(model)
    for m in range(edge_cases.num_molecules):
        mask = edge_cases.batch == m
        sub = MolBatch(
            edge_cases.z[mask], edge_cases.pos[mask], torch.zeros(int(mask.sum()), dtype=int), 1
        )
        e_m, f_m = sub.run(model)
        torch.testing.assert_close(e_m[0], energy[m], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(f_m, forces[mask], rtol=1e-12, atol=1e-12)


# --- data-fitted scale factors ------------------------------------------------------------


def _scale_factors(model: GemNetOC) -> dict[str, ScaleFactor]:
    return {n: m for n, m in model.named_modules() if isinstance(m, ScaleFactor)}


def test_unprepared_model_runs_with_scale_one(molecules):
    model = _small()
    factors = _scale_factors(model)
    assert len(factors) == 2 * 11 + 3 * 2  # per interaction block 11, per output block 2
    assert all(float(f.scale) == 1.0 and not bool(f.fitted) for f in factors.values())
    energy, forces = molecules.run(model)
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()


def test_prepare_scales_activations_to_the_variance_of_their_inputs(molecules):
    """After prepare, every scaled output has the variance of its reference (unit ratio),
    measured on the fitting batch; the fitted factors are far from 1."""
    model = _small()
    edges = molecules.edges(model.cutoff, model.max_neighbors)
    args = (molecules.z, molecules.pos, edges, molecules.batch, molecules.num_molecules)
    model.prepare(*args)
    factors = _scale_factors(model)
    assert all(bool(f.fitted) for f in factors.values())
    ratios = {}

    def observe(name):
        @torch.no_grad()
        def hook(module, inputs, kwargs, output):
            ref, rows = kwargs.get("ref"), kwargs.get("rows")
            ref = ref() if callable(ref) else ref
            var_in = 1.0 if ref is None else ref.var(dim=0).mean()
            out = output if rows is None else output[rows]  # padded: the data rows
            ratios[name] = float(out.var(dim=0).mean() / var_in)

        return hook

    for name, factor in factors.items():
        factor.register_forward_hook(observe(name), with_kwargs=True)
    model(*args)
    assert ratios.keys() == factors.keys()
    for name, ratio in ratios.items():
        assert abs(ratio - 1.0) < 1e-9, (name, ratio)
    scales = torch.tensor([float(f.scale) for f in factors.values()])
    assert (scales - 1.0).abs().max() > 0.5  # the fit changes something


def test_prepared_scales_survive_a_state_dict_round_trip(molecules):
    """Checkpoints carry the fitted factors: a fresh model loading the state_dict gives
    identical outputs without calling prepare again (a resumed run)."""
    torch.manual_seed(0)
    model = _small()
    edges = molecules.edges(model.cutoff, model.max_neighbors)
    model.prepare(molecules.z, molecules.pos, edges, molecules.batch, molecules.num_molecules)
    energy, forces = molecules.run(model)
    state = model.state_dict()
    assert any(k.endswith("scale_sum.scale") for k in state)
    torch.manual_seed(0)
    unprepared = _small()
    e_unprep, _ = molecules.run(unprepared)
    assert not torch.allclose(e_unprep, energy)  # the factors matter
    unprepared.load_state_dict(state)
    e_loaded, f_loaded = molecules.run(unprepared)
    assert torch.equal(e_loaded, energy) and torch.equal(f_loaded, forces)
    assert num_params(unprepared) == num_params(model)  # buffers, not parameters


def test_prepare_without_quadruplets_keeps_those_factors_at_one(caplog):
    """A batch with nothing to fit for some factors leaves them at 1 and says so."""
    model = _small(cutoff_qint=0.5)  # no quadruplet-graph edges in ordinary molecules
    mols = random_molecules(seed=2)
    edges = mols.edges(model.cutoff, model.max_neighbors)
    with caplog.at_level(logging.WARNING, logger="pipeline.models.gemnet_oc_scale"):
        model.prepare(mols.z, mols.pos, edges, mols.batch, mols.num_molecules)
    unfitted = [n for n, f in _scale_factors(model).items() if not bool(f.fitted)]
    assert unfitted and all(".quad." in n for n in unfitted)
    assert all(float(_scale_factors(model)[n].scale) == 1.0 for n in unfitted)
    assert "kept at 1" in caplog.text
    energy, forces = mols.run(model)
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()


# --- robustness -------------------------------------------------------------------------


def _collinear_molecules() -> MolBatch:
    """A straight chain along x (bond angles 0 and pi, undefined dihedrals) and a
    planar zig-zag with one atom on the axis; all within the quadruplet cutoff."""
    chain = torch.tensor([[0.0, 0, 0], [1.2, 0, 0], [2.4, 0, 0], [3.6, 0, 0]])
    bent = torch.tensor([[0.0, 0, 0], [1.1, 0, 0], [1.8, 0.9, 0], [2.9, 0.9, 0], [4.0, 0.9, 0]])
    pos = torch.cat([chain, bent + 30.0]).double()
    z = torch.tensor([6, 6, 6, 6, 8, 6, 7, 6, 1])
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1])
    return MolBatch(z, pos, batch, 2)


def test_collinear_atoms_finite():
    mols = _collinear_molecules()
    model = _small()
    g = model._graph(mols.pos, mols.edges(model.cutoff, model.max_neighbors), len(mols.z))
    assert _num_quadruplets(g["quad"]) > 0  # degenerate dihedrals are present
    assert_finite_with_grads(model, mols)


def test_edge_cases_finite(edge_cases):
    """Edges along z, a 1e-5 Angstrom edge, a single atom, atoms without neighbours, mixed."""
    model = _small()
    assert_finite_with_grads(model, edge_cases)
    energy, forces = edge_cases.run(model)
    assert torch.all(forces[6:] == 0)  # atoms without neighbours feel no direct force


def test_empty_graph():
    model = _small()
    z = torch.tensor([6])
    pos = torch.zeros(1, 3, dtype=torch.float64)
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    energy, forces = model(z, pos, no_edges, torch.zeros(1, dtype=torch.long), 1)
    assert torch.isfinite(energy).all() and torch.equal(forces, torch.zeros(1, 3).double())


def test_energy_continuous_at_quadruplet_cutoff():
    """An atom crossing cutoff_qint removes quadruplets without an energy jump (envelope).

    Without the envelope on the ``d -> b`` edge this jump is about 4e-9 here; with it the
    difference is the slope times 2e-9 Angstrom (about 1e-11).
    """
    model = _small(cutoff_qint=2.0)

    def run(x: float) -> tuple[float, int]:
        pos = torch.tensor(
            [[0.0, 0, 0], [1.2, 0, 0], [1.6, 1.1, 0.0], [1.2 + x, 0.3, 1.0]], dtype=torch.float64
        )
        mols = MolBatch(torch.tensor([6, 6, 8, 1]), pos, torch.zeros(4, dtype=int), 1)
        g = model._graph(pos, mols.edges(model.cutoff, model.max_neighbors), 4)
        return float(mols.run(model)[0][0].detach()), _num_quadruplets(g["quad"])

    # atom 3 sits at distance sqrt(x^2 + 1.09) from atom 1: crosses 2.0 at x = sqrt(2.91)
    x0 = math.sqrt(4.0 - 1.09)
    (e_in, n_in), (e_out, n_out) = run(x0 - 1e-9), run(x0 + 1e-9)
    assert n_in > n_out > 0
    assert abs(e_in - e_out) < 1e-10


def test_rejects_unknown_element(molecules):
    model = _small(num_elements=6)
    with pytest.raises(ValueError, match="1..6"):
        molecules.run(model)


# --- training ---------------------------------------------------------------------------


def test_loss_goes_down_on_demo_data():
    """Full-batch Adam steps on 8 embedded GFN2-xTB molecules lower the eq. (1) loss,
    with scale factors fitted on the batch as the trainer does (measured: 5.78 -> 2.49;
    unfitted, 5.78 -> 5.11)."""
    torch.manual_seed(0)
    model = GemNetOC(width=16, num_layers=2)
    mols, target_e, target_f = demo_molecules(8)
    edges = mols.edges(model.cutoff, model.max_neighbors)
    model.prepare(mols.z, mols.pos, edges, mols.batch, mols.num_molecules)
    losses = train_losses(model, mols, steps=12, lr=3e-3, targets=(target_e, target_f))
    assert all(map(math.isfinite, losses))
    assert losses[-1] < 0.7 * losses[0], losses


# --- Table 6 ----------------------------------------------------------------------------


def _ladder():
    spec = yaml.safe_load(LADDER.read_text())
    return spec["fixed"], spec["ladder"]


@pytest.mark.parametrize("row", _ladder()[1], ids=lambda r: f"w{r['width']}")
def test_table6_parameter_counts(row):
    fixed, _ = _ladder()
    fixed = {k: v for k, v in fixed.items() if k != "num_layers"}
    model = build("gemnet_oc", width=row["width"], num_layers=row["depth"], **fixed)
    n = num_params(model)
    assert abs(n - row["n_params_paper"]) <= 0.02 * row["n_params_paper"]
    assert n == row["n_params_paper"]  # exact, see docs/ladders_gemnet_oc.yaml
    assert n == GemNetOC.param_count_formula(row["width"])
