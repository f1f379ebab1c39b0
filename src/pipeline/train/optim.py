"""Schedule-free AdamW with the muP learning-rate transfer eta(w) = eta* w_base / w."""

from __future__ import annotations

import contextlib

import schedulefree
import torch


def mup_learning_rate(
    lr_base: float, base_width: int, width: int, lr_max: float | None = None
) -> float:
    """eta(w) = eta* * w_base / w (Yang et al. 2021, as in section 3.3 of the paper), at
    most ``lr_max``: the 1/w rule grows without bound at the narrowest widths, where a
    few-channel model no longer behaves like the wide one the rate was tuned on."""
    if width <= 0 or base_width <= 0:
        raise ValueError(f"widths must be positive, got width={width}, base_width={base_width}")
    if lr_max is not None and lr_max <= 0:
        raise ValueError(f"lr_max must be positive, got {lr_max}")
    lr = lr_base * base_width / width
    return lr if lr_max is None else min(lr, lr_max)


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
