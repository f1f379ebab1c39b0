"""Continue a shared-fraction pass to a larger fraction instead of retraining it.

Fractions are prefixes of one shuffled training set and schedule-free optimisation has
no horizon, so the pass over fractions [a, b, c] is the pass over [a, b] followed by
more steps. When a shared job ends it keeps its end state (model, optimizer, RNG states,
curve rows, counters: :class:`~pipeline.train.state.TrainState`) and every fraction's
model.pt in a pass folder beside the fraction folders::

    {...}/{arch}/{width}/pass-seed{seed}/end_state.pt
    {...}/{arch}/{width}/pass-seed{seed}/fraction_{r}.model.pt

That folder is no declared output, so Snakemake does not delete it when it reruns the
job after a fraction was added. A later job of the same pass whose fractions extend the
saved ones (the saved fractions first, at least one larger one after them) restores the
end state, rewrites the earlier fractions' folders from the saved rows and models and
trains on; any other change (a new smaller fraction, other hyperparameters, other data:
a different fingerprint) starts fresh, and the reason is logged.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import torch

from pipeline.train.checkpoint import fingerprint, save_atomic

logger = logging.getLogger(__name__)

END_STATE = "end_state.pt"


def pass_dir(fraction_dirs: dict[float, Path], seed: int) -> Path:
    """The pass folder of a shared job: ``pass-seed{seed}`` in the width folder.

    The width folder is the parent of the fraction level of the run folders:
    ``{width}/{fraction}/seed{seed}`` (the seed layout) or ``{width}/{fraction}``.
    """
    run_dir = Path(fraction_dirs[max(fraction_dirs)])
    fraction_level = run_dir.parent if re.fullmatch(r"seed\d+", run_dir.name) else run_dir
    return fraction_level.parent / f"pass-seed{seed}"


def pass_fingerprint(spec: dict) -> str:
    """Fingerprint of everything that determines a pass's trajectory except where it
    ends: the job spec without its fractions and their molecule counts."""
    return fingerprint({k: v for k, v in spec.items() if k not in ("fractions", "counts")})


def _model_file(folder: Path, fraction: float) -> Path:
    return folder / f"fraction_{fraction:g}.model.pt"


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (no extra disk), copying across file systems."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


def save_pass_end(
    folder: Path, state_dict: dict, spec: dict, staged_models: dict[float, Path]
) -> None:
    """Keep a finished shared pass: every fraction's model.pt, then the end state.

    The old end state is removed first and the new one written last, so an end state
    on disk always belongs to the model files beside it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / END_STATE).unlink(missing_ok=True)
    for fraction, staged in staged_models.items():
        _link_or_copy(staged, _model_file(folder, fraction))
    payload = {
        "fingerprint": pass_fingerprint(spec),
        "spec": spec,
        "fractions": spec["fractions"],
        **state_dict,
    }
    save_atomic(payload, folder / END_STATE)
    logger.info("pass end state kept for continuation: %s", folder / END_STATE)


def load_pass_end(folder: Path, spec: dict) -> dict | None:
    """The saved end state of this pass when ``spec``'s fractions extend it, else None.

    Returns the stored dict (a :class:`TrainState` state dict plus ``fractions`` and
    ``fraction_models``: fraction -> model.pt payload of every saved fraction). Every
    reason not to continue is logged.
    """
    path = folder / END_STATE
    if not path.exists():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for a damaged file
        logger.warning("%s: unreadable (%s: %s); training from scratch", path, type(error), error)
        return None
    if stored.get("fingerprint") != pass_fingerprint(spec):
        logger.info(
            "%s: saved pass has other settings, data or model (fingerprint %s != %s); "
            "training from scratch",
            path,
            stored.get("fingerprint"),
            pass_fingerprint(spec),
        )
        return None
    saved, wanted = list(stored["fractions"]), list(spec["fractions"])
    if wanted[: len(saved)] != saved or len(wanted) == len(saved):
        logger.info(
            "%s: fractions %s do not extend the saved pass's %s by larger ones; "
            "training from scratch",
            path,
            wanted,
            saved,
        )
        return None
    try:
        stored["fraction_models"] = {
            r: torch.load(_model_file(folder, r), map_location="cpu", weights_only=True)
            for r in saved
        }
    except Exception as error:  # a missing or damaged model file
        logger.warning(
            "%s: a fraction's model is unreadable (%s); training from scratch", folder, error
        )
        return None
    logger.info("continuing the pass over %s from %s to %s", saved, path, wanted)
    return stored
