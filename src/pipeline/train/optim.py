"""Schedule-free AdamW (its learning rate per width: pipeline.config.mup_learning_rate)."""

from __future__ import annotations

import contextlib

import schedulefree
import torch


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
) -> schedulefree.AdamWScheduleFree:
    """Schedule-free AdamW in train mode (``optimizer.train()`` already called)."""
    optimizer = schedulefree.AdamWScheduleFree(
        model.parameters(),
        lr=lr,
        betas=betas,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
    )
    optimizer.train()
    return optimizer


@contextlib.contextmanager
def evaluation_weights(model: torch.nn.Module, optimizer: schedulefree.AdamWScheduleFree):
    """Swap in the schedule-free averaged weights x for evaluation, then restore exactly.

    ``optimizer.eval()`` followed by ``optimizer.train()`` interpolates twice and does not
    round-trip bit for bit; restoring a copy keeps evaluation from perturbing training, so
    that a run's trajectory does not depend on how often it is evaluated.
    """
    saved = [p.detach().clone() for p in model.parameters()]
    was_training = model.training
    optimizer.eval()
    model.eval()
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved, strict=True):
                p.copy_(s)
        for group in optimizer.param_groups:
            group["train_mode"] = True
        model.train(was_training)
