"""One side of benchmarks/bench_fairchem_gemnet.py: our GemNet-OC or fairchem-core 1.10's.

Run by the driver in a fresh process per measurement, with the interpreter of the side it
measures: ``--side ours`` with the project's venv (imports :mod:`pipeline`), ``--side
fairchem`` with a venv that has fairchem-core 1.10 (imports nothing from the project).
Reads a ``torch.save``'d dict (``--data``) and a JSON settings string (``--settings``),
prints one line ``RESULT {json}``. Tasks:

- ``count``: trainable parameters of the model built from the settings.
- ``time``: process CPU and wall seconds of forward + loss + backward on one batch,
  after one warm-up step (scale factors unfitted on both sides).
- ``train``: fit the scale factors on the first training batch (ours:
  ``GemNetOC.prepare``; fairchem: its ``ScaleFactor`` fitting procedure, one factor at
  a time in execution order as ``fairchem.core.modules.scaling.fit`` does, on that one
  batch), then schedule-free AdamW on the saved batches with the eq. 1 loss; validation
  loss (schedule-free averaged weights) every ``eval_every`` steps.

Setting ``standin`` (fairchem side only): ``"both"`` replaces torch-scatter and
torch-sparse, which fairchem's GemNet-OC imports and PyPI ships only as source, with
the few functions it uses written in plain torch (:func:`install_standin`), registered
in ``sys.modules`` of this process only; ``"sparse"`` replaces torch-sparse alone (its
``SparseTensor`` only builds the triplet and quadruplet index lists, no gradients pass
through it); ``"none"`` uses both compiled packages. The maths is the same (sums over
sorted index groups, row selection of a sparse incidence matrix), so losses are
comparable; step times with a stand-in are not representative of fairchem with the
compiled extensions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types

import torch

# this file's folder is on sys.path when it runs as a script (in either venv)
from bench_fairchem import RESULT_TAG, step_loss, time_steps, train_schedule_free

# ----------------------------------------------------------------------------- stand-in


class _SparseRows:
    """COO matrix sorted by (row, col): the part of ``torch_sparse.SparseTensor`` that
    fairchem's GemNet-OC index builders use (construction, row selection ``adj[idx]``,
    ``storage.row/col/value``, ``coo``, ``sparse_sizes``, ``set_value_``)."""

    def __init__(self, row, col, value=None, sparse_sizes=None, **_ignored):
        if sparse_sizes is None:
            sparse_sizes = (int(row.max()) + 1, int(col.max()) + 1)
        self._sizes = (int(sparse_sizes[0]), int(sparse_sizes[1]))
        perm = torch.argsort(row * self._sizes[1] + col, stable=True)
        self._row, self._col = row[perm], col[perm]
        self._value = None if value is None else value[perm]
        self.storage = self

    def row(self):
        return self._row

    def col(self):
        return self._col

    def value(self):
        return self._value

    def coo(self):
        return self._row, self._col, self._value

    def sparse_sizes(self):
        return self._sizes

    def set_value_(self, value, layout=None):
        if layout not in (None, "coo"):
            raise NotImplementedError(f"stand-in SparseTensor: layout {layout!r}")
        self._value = value
        return self

    def __getitem__(self, idx):
        """Rows ``idx`` (long [K]) in that order: a K x cols matrix."""
        if not (isinstance(idx, torch.Tensor) and idx.dtype == torch.long and idx.dim() == 1):
            raise NotImplementedError("stand-in SparseTensor: only a 1-D long row index")
        counts = torch.bincount(self._row, minlength=self._sizes[0])
        starts = torch.cumsum(counts, 0) - counts
        take = counts[idx]  # [K]
        out_row = torch.repeat_interleave(torch.arange(len(idx)), take)
        first = torch.cumsum(take, 0) - take
        pos = torch.repeat_interleave(starts[idx] - first, take) + torch.arange(int(take.sum()))
        value = None if self._value is None else self._value[pos]
        out = _SparseRows.__new__(_SparseRows)
        out._sizes = (len(idx), self._sizes[1])
        out._row, out._col, out._value = out_row, self._col[pos], value
        out.storage = out
        return out


def _scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
    dim = dim % src.dim()
    if out is not None or index.dim() != 1 or index.numel() != src.shape[dim]:
        raise NotImplementedError("stand-in scatter: 1-D index along dim, no out")
    size = list(src.shape)
    size[dim] = int(index.max()) + 1 if dim_size is None else int(dim_size)
    res = src.new_zeros(size).index_add_(dim, index, src)
    if reduce in ("sum", "add"):
        return res
    if reduce == "mean":
        count = torch.zeros(size[dim], dtype=src.dtype).index_add_(
            0, index, torch.ones(len(index), dtype=src.dtype)
        )
        shape = [1] * src.dim()
        shape[dim] = -1
        return res / count.clamp(min=1).view(shape)
    raise NotImplementedError(f"stand-in scatter: reduce {reduce!r}")


def _segment_coo(src, index, out=None, dim_size=None, reduce="sum"):
    if out is not None or reduce not in ("sum", "add") or index.dim() != 1:
        raise NotImplementedError("stand-in segment_coo: 1-D sum only")
    size = int(index.max()) + 1 if dim_size is None else int(dim_size)
    return src.new_zeros((size, *src.shape[1:])).index_add_(0, index, src)


def _segment_csr(src, indptr, out=None, reduce="sum"):
    if out is not None or reduce not in ("sum", "add") or src.dim() != 1:
        raise NotImplementedError("stand-in segment_csr: 1-D sum only")
    cs = torch.cat([src.new_zeros(1), torch.cumsum(src, 0)])
    return cs[indptr[1:]] - cs[indptr[:-1]]


def install_standin(scatter: bool = True, sparse: bool = True) -> None:
    """Register plain-torch ``torch_scatter`` and/or ``torch_sparse`` in this process.

    torch_geometric is imported first, so that it records a replaced extension as
    absent and never routes its own operations through the stand-ins.
    """
    import torch_geometric.typing  # noqa: F401

    if scatter:
        scatter_mod = types.ModuleType("torch_scatter")
        scatter_mod.scatter = _scatter
        scatter_mod.segment_coo = _segment_coo
        scatter_mod.segment_csr = _segment_csr
        scatter_mod.__version__ = "stand-in"
        sys.modules["torch_scatter"] = scatter_mod
    if sparse:
        sparse_mod = types.ModuleType("torch_sparse")
        sparse_mod.SparseTensor = _SparseRows
        sparse_mod.__version__ = "stand-in"
        sys.modules["torch_sparse"] = sparse_mod


# ----------------------------------------------------------------------------- models


def _ours(s: dict):
    from pipeline.models import build

    torch.manual_seed(s["seed"])
    model = build("gemnet_oc", width=s["width"], **s["hparams"])

    def forward(b):
        z, pos, e = b["atomic_numbers"], b["positions"], b["edge_index"]
        return model(z, pos, e, b["batch"], int(b["n_atoms"].numel()))

    def fit(b):
        model.prepare(
            b["atomic_numbers"],
            b["positions"],
            b["edge_index"],
            b["batch"],
            int(b["n_atoms"].numel()),
        )

    return model, forward, fit


def fairchem_kwargs(width: int, hp: dict) -> dict:
    """fairchem GemNetOC keywords for our ``width`` and hparams (see the driver's docstring
    for the mapping and the choices that are not one-to-one)."""
    cutoff, nb = hp["cutoff"], hp["max_neighbors"]
    return dict(
        num_spherical=hp.get("num_spherical", 7),
        num_radial=hp["num_radial"],
        num_blocks=hp["num_layers"],
        emb_size_atom=width,
        emb_size_edge=width,
        emb_size_trip_in=hp["emb_size_trip_in"],
        emb_size_trip_out=hp["emb_size_trip_out"],
        emb_size_quad_in=hp["emb_size_quad_in"],
        emb_size_quad_out=hp["emb_size_quad_out"],
        emb_size_aint_in=hp["emb_size_aint_in"],
        emb_size_aint_out=hp["emb_size_aint_out"],
        emb_size_rbf=hp["emb_size_rbf"],
        emb_size_cbf=hp["emb_size_cbf"],
        emb_size_sbf=hp["emb_size_sbf"],
        num_before_skip=hp.get("num_before_skip", 2),
        num_after_skip=hp.get("num_after_skip", 2),
        num_concat=hp.get("num_concat", 1),
        num_atom=hp.get("num_atom", 2),
        num_output_afteratom=hp.get("num_output_afteratom", 3),
        num_atom_emb_layers=hp.get("num_atom_emb_layers", 2),
        num_global_out_layers=hp.get("num_global_out_layers", 2),
        regress_forces=True,
        direct_forces=True,
        use_pbc=False,
        otf_graph=False,
        cutoff=cutoff,
        cutoff_qint=hp.get("cutoff_qint") or cutoff,
        cutoff_aeaint=cutoff,
        cutoff_aint=cutoff,
        max_neighbors=nb,
        max_neighbors_qint=hp.get("max_neighbors_qint") or max(1, int(nb * 8 / 30)),
        max_neighbors_aeaint=nb,
        max_neighbors_aint=nb,
        rbf={"name": "gaussian"},
        envelope={"name": "polynomial", "exponent": hp.get("envelope_exponent", 5)},
        cbf={"name": "spherical_harmonics"},
        sbf={"name": "legendre_outer"},
        extensive=True,
        forces_coupled=False,
        output_init="HeOrthogonal",
        activation="silu",
        quad_interaction=True,
        atom_edge_interaction=True,
        edge_atom_interaction=True,
        atom_interaction=True,
        num_elements=hp.get("num_elements", 83),
        scale_file=None,
    )


def _fairchem_data(b: dict):
    from torch_geometric.data import Data

    n = b["atomic_numbers"].numel()
    return Data(
        pos=b["positions"],
        atomic_numbers=b["atomic_numbers"],
        batch=b["batch"],
        natoms=b["n_atoms"],
        edge_index=b["edge_index"],
        tags=torch.zeros(n, dtype=torch.long),
        fixed=torch.zeros(n, dtype=torch.long),
    )


def _fit_fairchem_scales(model, forward, batch) -> int:
    """fairchem's fitting procedure on one batch: order the factors by a first forward
    pass, then fit each in that order on a forward pass with the earlier ones fitted."""
    from fairchem.core.modules.scaling import ScaleFactor

    factors = {n: m for n, m in model.named_modules() if isinstance(m, ScaleFactor)}
    order: dict[str, int] = {}
    for name, module in factors.items():
        module.reset_()
        module.initialize_(index_fn=lambda name=name: order.setdefault(name, len(order)))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        forward(batch)
        for name in sorted(order, key=order.get):
            with factors[name].fit_context_():
                forward(batch)
                factors[name].fit_()
    for module in factors.values():
        module.initialize_(index_fn=None)
    model.train(was_training)
    return len(order)


def _fairchem(s: dict):
    standin = {True: "both", False: "none"}.get(s.get("standin"), s.get("standin", "none"))
    if standin not in ("none", "sparse", "both"):
        raise ValueError(f"standin must be none, sparse or both, got {standin!r}")
    if standin != "none":
        install_standin(scatter=standin == "both", sparse=True)
    from fairchem.core.models.gemnet_oc.gemnet_oc import GemNetOC

    torch.manual_seed(s["seed"])
    model = GemNetOC(**fairchem_kwargs(s["width"], s["hparams"]))

    def forward(b):
        if "data" not in b:
            b["data"] = _fairchem_data(b)
        out = model(b["data"])
        return out["energy"], out["forces"]

    def fit(b):
        s["fitted"] = _fit_fairchem_scales(model, forward, b)

    return model, forward, fit


# ----------------------------------------------------------------------------- tasks


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train(model, forward, fit, data: dict, s: dict) -> dict:
    """Scale factors on the first batch, then the eSEN comparison's training loop."""
    t0 = time.process_time()
    fit(data["train"][0])
    fit_cpu = time.process_time() - t0
    res = train_schedule_free(
        model,
        forward,
        data,
        lr=s["lr"],
        warmup_steps=s["warmup_steps"],
        eval_every=s["eval_every"],
        params=[p for p in model.parameters() if p.requires_grad],
        log=True,
    )
    return res | {"fit_cpu": fit_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["ours", "fairchem"], required=True)
    parser.add_argument("--task", choices=["count", "time", "train"], required=True)
    parser.add_argument("--data", help="torch.save'd batch (time) or batches (train)")
    parser.add_argument("--settings", required=True, help="JSON: width, hparams, seed, ...")
    args = parser.parse_args()
    s = json.loads(args.settings)
    torch.set_num_threads(s.get("threads", 1))
    model, forward, fit = (_ours if args.side == "ours" else _fairchem)(s)
    result = {"params": count(model), "width": s["width"]}
    if args.task == "time":
        batch = torch.load(args.data)
        model.train()
        wall, cpu = time_steps(model, lambda: step_loss(*forward(batch)), s["repeats"])
        result |= {"wall": wall, "cpu": cpu}
    elif args.task == "train":
        result |= train(model, forward, fit, torch.load(args.data), s)
        result["fitted_scale_factors"] = s.get("fitted")
    if args.side == "fairchem":
        import torch_scatter
        import torch_sparse

        result["torch_scatter"] = getattr(torch_scatter, "__version__", "?")
        result["torch_sparse"] = getattr(torch_sparse, "__version__", "?")
    print(RESULT_TAG + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
