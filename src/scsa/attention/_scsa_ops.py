"""Small tensor helpers shared by SCSA's readable definition (:mod:`scsa.attention.scsa`) and its
fast path (:mod:`scsa.attention._scsa_fast`), so that neither imports the other's module for them.

Si et al., arXiv 2407.05128 (https://arxiv.org/abs/2407.05128).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CONV_NAMES", "compute_dtype", "dw_conv", "group_norm", "shrink_window"]

# SMSA's four depth-wise convolutions, by their released parameter names, small kernel to large
CONV_NAMES = ("local_dwc", "global_dwc_s", "global_dwc_m", "global_dwc_l")


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype of the small gate path: float32 for half inputs, else the input's own."""
    if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        return torch.float32
    return x.dtype


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
    """``min(window, size)``, kept symbolic under ``torch.export`` so the spatial size stays dynamic."""
    if torch.jit.is_scripting() or torch.jit.is_tracing():
        return min(window, size)  # tracing records sizes as constants anyway
    if isinstance(size, torch.SymInt):
        return torch.sym_min(window, size)
    return min(window, size)  # torch.compile of torch 2.11 fails on sym_min of two ints


def dw_conv(t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Depth-wise 'same' convolution (Conv1d, or 1×1 Conv2d) with parameters cast to ``t``'s dtype."""
    b = bias.to(t.dtype) if bias is not None else None
    if t.dim() == 3:
        return F.conv1d(t, weight.to(t.dtype), b, padding=weight.shape[-1] // 2, groups=weight.shape[0])
    return F.conv2d(t, weight.to(t.dtype), b, groups=weight.shape[0])
