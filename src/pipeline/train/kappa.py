"""FLOPs of forward passes over D atoms for several model sizes N (the kappa stage)."""

from __future__ import annotations

import logging

import pandas as pd
import torch

from pipeline import models
from pipeline.data.loader import make_batch
from pipeline.data.store import MoleculeStore
from pipeline.train.flops import count_forward_flops

logger = logging.getLogger(__name__)


def measure_flop_points(
    arch: str,
    widths: list[int],
    hparams: dict,
    val_h5,
    num_molecules: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """Forward FLOPs of each width's model over the first ``num_molecules`` molecules.

    Returns
    -------
    DataFrame
        One row per width: arch, width, n_params, atoms (D), flops_counted (what
        FlopCounterMode sees: matmul/bmm/conv/attention), flops_uncounted_estimate
        (one FLOP per element of other operators), flops_total.
    """
    store = MoleculeStore.from_h5(val_h5)
    count = min(num_molecules, store.num_molecules)
    rows = []
    for width in widths:
        torch.manual_seed(seed)
        model = models.build(arch, width=width, **hparams)
        batch = make_batch(store, list(range(count)), model.cutoff, model.max_neighbors)
        inputs = (batch.atomic_numbers, batch.positions, batch.edge_index, batch.batch, count)
        flops = count_forward_flops(model, inputs)
        rows.append(
            {
                "arch": arch,
                "width": width,
                "n_params": models.num_params(model),
                "atoms": int(batch.atomic_numbers.shape[0]),
                "flops_counted": flops["counted"],
                "flops_uncounted_estimate": flops["uncounted_estimate"],
                "flops_total": flops["total"],
            }
        )
        logger.info("%s width %d: %s", arch, width, rows[-1])
    return pd.DataFrame(rows)
