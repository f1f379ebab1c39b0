"""Forward FLOPs of a model on a batch: counted kernels and an estimate of the rest.

``torch.utils.flop_counter.FlopCounterMode`` counts matmul, bmm, convolution and
attention kernels only. Message passing also spends work in gathers, scatters and
element-wise maps that it does not see. ``count_forward_flops`` reports both:

- ``counted``: what FlopCounterMode counts (2 FLOPs per multiply-add);
- ``uncounted_estimate``: one FLOP per element of the largest operand of every other
  operator that computes something (views, copies and allocations excluded).
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

_NO_WORK = {
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::new_empty",
    "aten::zeros",
    "aten::zeros_like",
    "aten::new_zeros",
    "aten::ones",
    "aten::ones_like",
    "aten::full",
    "aten::full_like",
    "aten::fill_",
    "aten::zero_",
    "aten::copy_",
    "aten::clone",
    "aten::_to_copy",
    "aten::detach",
    "aten::lift_fresh",
    "aten::arange",
    "aten::_local_scalar_dense",
    "aten::contiguous",
    "aten::cat",
    "aten::stack",
}


class _ElementCounter(TorchDispatchMode):
    """Counts one FLOP per element of the largest operand of non-matmul operators."""

    def __init__(self, counted_ops):
        super().__init__()
        self.counted_ops = counted_ops
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        name = func.name().split(".")[0]
        if packet in self.counted_ops or func.is_view or name in _NO_WORK:
            return out
        tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
        if tensors:
            self.flops += max(t.numel() for t in tensors)
        return out


def count_forward_flops(model: torch.nn.Module, inputs: tuple) -> dict[str, int]:
    """FLOPs of one forward pass ``model(*inputs)``.

    Returns
    -------
    dict
        ``counted`` (FlopCounterMode), ``uncounted_estimate`` and their sum ``total``.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    counted = int(counter.get_total_flops())
    elements = _ElementCounter(set(counter.flop_registry))
    with torch.no_grad(), elements:
        model(*inputs)
    return {
        "counted": counted,
        "uncounted_estimate": int(elements.flops),
        "total": counted + int(elements.flops),
    }
