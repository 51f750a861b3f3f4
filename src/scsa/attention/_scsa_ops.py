"""Small tensor helpers shared by SCSA's readable definition (:mod:`scsa.attention.scsa`) and its
fast path (:mod:`scsa.attention._scsa_fast`), so that neither imports the other's module for them.

Si et al., arXiv 2407.05128 (https://arxiv.org/abs/2407.05128).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.fx import Proxy  # imported once: attribute access through torch.fx costs ~1.5 us a call

from scsa.attention._layers import compute_dtype

__all__ = ["CONV_NAMES", "compute_dtype", "dw_conv1d", "dw_conv1x1", "group_norm", "shrink_window"]

# SMSA's four depth-wise convolutions, by their released parameter names, small kernel to large
CONV_NAMES = ("local_dwc", "global_dwc_s", "global_dwc_m", "global_dwc_l")


def group_norm(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    dtype: torch.dtype,
) -> torch.Tensor:
    """GroupNorm computed in ``dtype`` whatever the parameters' dtype."""
    w = weight.to(dtype) if weight is not None else None
    b = bias.to(dtype) if bias is not None else None
    # torch.group_norm, not F.group_norm: the latter refuses groups holding a single value (C = 4 on a
    # 1-pixel axis), which normalise to exactly the bias and are well defined.
    return torch.group_norm(x.to(dtype), num_groups, w, b, eps, False)


def shrink_window(window: int, size: int) -> int:
    """``min(window, size)``, kept symbolic wherever sizes are: a graph captured at one size then
    serves every size (a map smaller than the window pools with the window shrunk to the map).

    * ``torch.export`` / ``torch.compile``: sizes are SymInts, hence ``torch.sym_min``.
    * ``torch.jit.trace`` and the legacy (TorchScript) ONNX export: sizes read from a traced tensor
      are 0-dim tensors; ``torch.clamp`` records the shrink as a graph op (a Python ``min`` would
      freeze it at the example size and give other numbers at other sizes).
    """
    if torch.jit.is_scripting():
        return min(window, size)
    if isinstance(size, Proxy):  # FX symbolic tracing: one leaf call, evaluated when run
        return size.tracer.create_proxy("call_function", shrink_window, (window, size), {})  # type: ignore[return-value]
    if isinstance(size, torch.Tensor):  # traced
        return torch.clamp(size, max=window)  # type: ignore[return-value]
    if isinstance(size, torch.SymInt):
        return torch.sym_min(window, size)
    return min(window, size)  # torch.compile of torch 2.11 fails on sym_min of two ints


def dw_conv1d(t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Depth-wise 'same' Conv1d of (b, c, l) with parameters cast to ``t``'s dtype."""
    b = bias.to(t.dtype) if bias is not None else None
    return F.conv1d(t, weight.to(t.dtype), b, padding=weight.shape[-1] // 2, groups=weight.shape[0])


def dw_conv1x1(t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Depth-wise 1×1 Conv2d of (b, c, h, w) with parameters cast to ``t``'s dtype."""
    b = bias.to(t.dtype) if bias is not None else None
    return F.conv2d(t, weight.to(t.dtype), b, groups=weight.shape[0])
