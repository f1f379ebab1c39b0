"""Atomic checkpoints that refuse to resume a different configuration."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed (corrupt, or of another configuration)."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read."""


def fingerprint(spec: dict) -> str:
    """A stable hash of everything that determines a run's trajectory."""
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_atomic(state: dict, path: str | Path) -> None:
    """Write ``state`` with torch.save to a temporary name, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, expected_fingerprint: str) -> dict:
    """Load a resume checkpoint, checking that it belongs to this configuration."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises several types for a damaged file
        raise CorruptCheckpointError(
            f"{path}: corrupt checkpoint ({type(error).__name__}: {error}); delete it or set "
            "train.restart_corrupt_checkpoint to start fresh"
        ) from error
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise CorruptCheckpointError(f"{path}: not a training checkpoint of this pipeline")
    if state["fingerprint"] != expected_fingerprint:
        raise CheckpointError(
            f"{path}: checkpoint of a different configuration (fingerprint "
            f"{state['fingerprint']} != {expected_fingerprint}); refusing to mix runs, delete it "
            "to start fresh"
        )
    return state
