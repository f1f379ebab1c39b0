"""Data-fitted scale factors of GemNet-OC (private to ``gemnet_oc*.py``).

The reference implementation (fairchem's ``ScaleFactor`` and ``scaling/fit.py``) multiplies
the output of every neighbour sum and every basis modulation by a scalar fitted once on
data, so that the output has the variance of the input it was computed from (or unit
variance), and ships the fitted values with the model. Here the values live in buffers,
so a checkpoint carries them and a resumed run reuses them.

Fitting order: the reference fits the factors one at a time in the order of the forward
pass, each on forward passes where the earlier ones are already fitted. A factor only
sees activations upstream of it, so fitting each one the first time it is reached in a
single forward pass gives the same values on the same batch; :func:`fit_scale_factors`
does that.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["ScaleFactor", "fit_scale_factors"]


def _mean_feature_variance(x: torch.Tensor) -> float:
    """Variance over rows, averaged over features (fairchem's statistic), in float64."""
    return float(x.detach().reshape(x.shape[0], -1).double().var(dim=0).mean())


class ScaleFactor(nn.Module):
    """``x * scale``, ``scale`` fitted once on data (1 until fitted).

    When fitted (:func:`fit_scale_factors`), ``scale = sqrt(var(ref) / var(x))`` on the
    fitting batch, ``var`` the per-feature variance over rows averaged over features,
    so the scaled output has the variance of ``ref`` (unit variance without ``ref``).

    Buffers (in the state_dict): ``scale`` (float scalar) and ``fitted`` (bool scalar).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.fit_pending = False
        self.fit_note: str | None = None

    def forward(
        self,
        x: torch.Tensor,
        ref: torch.Tensor | Callable[[], torch.Tensor] | None = None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x * scale``; ``ref`` (a tensor, or a callable returning it, evaluated only
        when fitting) is the input whose variance the output should keep; ``rows`` (bool,
        the leading dims of a padded ``x``) selects the rows of ``x`` that are data."""
        if self.fit_pending:
            self.fit_pending = False
            self._fit(x if rows is None else x[rows], ref() if callable(ref) else ref)
        return x * self.scale

    @torch.no_grad()
    def _fit(self, x: torch.Tensor, ref: torch.Tensor | None) -> None:
        if x.shape[0] < 2 or (ref is not None and ref.shape[0] < 2):
            self.fit_note = "fewer than 2 rows in the fitting batch"
            return
        var_out = _mean_feature_variance(x)
        var_in = 1.0 if ref is None else _mean_feature_variance(ref)
        if not (math.isfinite(var_out) and math.isfinite(var_in) and var_out > 0 and var_in > 0):
            self.fit_note = f"variance of output {var_out:.3g}, of reference {var_in:.3g}"
            return
        self.scale.fill_(math.sqrt(var_in / var_out))
        self.fitted.fill_(True)
        self.fit_note = None


def fit_scale_factors(model: nn.Module, forward: Callable[[], object]) -> dict[str, float]:
    """Fit every :class:`ScaleFactor` of ``model`` in one call of ``forward`` (no grad).

    Factors are reset to 1 first; each is fitted when the forward pass first reaches it.
    A factor that cannot be fitted (not reached, too few rows, zero variance: e.g. a
    batch without quadruplets) keeps 1 and is logged with the reason.

    Returns
    -------
    dict
        Module name -> fitted scale.
    """
    factors = {name: m for name, m in model.named_modules() if isinstance(m, ScaleFactor)}
    for factor in factors.values():
        factor.scale.fill_(1.0)
        factor.fitted.fill_(False)
        factor.fit_note = "not reached by the forward pass"
        factor.fit_pending = True
    try:
        with torch.no_grad():
            forward()
    finally:
        for factor in factors.values():
            factor.fit_pending = False
    unfitted = {name: f.fit_note for name, f in factors.items() if not bool(f.fitted)}
    if unfitted:
        logger.warning(
            "%d of %d scale factors kept at 1: %s",
            len(unfitted),
            len(factors),
            "; ".join(f"{name} ({note})" for name, note in unfitted.items()),
        )
    values = {name: float(f.scale) for name, f in factors.items()}
    logger.info("fitted %d scale factors: %s", len(factors) - len(unfitted), values)
    return values
