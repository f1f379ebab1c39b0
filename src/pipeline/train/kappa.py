"""FLOPs of forward passes over D atoms for several model sizes N and batches (the kappa stage)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
    batch_molecules: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Forward FLOPs of each width's model over the first molecules, at several batch sizes.

    Parameters
    ----------
    arch : str
        Registry name of the model family.
    widths : list of int
        The ladder's widths.
    hparams : dict
        The family's other hyperparameters.
    val_h5 : path
        Validation store the batches are drawn from.
    num_molecules : int
        Largest batch, in molecules.
    seed : int
        Seed of the model initialisation.
    batch_molecules : sequence of int, optional
        Batches measured (molecules); default ``(num_molecules // 4, num_molecules)``,
        so that D varies (eq. 3 is fitted over N and D).

    Returns
    -------
    DataFrame
        One row per (width, batch): arch, width, n_params, molecules, atoms (D),
        flops_counted (what FlopCounterMode sees: matmul/bmm/conv/attention),
        flops_uncounted_estimate (one FLOP per element of other operators),
        flops_total.
    """
    store = MoleculeStore.from_h5(val_h5)
    largest = min(num_molecules, store.num_molecules)
    sizes = batch_molecules or (max(1, largest // 4), largest)
    sizes = sorted({min(int(m), store.num_molecules) for m in sizes})
    if len(sizes) < 2:
        logger.warning("%s: kappa measured at one batch size (%s molecules)", arch, sizes)
    rows = []
    for width in widths:
        torch.manual_seed(seed)
        model = models.build(arch, width=width, **hparams)
        for count in sizes:
            batch = make_batch(store, list(range(count)), model.cutoff, model.max_neighbors)
            inputs = (batch.atomic_numbers, batch.positions, batch.edge_index, batch.batch, count)
            flops = count_forward_flops(model, inputs)
            rows.append(
                {
                    "arch": arch,
                    "width": width,
                    "n_params": models.num_params(model),
                    "molecules": count,
                    "atoms": int(batch.atomic_numbers.shape[0]),
                    "flops_counted": flops["counted"],
                    "flops_uncounted_estimate": flops["uncounted_estimate"],
                    "flops_total": flops["total"],
                }
            )
            logger.info("%s width %d: %s", arch, width, rows[-1])
    return pd.DataFrame(rows)
